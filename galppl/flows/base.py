"""The conditional flow: one base distribution (standard Normal, or a heavy-tailed
Student-t), expanded to the context's batch, pushed through a list of Pyro
``ConditionalTransformModule`` s (zuko's ``Flow`` on Pyro's classes).

``flow(context)`` conditions every transform on the context and returns a Pyro
``TransformedDistribution`` with ``batch_shape = context.shape[:-1]`` and
``event_shape = (dim,)``, so it sits directly under ``pyro.plate("galaxy", B)``.
:meth:`ConditionalFlow.conditional` returns the same thing before conditioning, as a Pyro
``ConditionalTransformedDistribution``, with further transforms appended (a model puts the
flow's output into its own units that way).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions.conditional import (
    ConditionalDistribution,
    ConditionalTransform,
    ConditionalTransformedDistribution,
    ConditionalTransformModule,
)
from torch import Tensor, nn
from torch.distributions import Transform

from .nets import check_positive_int

BASES = ("normal", "student_t")
# A learned Student-t's degrees of freedom: MIN_DF + softplus(parameter), starting at INITIAL_DF.
MIN_DF = 1.0
INITIAL_DF = 10.0


class StandardNormal(ConditionalDistribution):
    """N(0, I_dim), expanded to the batch shape of the context it is conditioned on."""

    def __init__(self, dim: int):
        self.dim = dim

    def condition(self, context: Tensor) -> dist.TorchDistribution:
        """The base for a context (*batch, context_dim): batch_shape *batch, event_shape (dim,)."""
        zero = context.new_zeros(())
        return dist.Normal(zero, zero + 1.0).expand(context.shape[:-1] + (self.dim,)).to_event(1)


class StudentT(nn.Module, ConditionalDistribution):
    """A standard Student-t per coordinate (location 0, scale 1), expanded to the batch
    shape of the context: a base with power-law tails, for residuals with outliers.

    ``df``: the degrees of freedom, a number (> 0, fixed) or None: learned per coordinate,
    ``MIN_DF + softplus(theta)`` (so > 1: the residual keeps a mean), starting at
    ``INITIAL_DF``. Large df is the Normal; df = 1 the Cauchy.
    """

    def __init__(self, dim: int, df: float | None = None):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        if df is None:
            self.df_parameter = nn.Parameter(torch.full((dim,), math.log(math.expm1(INITIAL_DF - MIN_DF))))
        else:
            if not (isinstance(df, (int, float)) and math.isfinite(df) and df > 0):
                raise ValueError(f"df must be a finite number > 0 (or None to learn it), got {df!r}")
            self.register_buffer("fixed_df", torch.full((dim,), float(df)))

    @property
    def df(self) -> Tensor:
        """The degrees of freedom (dim,)."""
        if hasattr(self, "fixed_df"):
            return self.fixed_df
        return MIN_DF + F.softplus(self.df_parameter)

    def condition(self, context: Tensor) -> dist.TorchDistribution:
        """The base for a context (*batch, context_dim): batch_shape *batch, event_shape (dim,)."""
        df = self.df.to(context.dtype)
        zero = context.new_zeros(())
        return dist.StudentT(df, zero, zero + 1.0).expand(context.shape[:-1] + (self.dim,)).to_event(1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, df={'learned' if not hasattr(self, 'fixed_df') else self.fixed_df[0].item()}"


def build_base(base: str, dim: int, df: float | None = None) -> ConditionalDistribution:
    """The base distribution of a flow by name: ``"normal"`` (:class:`StandardNormal`; takes
    no ``df``) or ``"student_t"`` (:class:`StudentT` with ``df``, None: learned)."""
    if base not in BASES:
        raise ValueError(f"unknown flow base {base!r}; choose one of {BASES}")
    if base == "normal":
        if df is not None:
            raise ValueError(f"the 'normal' base takes no df (got df={df!r}); use base='student_t'")
        return StandardNormal(dim)
    return StudentT(dim, df)


def check_context(context: Tensor, context_dim: int, owner: str) -> None:
    """A TypeError/ValueError naming ``owner`` unless context is a tensor (*batch, context_dim)."""
    if not isinstance(context, Tensor):
        raise TypeError(f"{owner}: context must be a torch.Tensor, got {type(context).__name__}")
    if context.dim() < 1 or context.shape[-1] != context_dim:
        raise ValueError(
            f"{owner}: context must have shape (*batch, {context_dim}), got {tuple(context.shape)}"
        )


class ConditionalFlow(nn.Module):
    """A conditional density p(x | context) over R^dim: a standard-normal base pushed through
    ``transforms`` in order (each a Pyro ``ConditionalTransformModule`` of that context).

    Subclasses (the flow kinds of :func:`galppl.flows.build_flow`) take
    ``(dim, context_dim, **options)`` and append their transforms to ``self.transforms``;
    :meth:`use_base` swaps the standard Normal for another base (``build_flow``'s ``base``).
    """

    def __init__(self, dim: int, context_dim: int, transforms: Sequence[ConditionalTransformModule] = ()):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.context_dim = check_positive_int("context_dim", context_dim)
        self.base = StandardNormal(dim)
        self.transforms = nn.ModuleList(transforms)

    def use_base(self, base: str, df: float | None = None) -> None:
        """Replace the base distribution: see :func:`build_base`. A learned Student-t's
        degrees of freedom become parameters of the flow (trained and saved with it)."""
        self.base = build_base(base, self.dim, df)

    def conditional(self, *outputs: Transform | ConditionalTransform) -> ConditionalTransformedDistribution:
        """The flow followed by ``outputs`` (maps of its samples into other units), not yet conditioned."""
        return ConditionalTransformedDistribution(self.base, [*self.transforms, *outputs])

    def forward(self, context: Tensor) -> dist.TransformedDistribution:
        """p(x | context); context shape (*batch, context_dim)."""
        check_context(context, self.context_dim, type(self).__name__)
        return self.conditional().condition(context)
