"""The conditional flow: one standard-normal base, expanded to the context's batch, pushed
through a list of Pyro ``ConditionalTransformModule`` s (zuko's ``Flow`` on Pyro's classes).

``flow(context)`` conditions every transform on the context and returns a Pyro
``TransformedDistribution`` with ``batch_shape = context.shape[:-1]`` and
``event_shape = (dim,)``, so it sits directly under ``pyro.plate("galaxy", B)``.
:meth:`ConditionalFlow.conditional` returns the same thing before conditioning, as a Pyro
``ConditionalTransformedDistribution``, with further transforms appended (a model puts the
flow's output into its own units that way).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro.distributions as dist
from pyro.distributions.conditional import (
    ConditionalDistribution,
    ConditionalTransform,
    ConditionalTransformedDistribution,
    ConditionalTransformModule,
)
from torch import Tensor, nn
from torch.distributions import Transform

from .nets import check_positive_int


class StandardNormal(ConditionalDistribution):
    """N(0, I_dim), expanded to the batch shape of the context it is conditioned on."""

    def __init__(self, dim: int):
        self.dim = dim

    def condition(self, context: Tensor) -> dist.TorchDistribution:
        """The base for a context (*batch, context_dim): batch_shape *batch, event_shape (dim,)."""
        zero = context.new_zeros(())
        return dist.Normal(zero, zero + 1.0).expand(context.shape[:-1] + (self.dim,)).to_event(1)


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
    ``(dim, context_dim, **options)`` and append their transforms to ``self.transforms``.
    """

    def __init__(self, dim: int, context_dim: int, transforms: Sequence[ConditionalTransformModule] = ()):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.context_dim = check_positive_int("context_dim", context_dim)
        self.base = StandardNormal(dim)
        self.transforms = nn.ModuleList(transforms)

    def conditional(self, *outputs: Transform | ConditionalTransform) -> ConditionalTransformedDistribution:
        """The flow followed by ``outputs`` (maps of its samples into other units), not yet conditioned."""
        return ConditionalTransformedDistribution(self.base, [*self.transforms, *outputs])

    def forward(self, context: Tensor) -> dist.TransformedDistribution:
        """p(x | context); context shape (*batch, context_dim)."""
        check_context(context, self.context_dim, type(self).__name__)
        return self.conditional().condition(context)
