"""A link of the chain (:class:`Block`) and the transforms that put a block's flow into
catalog units.

A continuous block's distribution is one Pyro ``ConditionalTransformedDistribution``
(built by :meth:`galppl.models.chain.ChainModel.block_distribution`)::

    N(0, I) -> the block's conditional flow (context: h, or an embedding of h and the parents)
            -> TemperedShift(mean(h), shift, temperature)  standardised units
            -> AffineTransform(loc, scale)             value-transformed catalog units
            -> the value transform's inverse           catalog units
            [-> a bounded map per variable, the place for physical ranges]

so ``log_prob`` in catalog units carries every Jacobian itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.distributions import Transform, constraints
from torch.distributions.transforms import identity_transform

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


class TemperedShift(Transform):
    """``y = mean + shift + exp(log_temperature) * x`` over the last axis: a block's residual
    put around its mean, moved by its calibration shift and widened by its temperature
    (:meth:`ChainModel.calibrate`).

    ``shift`` and ``log_temperature`` (dim,) are read at every call and nothing is cached, so
    recalibration can optimise them in place on one conditioned distribution.
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    sign = +1

    def __init__(self, mean: Tensor, shift: Tensor, log_temperature: Tensor):
        super().__init__(cache_size=0)
        self.mean = mean
        self.shift = shift
        self.log_temperature = log_temperature

    def _call(self, x: Tensor) -> Tensor:
        return self.mean + self.shift + torch.exp(self.log_temperature) * x

    def _inverse(self, y: Tensor) -> Tensor:
        return (y - self.mean - self.shift) / torch.exp(self.log_temperature)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self.log_temperature.sum().expand(torch.broadcast_shapes(x.shape, y.shape)[:-1])


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
