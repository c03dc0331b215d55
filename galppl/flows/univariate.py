"""One-dimensional conditional flows: a location-scale map (a conditional Normal) and a
rational-quadratic spline followed by one.

Both map a standard Normal ``eps`` to ``y`` with parameters that depend only on the
context, so the context MLP runs once per galaxy and broadcasts over draws.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pyro.distributions.conditional import ConditionalTransformModule
from torch import Tensor
from torch.distributions import AffineTransform, ComposeTransform, Transform, constraints

from .base import ConditionalFlow
from .nets import DenseNet, check_clamp, check_hidden_dims, check_positive_int, seeded, soft_clamp

# Lower bounds on bin widths/heights (as fractions of the box) and knot derivatives keep
# the spline strictly monotonic and its inverse well conditioned (Durkan et al. 2019).
MIN_BIN_FRACTION = 1e-3
MIN_DERIVATIVE = 1e-3


def _loc_scale(params: dict[str, Tensor], log_scale_clamp: float) -> AffineTransform:
    """``x -> loc + exp(soft-clamped log_scale) * x`` from a network's named outputs."""
    scale = torch.exp(soft_clamp(params["log_scale"], log_scale_clamp))
    return AffineTransform(params["loc"], scale, event_dim=1)


class ConditionalLocScale(ConditionalTransformModule):
    """``y = mu(c) + exp(s(c)) * x`` elementwise over ``dim`` coordinates, ``(mu, s)`` an MLP of c.

    ``s`` is soft-clamped into (-log_scale_clamp, log_scale_clamp); the MLP starts near
    zero, so the untrained map is close to the identity.
    """

    def __init__(self, dim: int, context_dim: int, *, hidden_dims: tuple[int, ...] = (128, 128),
                 log_scale_clamp: float = 5.0):
        super().__init__()
        self.log_scale_clamp = check_clamp("log_scale_clamp", log_scale_clamp)
        self.net = DenseNet(context_dim, hidden_dims, {"loc": dim, "log_scale": dim})

    def condition(self, context: Tensor) -> AffineTransform:
        """The map for a context (*batch, context_dim)."""
        return _loc_scale(self.net(context), self.log_scale_clamp)


class ConditionalSplineLocScale(ConditionalTransformModule):
    """``y = mu(c) + exp(s(c)) * g_c(x)`` elementwise: a monotonic rational-quadratic spline
    ``g_c`` with ``count_bins`` bins on [-bound, bound] (identity outside; Durkan et al. 2019),
    then the location-scale map of :class:`ConditionalLocScale`, all from one MLP of c.

    Untrained, the spline is the identity (equal bins, unit knot derivatives).
    """

    def __init__(self, dim: int, context_dim: int, *, hidden_dims: tuple[int, ...] = (128, 128),
                 count_bins: int = 8, bound: float = 4.0, log_scale_clamp: float = 5.0):
        super().__init__()
        self.count_bins = check_positive_int("count_bins", count_bins, minimum=2)
        if MIN_BIN_FRACTION * count_bins >= 1:
            raise ValueError(f"count_bins={count_bins} too large: bins narrower than {MIN_BIN_FRACTION}")
        self.bound = check_clamp("bound", bound)
        self.log_scale_clamp = check_clamp("log_scale_clamp", log_scale_clamp)
        k = count_bins
        self.net = DenseNet(
            context_dim,
            hidden_dims,
            {"widths": (dim, k), "heights": (dim, k), "derivatives": (dim, k - 1), "loc": dim, "log_scale": dim},
            # Interior knot derivatives start at 1, as the identity's: softplus(b) = 1 - MIN_DERIVATIVE.
            initial_bias={"derivatives": math.log(math.expm1(1 - MIN_DERIVATIVE))},
        )

    def condition(self, context: Tensor) -> ComposeTransform:
        """The spline then the location-scale map, for a context (*batch, context_dim)."""
        params = self.net(context)
        spline = RationalQuadraticSplineTransform(
            params["widths"], params["heights"], params["derivatives"], self.bound
        )
        return ComposeTransform([spline, _loc_scale(params, self.log_scale_clamp)])


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


class RationalQuadraticSplineTransform(Transform):
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


class ConditionalAffine1d(ConditionalFlow):
    """p(y | context) for scalar y: ``y = mu(c) + exp(s(c)) * eps``, eps ~ N(0, 1) (flow kind "affine").

    ``s`` is soft-clamped into (-log_scale_clamp, log_scale_clamp). Untrained, the flow is
    close to N(0, 1). ``seed`` seeds the initial weights.
    """

    def __init__(self, dim: int, context_dim: int, hidden_dims: tuple[int, ...] = (128, 128),
                 log_scale_clamp: float = 5.0, seed: int = 0):
        _check_one_dimensional("affine", dim)
        super().__init__(dim, context_dim)
        self.hidden_dims = check_hidden_dims(hidden_dims)
        with seeded(seed):
            self.transforms.append(ConditionalLocScale(dim, context_dim, hidden_dims=self.hidden_dims,
                                                       log_scale_clamp=log_scale_clamp))

    def extra_repr(self) -> str:
        return f"context_dim={self.context_dim}, hidden_dims={self.hidden_dims}"


class ConditionalSpline1d(ConditionalFlow):
    """p(y | context) for scalar y: ``y = mu(c) + exp(s(c)) * g_c(eps)``, eps ~ N(0, 1) (flow kind "spline").

    ``g_c`` is a monotonic rational-quadratic spline with ``count_bins`` bins on
    [-bound, bound] (identity outside; Durkan et al. 2019), so the flow can be skewed or
    multimodal while the affine part sets location and scale. Untrained, close to N(0, 1).
    ``seed`` seeds the initial weights.
    """

    def __init__(self, dim: int, context_dim: int, hidden_dims: tuple[int, ...] = (128, 128),
                 count_bins: int = 8, bound: float = 4.0, log_scale_clamp: float = 5.0, seed: int = 0):
        _check_one_dimensional("spline", dim)
        super().__init__(dim, context_dim)
        self.hidden_dims = check_hidden_dims(hidden_dims)
        with seeded(seed):
            self.transforms.append(ConditionalSplineLocScale(
                dim, context_dim, hidden_dims=self.hidden_dims, count_bins=count_bins, bound=bound,
                log_scale_clamp=log_scale_clamp,
            ))
        self.count_bins, self.bound = count_bins, bound

    def extra_repr(self) -> str:
        return (
            f"context_dim={self.context_dim}, hidden_dims={self.hidden_dims}, "
            f"count_bins={self.count_bins}, bound={self.bound}"
        )


def _check_one_dimensional(kind: str, dim: int) -> None:
    if dim != 1:
        raise ValueError(f"flow kind {kind!r} is one-dimensional and needs dim == 1, got dim={dim}; use 'realnvp'")
