"""Conditional RealNVP (Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP").

A stack of affine coupling layers over a standard Normal base. Each coupling keeps one
part of the vector, ``x1``, and maps the rest as ``x2 * exp(s) + t`` with ``(s, t)`` an MLP
of ``(x1, context)``. The MLP's first layer is split as ``W_x x1 + (W_c c + b)``: the context
term is computed once per galaxy when the flow is conditioned, and broadcast over every
draw, so 1000 draws for B galaxies cost one context projection per coupling, not 1000.
"""

from __future__ import annotations

import torch
from pyro.distributions.conditional import ConditionalTransformModule
from torch import Tensor
from torch.distributions import Transform, constraints

from .base import ConditionalFlow
from .nets import DenseNet, check_clamp, check_hidden_dims, check_positive_int, seeded, soft_clamp

# Soft bound on the kept coordinates a coupling network reads (the flow works in
# standardised units, so +-8 is far in the tails).
INPUT_BOUND = 8.0


class RealNVPCouplingTransform(Transform):
    """One affine coupling with its context already projected (a plain torch Transform).

    Built by :meth:`RealNVPCoupling.condition`; maps vectors of the flow's dimension (last
    axis) and broadcasts the projected context over any leading draw axes.
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(self, coupling: RealNVPCoupling, projected_context: Tensor):
        super().__init__(cache_size=1)
        self.coupling = coupling
        self.projected_context = projected_context
        # (x, y, log_scale) of the last evaluation, so log_prob's inverse-then-logdet pair
        # and sample-then-score runs the MLP once per coupling instead of twice.
        self._cached_log_scale: tuple[Tensor, Tensor, Tensor] | None = None

    def _shift_and_log_scale(self, x1: Tensor) -> tuple[Tensor, Tensor]:
        # The network reads the kept coordinates softly bounded (identity within about +-4):
        # a draw far in the tail then gets a bounded shift and scale instead of an
        # extrapolated one, so no chain of couplings can amplify it without limit. Any
        # function of x1 keeps the coupling exactly invertible.
        out = self.coupling.net.from_projection(self.projected_context, soft_clamp(x1, INPUT_BOUND))
        return out["shift"], soft_clamp(out["log_scale"], self.coupling.log_scale_clamp)

    def _split(self, v: Tensor) -> tuple[Tensor, Tensor]:
        c = self.coupling
        return v[..., c.permutation[: c.split]], v[..., c.permutation[c.split :]]

    def _merge(self, v1: Tensor, v2: Tensor) -> Tensor:
        # The context may carry more batch axes than v (e.g. context (S, B, C), v (B, D)):
        # the kept part must be broadcast like the transformed one before concatenating.
        v1 = v1.expand(v2.shape[:-1] + v1.shape[-1:])
        return torch.cat([v1, v2], dim=-1)[..., self.coupling.inverse_permutation]

    def _call(self, x: Tensor) -> Tensor:
        x1, x2 = self._split(x)
        shift, log_scale = self._shift_and_log_scale(x1)
        y = self._merge(x1, x2 * torch.exp(log_scale) + shift)
        self._cached_log_scale = (x, y, log_scale)
        return y

    def _inverse(self, y: Tensor) -> Tensor:
        y1, y2 = self._split(y)
        shift, log_scale = self._shift_and_log_scale(y1)
        x = self._merge(y1, (y2 - shift) * torch.exp(-log_scale))
        self._cached_log_scale = (x, y, log_scale)
        return x

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        """log |det dy/dx| = sum of the log-scales; shape x.shape[:-1] (broadcast with batch)."""
        cached = self._cached_log_scale
        if cached is not None and cached[0] is x and cached[1] is y:
            log_scale = cached[2]
        else:
            _, log_scale = self._shift_and_log_scale(self._split(x)[0])
        return log_scale.sum(dim=-1)


class RealNVPCoupling(ConditionalTransformModule):
    """Affine coupling whose shift and log-scale depend on the kept part and a context.

    ``permutation`` orders the ``dim`` coordinates: the first ``dim // 2`` of it are kept
    (and condition the MLP), the rest are transformed. Stored as a buffer, so a loaded
    state_dict restores the exact coordinate split whatever seed built the module.
    Log-scales are soft-clamped into (-log_scale_clamp, log_scale_clamp).
    """

    def __init__(
        self,
        dim: int,
        context_dim: int,
        *,
        permutation: Tensor,
        hidden_dims: tuple[int, ...] = (128, 128),
        log_scale_clamp: float = 3.0,
    ):
        super().__init__()
        if permutation.shape != (dim,):
            raise ValueError(f"permutation must order the {dim} coordinates, got shape {tuple(permutation.shape)}")
        self.split = dim // 2
        self.log_scale_clamp = check_clamp("log_scale_clamp", log_scale_clamp)
        self.register_buffer("permutation", permutation.clone())
        self.register_buffer("inverse_permutation", torch.argsort(permutation))
        transformed = dim - self.split
        self.net = DenseNet(
            context_dim, hidden_dims, {"shift": transformed, "log_scale": transformed}, input_dim=self.split
        )

    def condition(self, context: Tensor) -> RealNVPCouplingTransform:
        """The coupling for a context (*batch, context_dim), projected once."""
        return RealNVPCouplingTransform(self, self.net.project_context(context))


def coupling_permutations(dim: int, num_couplings: int, seed: int) -> list[Tensor]:
    """Coordinate orders of the couplings: identity first, then seeded random orders.

    Each order's kept set (its first ``dim // 2`` entries) differs from the previous
    coupling's, so no two neighbouring couplings transform the same coordinates (for
    ``dim == 2`` this is the plain alternation of halves).
    """
    generator = torch.Generator().manual_seed(seed)
    split = dim // 2
    orders = [torch.arange(dim)]
    while len(orders) < num_couplings:
        candidate = torch.randperm(dim, generator=generator)
        if set(candidate[:split].tolist()) != set(orders[-1][:split].tolist()):
            orders.append(candidate)
    return orders


class ConditionalRealNVP(ConditionalFlow):
    """Conditional RealNVP density p(x | context) over R^dim, dim >= 2 (flow kind "realnvp").

    ``flow(context)`` scores ``x`` of shape ``(*sample, *batch, dim)`` exactly (change of
    variables) and samples ``(*sample_shape, *batch, dim)``, reparameterised. Units are
    those of ``x`` (typically standardised targets).

    Args:
        dim: dimension of x (>= 2).
        context_dim: dimension of the conditioning vector.
        num_couplings: number of affine coupling layers.
        hidden_dims: widths of each coupling's MLP hidden layers.
        log_scale_clamp: per-coupling log-scales are soft-clamped into
            (-log_scale_clamp, log_scale_clamp).
        seed: seeds the initial weights and the coordinate permutations.
    """

    def __init__(
        self,
        dim: int,
        context_dim: int,
        num_couplings: int = 12,
        hidden_dims: tuple[int, ...] = (128, 128),
        log_scale_clamp: float = 3.0,
        seed: int = 0,
    ):
        if not (isinstance(dim, int) and dim >= 2):
            raise ValueError(
                f"flow kind 'realnvp' needs dim >= 2, got dim={dim}; use 'affine' or 'spline' for dim == 1"
            )
        super().__init__(dim, context_dim)
        self.num_couplings = check_positive_int("num_couplings", num_couplings)
        self.hidden_dims = check_hidden_dims(hidden_dims)
        self.log_scale_clamp = check_clamp("log_scale_clamp", log_scale_clamp)
        with seeded(seed):
            self.transforms.extend(
                RealNVPCoupling(dim, context_dim, permutation=order, hidden_dims=self.hidden_dims,
                                log_scale_clamp=self.log_scale_clamp)
                for order in coupling_permutations(dim, num_couplings, seed)
            )

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, context_dim={self.context_dim}, num_couplings={self.num_couplings}, "
            f"hidden_dims={self.hidden_dims}, log_scale_clamp={self.log_scale_clamp}"
        )
