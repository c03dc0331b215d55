"""One-dimensional conditional flows: affine (a conditional Normal) and spline-then-affine.

Both map a standard Normal ``eps`` to ``y`` with parameters that depend only on the
context, so the context MLP runs once per galaxy and broadcasts over draws.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import AffineTransform, Transform, constraints

from ._nets import (
    check_clamp,
    check_context,
    check_hidden_dims,
    check_positive_int,
    seeded,
    soft_clamp,
    trunk,
)

# Lower bounds on bin widths/heights (as fractions of the box) and knot derivatives keep
# the spline strictly monotonic and its inverse well conditioned (Durkan et al. 2019).
MIN_BIN_FRACTION = 1e-3
MIN_DERIVATIVE = 1e-3


def _standard_normal(context: Tensor, event_dim: int) -> dist.TorchDistribution:
    zero = context.new_zeros(())
    return dist.Normal(zero, zero + 1.0).expand(context.shape[:-1] + (event_dim,)).to_event(1)


def _context_mlp(context_dim: int, hidden_dims: tuple[int, ...], out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(context_dim, hidden_dims[0]), *trunk(hidden_dims, out_dim))


class ConditionalAffine1d(nn.Module):
    """p(y | context) for scalar y: ``y = mu(c) + exp(s(c)) * eps``, eps ~ N(0, 1).

    ``flow(context)`` returns a Pyro ``TransformedDistribution`` with
    ``batch_shape = context.shape[:-1]`` and ``event_shape = (1,)``. ``s`` is soft-clamped
    into (-log_scale_clamp, log_scale_clamp). Untrained, the flow is close to N(0, 1).
    """

    def __init__(
        self,
        context_dim: int,
        hidden_dims: tuple[int, ...] = (128, 128),
        log_scale_clamp: float = 5.0,
        seed: int = 0,
    ):
        super().__init__()
        self.dim = 1
        self.context_dim = check_positive_int("context_dim", context_dim)
        self.hidden_dims = check_hidden_dims(hidden_dims)
        self.log_scale_clamp = check_clamp("log_scale_clamp", log_scale_clamp)
        with seeded(seed):
            self.net = _context_mlp(context_dim, self.hidden_dims, 2)

    def forward(self, context: Tensor) -> dist.TransformedDistribution:
        """The conditional distribution p(y | context); context shape (*batch, context_dim)."""
        check_context(context, self.context_dim, type(self).__name__)
        loc, raw_log_scale = self.net(context).split(1, dim=-1)
        scale = torch.exp(soft_clamp(raw_log_scale, self.log_scale_clamp))
        affine = AffineTransform(loc, scale, event_dim=1)
        return dist.TransformedDistribution(_standard_normal(context, 1), [affine])

    def extra_repr(self) -> str:
        return f"context_dim={self.context_dim}, hidden_dims={self.hidden_dims}"


def _knots(unnormalised: Tensor, bound: float) -> Tensor:
    """Knot positions in [-bound, bound] from unnormalised bin sizes (*, K) -> (*, K + 1)."""
    num_bins = unnormalised.shape[-1]
    sizes = MIN_BIN_FRACTION + (1 - MIN_BIN_FRACTION * num_bins) * F.softmax(unnormalised, -1)
    inner = 2 * bound * torch.cumsum(sizes, dim=-1)[..., :-1] - bound
    # Pin the end knots exactly: cumsum rounding would leave a sliver of the box uncovered.
    ends = torch.ones_like(unnormalised[..., :1]) * bound
    return torch.cat([-ends, inner, ends], dim=-1)


def rational_quadratic_spline(
    inputs: Tensor, x_knots: Tensor, y_knots: Tensor, derivatives: Tensor, bound: float,
    inverse: bool = False,
) -> tuple[Tensor, Tensor]:
    """Monotonic rational-quadratic spline on [-bound, bound], identity outside.

    Durkan, Bekasov, Murray & Papamakarios 2019 ("Neural Spline Flows"), eqs. 4-8.
    ``inputs`` (*shape); knots and knot derivatives (*pshape, K + 1), pshape broadcastable
    with shape. Returns (outputs, log |d out / d in|) elementwise, both broadcast shape.
    """
    shape = torch.broadcast_shapes(inputs.shape, x_knots.shape[:-1])
    inputs = inputs.expand(shape)
    x_knots, y_knots, derivatives = (t.expand(shape + t.shape[-1:]) for t in (x_knots, y_knots, derivatives))
    inside = (inputs > -bound) & (inputs < bound)
    # Evaluate the spline formula on clamped inputs so the branch discarded by
    # torch.where below never produces NaNs that would poison the gradients.
    clamped = inputs.clamp(-bound, bound)
    knots = y_knots if inverse else x_knots
    lo = (clamped.unsqueeze(-1) >= knots[..., 1:-1]).sum(dim=-1, keepdim=True)
    hi = lo + 1

    def pick(t: Tensor, i: Tensor) -> Tensor:
        return t.gather(-1, i).squeeze(-1)

    x_lo, y_lo, d_lo = pick(x_knots, lo), pick(y_knots, lo), pick(derivatives, lo)
    width, height, d_hi = pick(x_knots, hi) - x_lo, pick(y_knots, hi) - y_lo, pick(derivatives, hi)
    slope = height / width
    curvature = d_hi + d_lo - 2 * slope

    if inverse:
        dy = clamped - y_lo
        a = height * (slope - d_lo) + dy * curvature
        b = height * d_lo - dy * curvature
        c = -slope * dy
        discriminant = (b.pow(2) - 4 * a * c).clamp_min(0)
        xi = (2 * c) / (-b - torch.sqrt(discriminant))
        outputs = x_lo + xi * width
    else:
        xi = (clamped - x_lo) / width
        outputs = y_lo + height * (slope * xi.pow(2) + d_lo * xi * (1 - xi)) / (
            slope + curvature * xi * (1 - xi)
        )
    xi_term = xi * (1 - xi)
    log_derivative = (
        torch.log(slope.pow(2) * (d_hi * xi.pow(2) + 2 * slope * xi_term + d_lo * (1 - xi).pow(2)))
        - 2 * torch.log(slope + curvature * xi_term)
    )
    if inverse:
        log_derivative = -log_derivative
    outputs = torch.where(inside, outputs, inputs)
    return outputs, torch.where(inside, log_derivative, torch.zeros_like(log_derivative))


class ConditionedRationalQuadraticSpline(Transform):
    """Elementwise rational-quadratic spline with fixed (already conditioned) parameters.

    Parameters are unnormalised: widths and heights (*batch, dim, K), interior knot
    derivatives (*batch, dim, K - 1); the end derivatives are 1 to match the identity tails.
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(self, widths: Tensor, heights: Tensor, derivatives: Tensor, bound: float):
        super().__init__(cache_size=1)
        self.bound = bound
        self.x_knots = _knots(widths, bound)
        self.y_knots = _knots(heights, bound)
        self.derivatives = F.pad(MIN_DERIVATIVE + F.softplus(derivatives), (1, 1), value=1.0)
        self._cached_log_det: tuple[Tensor, Tensor, Tensor] | None = None

    def _spline(self, v: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        return rational_quadratic_spline(v, self.x_knots, self.y_knots, self.derivatives, self.bound, inverse)

    def _call(self, x: Tensor) -> Tensor:
        y, log_det = self._spline(x, inverse=False)
        self._cached_log_det = (x, y, log_det)
        return y

    def _inverse(self, y: Tensor) -> Tensor:
        x, log_det_inverse = self._spline(y, inverse=True)
        self._cached_log_det = (x, y, -log_det_inverse)
        return x

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        cached = self._cached_log_det
        if cached is not None and cached[0] is x and cached[1] is y:
            log_det = cached[2]
        else:
            log_det = self._spline(x, inverse=False)[1]
        return log_det.sum(dim=-1)


class ConditionalSpline1d(nn.Module):
    """p(y | context) for scalar y: ``y = mu(c) + exp(s(c)) * g_c(eps)``, eps ~ N(0, 1).

    ``g_c`` is a monotonic rational-quadratic spline with ``count_bins`` bins on
    [-bound, bound] (identity outside; Durkan et al. 2019), so the flow can be skewed or
    multimodal while the affine part sets location and scale. Same distribution interface
    as :class:`ConditionalAffine1d`; untrained, close to N(0, 1).
    """

    def __init__(
        self,
        context_dim: int,
        hidden_dims: tuple[int, ...] = (128, 128),
        count_bins: int = 8,
        bound: float = 4.0,
        log_scale_clamp: float = 5.0,
        seed: int = 0,
    ):
        super().__init__()
        self.dim = 1
        self.context_dim = check_positive_int("context_dim", context_dim)
        self.hidden_dims = check_hidden_dims(hidden_dims)
        self.count_bins = check_positive_int("count_bins", count_bins, minimum=2)
        if MIN_BIN_FRACTION * count_bins >= 1:
            raise ValueError(f"count_bins={count_bins} too large: bins narrower than {MIN_BIN_FRACTION}")
        self.bound = check_clamp("bound", bound)
        self.log_scale_clamp = check_clamp("log_scale_clamp", log_scale_clamp)
        with seeded(seed):
            self.net = _context_mlp(context_dim, self.hidden_dims, 3 * count_bins + 1)
        # Start at the identity spline: equal bins and unit knot derivatives.
        with torch.no_grad():
            start = 2 * count_bins
            self.net[-1].bias[start : start + count_bins - 1] = math.log(math.expm1(1 - MIN_DERIVATIVE))

    def forward(self, context: Tensor) -> dist.TransformedDistribution:
        """The conditional distribution p(y | context); context shape (*batch, context_dim)."""
        check_context(context, self.context_dim, type(self).__name__)
        k = self.count_bins
        widths, heights, derivatives, loc, raw_log_scale = self.net(context).unsqueeze(-2).split(
            [k, k, k - 1, 1, 1], dim=-1
        )
        spline = ConditionedRationalQuadraticSpline(widths, heights, derivatives, self.bound)
        scale = torch.exp(soft_clamp(raw_log_scale, self.log_scale_clamp))
        affine = AffineTransform(loc.squeeze(-2), scale.squeeze(-2), event_dim=1)
        return dist.TransformedDistribution(_standard_normal(context, 1), [spline, affine])

    def extra_repr(self) -> str:
        return (
            f"context_dim={self.context_dim}, hidden_dims={self.hidden_dims}, "
            f"count_bins={self.count_bins}, bound={self.bound}"
        )
