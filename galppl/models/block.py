"""A link of the chain (:class:`Block`) and the transforms that put a block's flow into
catalog units.

A continuous block's distribution is one Pyro ``TransformedDistribution``
(built by :meth:`galppl.models.chain.ChainModel.block_distribution`)::

    N(0, I) -> the block's conditional flow (context: h, or an embedding of h and the parents)
            -> TemperedShift(mean(h), shift, temperature)  standardised units
               (the temperature log-linear in mean(h) where a recalibration gave it a slope)
            -> AffineTransform(loc, scale)             value-transformed catalog units
            -> the value transform's inverse           catalog units
            -> SaturatingBoundsTransform                catalog units, inside each
                                                        variable's physical support

so ``log_prob`` in catalog units carries every Jacobian itself, and no draw can leave the
supports declared in :data:`galppl.data.schema.TARGETS`, whatever the inputs. Where a
recalibration gave some variables an outlier share (:class:`Calibration`), the block's
distribution is an :class:`OutlierMixture` of such distributions that differ only in which
residuals are widened.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from pyro.distributions import TorchDistribution, TransformedDistribution
from torch import Tensor
from torch.distributions import ComposeTransform, Transform, constraints
from torch.distributions.transforms import identity_transform

from galppl.data.schema import support

BLOCK_KINDS = ("realnvp", "affine", "spline", "bernoulli")


class SignedLog1pTransform(Transform):
    """``y = sign(x) log(1 + |x|)`` elementwise; log |dy/dx| = -log(1 + |x|).

    log1p for the positive fluxes it is meant for, and defined (odd, monotone, finite) for
    the negative fluxes that noisy line measurements produce, even below -1 where log1p is NaN.
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __eq__(self, other) -> bool:
        return isinstance(other, SignedLog1pTransform)

    def _call(self, x: Tensor) -> Tensor:
        return torch.sign(x) * torch.log1p(torch.abs(x))

    def _inverse(self, y: Tensor) -> Tensor:
        return torch.sign(y) * torch.expm1(torch.abs(y))

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return -torch.log1p(torch.abs(x))


# Value transforms, catalog units -> the units a block is standardised and modelled in
# (a block's distribution applies the inverse last).
VALUE_TRANSFORMS: dict[str, Transform] = {
    "identity": identity_transform,
    "signed_log1p": SignedLog1pTransform(),
}


# Width of the saturation zone at each end of a support, as a fraction of the support's
# width in the units a block models (z: 0.01, log M*: 0.175 dex, a line flux: 0.62 in signed
# log1p, so fluxes from -2,700 to 5e6 are untouched): the bounded map is the identity between
# the zones, where (nearly) all galaxies lie, so a model's numbers there are exactly those
# without it.
SUPPORT_MARGIN = 0.025


