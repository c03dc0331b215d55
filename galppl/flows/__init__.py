"""Conditional normalizing flows: modules whose ``forward(context)`` returns a distribution.

Usage reads ``flow(c).log_prob(x)`` and ``pyro.sample("x", flow(c), obs=x)``: the returned
Pyro ``TransformedDistribution`` has ``batch_shape = c.shape[:-1]`` and
``event_shape = (dim,)``, so it sits directly under ``pyro.plate("galaxy", B)``.

Every flow is a :class:`ConditionalFlow`: a base distribution (standard Normal, or with
``base="student_t"`` a Student-t with fixed or learned degrees of freedom, for residuals
with an outlier tail) and a list of Pyro
``ConditionalTransformModule`` s, each built from :class:`DenseNet` (one MLP with named
outputs). The kinds, all built as ``kind(dim, context_dim, **options)``:

- ``"realnvp"``, :class:`ConditionalRealNVP`: :class:`RealNVPCoupling` s, dim >= 2.
- ``"affine"``, :class:`ConditionalAffine1d`: one :class:`ConditionalLocScale`, a conditional
  Normal, dim == 1.
- ``"spline"``, :class:`ConditionalSpline1d`: one :class:`ConditionalSplineLocScale`, a
  rational-quadratic spline then a location-scale map, dim == 1.
"""

from __future__ import annotations

import inspect

from .base import BASES, ConditionalFlow, StandardNormal, StudentT, build_base
from .nets import DenseNet
from .realnvp import ConditionalRealNVP, RealNVPCoupling, RealNVPCouplingTransform, coupling_permutations
from .univariate import (
    ConditionalAffine1d,
    ConditionalLocScale,
    ConditionalSpline1d,
    ConditionalSplineLocScale,
    RationalQuadraticSplineTransform,
    rational_quadratic_spline,
)

__all__ = [
    "BASES",
    "FLOW_KINDS",
    "ConditionalAffine1d",
    "ConditionalFlow",
    "ConditionalLocScale",
    "ConditionalRealNVP",
    "ConditionalSpline1d",
    "ConditionalSplineLocScale",
    "DenseNet",
    "RationalQuadraticSplineTransform",
    "RealNVPCoupling",
    "RealNVPCouplingTransform",
    "StandardNormal",
    "StudentT",
    "build_base",
    "build_flow",
    "coupling_permutations",
    "rational_quadratic_spline",
]

FLOW_KINDS: dict[str, type[ConditionalFlow]] = {
    "realnvp": ConditionalRealNVP,
    "affine": ConditionalAffine1d,
    "spline": ConditionalSpline1d,
}


def build_flow(kind: str, dim: int, context_dim: int, *, base: str = "normal", df: float | None = None,
               **options) -> ConditionalFlow:
    """Build a conditional flow p(x | context) of the given kind.

    Args:
        kind: "realnvp" (needs dim >= 2), "affine" or "spline" (need dim == 1).
        dim: dimension of x.
        context_dim: dimension of the conditioning vector.
        base: the base distribution, one of :data:`BASES`: "normal" (the default) or
            "student_t" (heavy tails: outliers cost less likelihood and get wider intervals).
        df: the Student-t's degrees of freedom, fixed (> 0); None learns them per coordinate.
        **options: keyword arguments of the chosen class (e.g. ``num_couplings``,
            ``hidden_dims``, ``seed``); an option the class does not take is a ValueError.
    """
    if kind not in FLOW_KINDS:
        raise ValueError(f"unknown flow kind {kind!r}; choose one of {sorted(FLOW_KINDS)}")
    cls = FLOW_KINDS[kind]
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("dim", "context_dim")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"flow kind {kind!r} does not take option(s) {unknown}; it takes {accepted + ['base', 'df']}")
    flow = cls(dim, context_dim, **options)
    if base != "normal" or df is not None:
        flow.use_base(base, df)
    return flow
