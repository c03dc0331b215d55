"""Conditional normalizing flows: modules whose ``forward(context)`` returns a distribution.

Usage reads ``flow(c).log_prob(x)`` and ``pyro.sample("x", flow(c), obs=x)``: the returned
Pyro ``TransformedDistribution`` has ``batch_shape = c.shape[:-1]`` and
``event_shape = (dim,)``, so it sits directly under ``pyro.plate("galaxy", B)``.

- :class:`ConditionalRealNVP`: affine couplings for dim >= 2 ("realnvp").
- :class:`ConditionalAffine1d`: a conditional Normal for dim == 1 ("affine").
- :class:`ConditionalSpline1d`: rational-quadratic spline then affine, dim == 1 ("spline").
"""

from __future__ import annotations

import inspect

from torch import nn

from .realnvp import ConditionalAffineCoupling, ConditionalRealNVP, ConditionedAffineCoupling
from .univariate import (
    ConditionalAffine1d,
    ConditionalSpline1d,
    ConditionedRationalQuadraticSpline,
    rational_quadratic_spline,
)

__all__ = [
    "FLOW_KINDS",
    "ConditionalAffine1d",
    "ConditionalAffineCoupling",
    "ConditionalRealNVP",
    "ConditionalSpline1d",
    "ConditionedAffineCoupling",
    "ConditionedRationalQuadraticSpline",
    "build_flow",
    "rational_quadratic_spline",
]

FLOW_KINDS: dict[str, type[nn.Module]] = {
    "realnvp": ConditionalRealNVP,
    "affine": ConditionalAffine1d,
    "spline": ConditionalSpline1d,
}


def build_flow(kind: str, dim: int, context_dim: int, **options) -> nn.Module:
    """Build a conditional flow p(x | context) of the given kind.

    Args:
        kind: "realnvp" (needs dim >= 2), "affine" or "spline" (need dim == 1).
        dim: dimension of x.
        context_dim: dimension of the conditioning vector.
        **options: keyword arguments of the chosen class (e.g. ``num_couplings``,
            ``hidden_dims``, ``seed``); an option the class does not take is a ValueError.
    """
    if kind not in FLOW_KINDS:
        raise ValueError(f"unknown flow kind {kind!r}; choose one of {sorted(FLOW_KINDS)}")
    cls = FLOW_KINDS[kind]
    if kind == "realnvp" and dim < 2:
        raise ValueError(
            f"flow kind 'realnvp' needs dim >= 2, got dim={dim}; use 'affine' or 'spline' for dim == 1"
        )
    if kind != "realnvp" and dim != 1:
        raise ValueError(f"flow kind {kind!r} is one-dimensional and needs dim == 1, got dim={dim}; use 'realnvp'")
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("dim", "context_dim")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"flow kind {kind!r} does not take option(s) {unknown}; it takes {accepted}")
    if kind == "realnvp":
        return cls(dim, context_dim, **options)
    return cls(context_dim, **options)