class SaturatingBoundsTransform(Transform):
    """An elementwise bijection R -> (lower, upper) that is the identity on
    ``[lower + m, upper - m]`` and saturates exponentially beyond: above ``a = upper - m``,
    ``y = upper - m exp(-(x - a) / m)`` (value and slope continuous at ``a``), the mirror
    image below ``lower + m``. ``m = SUPPORT_MARGIN * (upper - lower)``; an infinite bound
    leaves that side the identity.

    ``lower``/``upper`` (dim,) in the units of x. log |dy/dx| = log((upper - y) / m) in the
    upper zone (the lower one alike), 0 in between; computed from ``y``, so it stays finite
    however far out ``x`` is. Outputs are kept strictly inside the bounds at the dtype's
    resolution (where the exponential rounds onto a bound), so every draw lies inside and
    has a finite log density; a value outside (or on) the bounds maps back to +-inf.
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    sign = +1

    def __init__(self, lower: Tensor, upper: Tensor):
        super().__init__(cache_size=1)
        if not (lower < upper).all():
            raise ValueError(f"each lower bound must be below its upper bound, got {lower.tolist()} and {upper.tolist()}")
        width = upper - lower
        self.lower, self.upper = lower, upper
        # An infinite side keeps margin 1 (any positive number): its zone is never entered.
        self.margin = torch.where(torch.isfinite(width), SUPPORT_MARGIN * width, torch.ones_like(width))
        self.inner_lower, self.inner_upper = lower + self.margin, upper - self.margin
        # The representable values nearest each bound, strictly inside it.
        self.lowest = torch.nextafter(lower, upper)
        self.highest = torch.nextafter(upper, lower)

    def _call(self, x: Tensor) -> Tensor:
        above = torch.relu(x - self.inner_upper) / self.margin
        below = torch.relu(self.inner_lower - x) / self.margin
        # clamp, not x - excess: x far out minus its excess would cancel catastrophically.
        y = x.clamp(self.inner_lower, self.inner_upper) - self.margin * (torch.expm1(-above) - torch.expm1(-below))
        return y.clamp(self.lowest, self.highest)

    def _gaps(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """exp(-excess / m) above and below: 1 in the identity zone, -> 0 at the bounds, 0 beyond."""
        above = ((self.upper - y) / self.margin).clamp(0.0, 1.0)
        below = ((y - self.lower) / self.margin).clamp(0.0, 1.0)
        return above, below

    def _inverse(self, y: Tensor) -> Tensor:
        above, below = self._gaps(y)
        return y.clamp(self.inner_lower, self.inner_upper) - self.margin * (above.log() - below.log())

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        above, below = self._gaps(y)
        return (above.log() + below.log()).sum(-1)


def block_support(block: Block) -> tuple[Tensor, Tensor]:
    """(lower, upper), float64 tensors (block dim,) of each variable's support
    (:func:`galppl.data.schema.support`; +-inf where the schema declares none)."""
    bounds = torch.tensor([support(v) for v in block.variables], dtype=torch.float64)
    return bounds[:, 0], bounds[:, 1]


class TemperedShift(Transform):
    """``y = mean + shift + exp(log_temperature + log_widening + slope @ mean) * x`` over the
    last axis: a block's residual put around its mean, moved by its calibration shift and
    widened by its temperature (and, for the outlier component of an :class:`OutlierMixture`,
    by its widening). With a ``slope`` the temperature varies from galaxy to galaxy,
    log-linearly in the block's own mean (its predicted values, standardised units): where
    the residuals are wider for some kinds of galaxy than the flow learnt (a model taken to
    another sky), one temperature leaves some too narrow and the rest too wide.

    ``shift``, ``log_temperature`` and ``log_widening`` are (dim,) tensors (``log_widening``
    may be a number), ``slope`` a (dim, dim) tensor (row: the variable widened, column: the
    mean it follows) or 0; nothing is cached.
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    sign = +1

    def __init__(self, mean: Tensor, shift: Tensor, log_temperature: Tensor, log_widening: Tensor | float = 0.0,
                 slope: Tensor | float = 0.0):
        super().__init__(cache_size=0)
        self.mean = mean
        self.shift = shift
        self.log_temperature = log_temperature
        self.log_widening = log_widening
        self.slope = slope

    def _log_scale(self) -> Tensor:
        log_scale = self.log_temperature + self.log_widening
        if torch.is_tensor(self.slope):
            log_scale = log_scale + self.mean @ self.slope.T
        return log_scale

    def _call(self, x: Tensor) -> Tensor:
        return self.mean + self.shift + torch.exp(self._log_scale()) * x

    def _inverse(self, y: Tensor) -> Tensor:
        return (y - self.mean - self.shift) / torch.exp(self._log_scale())

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self._log_scale().expand(torch.broadcast_shapes(x.shape, y.shape)).sum(-1)


class Calibration(NamedTuple):
    """A continuous block's post-hoc calibration, each entry (block dim,), standardised units:

    ``shift`` and ``log_temperature`` move and widen the residual (:class:`TemperedShift`),
    ``log_temperature_slope`` (dim, dim; none by default: 0) makes the temperature follow the
    block's mean from galaxy to galaxy; each variable of a draw is, with probability
    ``sigmoid(outlier_logit)`` (none by default: ``-inf``), an outlier, its residual widened
    further by ``exp(log_widening)`` (:class:`OutlierMixture`): where real galaxies' residuals
    are more peaked with heavier tails than the model's (blends and bad photometry that the
    training sky lacks), one temperature cannot fit the core and the tails together.
    """

    shift: Tensor
    log_temperature: Tensor
    log_widening: Tensor | float = 0.0
    outlier_logit: Tensor | float = -math.inf
    log_temperature_slope: Tensor | float = 0.0

    def outlier_variables(self) -> list[int]:
        """The variables with an outlier share (the others' distribution is the plain one)."""
        logit = torch.as_tensor(self.outlier_logit).detach().expand(self.shift.shape)
        return torch.isfinite(logit).nonzero().flatten().tolist()


class OutlierMixture(TorchDistribution):
    """A block's distribution whose variables are each, independently with probability
    ``p_j = sigmoid(outlier_logit_j)``, widened by ``exp(log_widening_j)``: the mixture over
    the ``2^k`` patterns of outliers among the ``k`` variables that have a share, each pattern
    the block's flow with those residuals widened, so the flow's dependence between the
    variables is kept in every pattern. Exact in ``log_prob`` (``2^k`` flow evaluations) and in
    sampling: a draw is the plain draw with each chosen variable moved by ``widen`` (the map
    from the plain catalog values to the widened ones through their shared residual; every map
    after the flow is elementwise, so no second pass through the flow).
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, patterns: dict[tuple[int, ...], object], widen: Transform, outlier_logit: Tensor):
        # patterns: the outlier variables of each pattern -> that pattern's distribution; () is the plain one.
        self.patterns, self.widen = patterns, widen
        self.outlier_logit = torch.as_tensor(outlier_logit)
        plain = patterns[()]
        super().__init__(plain.batch_shape, plain.event_shape, validate_args=False)

    @property
    def support(self):
        return self.patterns[()].support

    def expand(self, batch_shape, _instance=None):
        return OutlierMixture({k: d.expand(batch_shape) for k, d in self.patterns.items()}, self.widen,
                              self.outlier_logit)

    def log_prob(self, value: Tensor) -> Tensor:
        active = max(self.patterns, key=len)
        log_p = torch.nn.functional.logsigmoid(self.outlier_logit)
        log_q = torch.nn.functional.logsigmoid(-self.outlier_logit)
        terms = [distribution.log_prob(value) + sum(log_p[j] if j in pattern else log_q[j] for j in active)
                 for pattern, distribution in self.patterns.items()]
        return torch.logsumexp(torch.stack(terms), 0)

    def rsample(self, sample_shape=torch.Size()) -> Tensor:
        plain = self.patterns[()].rsample(sample_shape)
        chosen = torch.rand(plain.shape, device=plain.device) < torch.sigmoid(self.outlier_logit)
        return torch.where(chosen, self.widen(plain), plain)

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


def calibrated(flow, mean: Tensor, calibration: Calibration, catalog_transforms: list[Transform]):
    """A block's distribution in catalog units: its conditioned ``flow`` (a Pyro
    ``TransformedDistribution`` over the residual) followed by :class:`TemperedShift` around
    ``mean`` and ``catalog_transforms``; an :class:`OutlierMixture` where the calibration gives
    some variables an outlier share (its patterns share the conditioned flow: the networks run
    once)."""
    shift, log_temperature, log_widening = calibration[:3]

    def pattern(widened):
        mask = torch.zeros_like(shift)
        mask[list(widened)] = 1.0
        outputs = [TemperedShift(mean, shift, log_temperature, mask * log_widening,
                                 calibration.log_temperature_slope), *catalog_transforms]
        return outputs, TransformedDistribution(flow.base_dist, [*flow.transforms, *outputs])

    active = calibration.outlier_variables()
    if not active:
        return pattern(())[1]
    patterns = {}
    for pick in itertools.product((False, True), repeat=len(active)):
        widened = tuple(j for j, chosen in zip(active, pick) if chosen)
        patterns[widened] = pattern(widened)[1]
    widen = ComposeTransform([ComposeTransform(pattern(())[0]).inv, *pattern(active)[0]])
    return OutlierMixture(patterns, widen, calibration.outlier_logit)


@dataclass(frozen=True)
class Block:
    """One link of the chain.

    name: the block's name and its Pyro sample site.
    variables: the catalog variables it models (e.g. ``("log_mstar", "log_sfr", "z", "log_mbh")``).
    kind: ``"realnvp"`` (needs >= 2 variables), ``"affine"`` or ``"spline"`` (1 variable), or
        ``"bernoulli"`` (1 variable holding 0/1).
    parents: names of earlier blocks whose values condition this one.
    gate: name of an earlier Bernoulli block saying whether this block is measurable; the
        block's targets are expected to be missing where the gate is 0 (documentation and a
        consistency check; the likelihood masks missing values either way).
    transform: a key of ``VALUE_TRANSFORMS`` applied to the targets before modelling.
    flow_options: keyword arguments for :func:`galppl.flows.build_flow`.
    derived: names of derived-quantity functions (registered in ``galppl.models.derived``)
        that turn this block's draws into draws of physical quantities (e.g. BPT classes).
    """

    name: str
    variables: tuple[str, ...]
    kind: str = "realnvp"
    parents: tuple[str, ...] = ()
    gate: str | None = None
    transform: str = "identity"
    flow_options: dict = field(default_factory=dict)
    derived: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "variables", tuple(self.variables))
        object.__setattr__(self, "parents", tuple(self.parents))
        object.__setattr__(self, "derived", tuple(self.derived))
        if not self.name.isidentifier():
            raise ValueError(f"block name {self.name!r} must be a Python identifier")
        if self.kind not in BLOCK_KINDS:
            raise ValueError(f"block {self.name!r}: kind {self.kind!r} is not one of {BLOCK_KINDS}")
        if not self.variables:
            raise ValueError(f"block {self.name!r} models no variables")
        repeated = sorted({v for v in self.variables if self.variables.count(v) > 1})
        if repeated:
            raise ValueError(f"block {self.name!r} lists {repeated} more than once: name each variable once")
        if self.kind == "realnvp" and len(self.variables) < 2:
            raise ValueError(f"block {self.name!r}: a RealNVP block needs >= 2 variables, got {self.variables}")
        if self.kind in ("affine", "spline", "bernoulli") and len(self.variables) != 1:
            raise ValueError(f"block {self.name!r}: a {self.kind} block models exactly 1 variable, got {self.variables}")
        if self.transform not in VALUE_TRANSFORMS:
            raise ValueError(f"block {self.name!r}: transform {self.transform!r} not in {tuple(VALUE_TRANSFORMS)}")
        if self.kind == "bernoulli" and (self.parents or self.transform != "identity"):
            raise ValueError(f"block {self.name!r}: a Bernoulli block takes no parents or transform")

    @property
    def dim(self) -> int:
        return len(self.variables)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "variables": list(self.variables),
            "kind": self.kind,
            "parents": list(self.parents),
            "gate": self.gate,
            "transform": self.transform,
            "flow_options": dict(self.flow_options),
            "derived": list(self.derived),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Block:
        """Inverse of :meth:`to_dict`; a dict without ``"derived"`` (galppl 0.2.0) has none."""
        return cls(**d)


def check_blocks(blocks) -> tuple[Block, ...]:
    """Check that a chain is well formed: unique names and variables, parents and gates defined earlier."""
    blocks = tuple(blocks)
    if not blocks:
        raise ValueError("a chain needs at least one block")
    seen: dict[str, Block] = {}
    variables: set[str] = set()
    for block in blocks:
        if block.name in seen:
            raise ValueError(f"block name {block.name!r} is used twice")
        for parent in block.parents:
            if parent not in seen:
                raise ValueError(f"block {block.name!r}: parent {parent!r} must be an earlier block")
            if seen[parent].kind == "bernoulli":
                raise ValueError(f"block {block.name!r}: parent {parent!r} is a Bernoulli gate; name it as gate")
        if block.gate is not None and (block.gate not in seen or seen[block.gate].kind != "bernoulli"):
            raise ValueError(f"block {block.name!r}: gate {block.gate!r} must be an earlier Bernoulli block")
        dup = variables.intersection(block.variables)
        if dup:
            raise ValueError(f"block {block.name!r}: variables {sorted(dup)} are modelled by an earlier block")
        variables.update(block.variables)
        seen[block.name] = block
    return blocks
