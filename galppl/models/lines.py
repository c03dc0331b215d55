"""The emission-line chain and the physics derived from its draws.

The chain is one block: a 4-d conditional RealNVP (12 affine couplings by default) over the
residuals of the H-alpha, H-beta, [N II] 6584 and [O III] 5007 fibre fluxes around an MLP
mean, conditioned on the representation h (and, in the joint model, optionally on the props
core draws).

The value transform is ``signed_log1p``, y = sign(f) log(1 + |f|) with f in units of
1e-17 erg s-1 cm-2. For the positive fluxes it is meant for it is log1p, i.e. close to
ln f for bright lines and linear near zero, so the flow sees a compact, roughly Gaussian
space spanning four decades of flux. Measured fluxes can be negative (noise, as in
MPA-JHU), even below -1, where plain log1p is NaN; the odd extension is monotone, finite
and exactly invertible (``sign(y) expm1(|y|)``) for every real flux, with derivative
1 / (1 + |f|) > 0, so no flux ever produces a NaN or an infinite Jacobian.

The block declares the ``"emission_lines"`` derived quantities
(:func:`galppl.models.derived.derived_quantities`): draws of the BPT class and its
probabilities, the Balmer decrement, A(H-alpha) and the H-alpha SFR, computed draw by draw
from the line draws when the posterior predicts.
"""

from __future__ import annotations

from galppl.data.schema import LINE_FLUXES
from galppl.models.chain import Block


def lines_blocks(num_couplings: int = 12, parents: tuple[str, ...] = ()) -> tuple[Block, ...]:
    """The lines chain: one ``"lines"`` RealNVP block over the four line fluxes, declaring the
    ``"emission_lines"`` derived quantities (BPT probabilities, Balmer decrement, A(H-alpha),
    H-alpha SFR).

    num_couplings: affine couplings of the flow (the paper's 12).
    parents: earlier blocks the lines are conditioned on. ``()`` for the lines model; in
        the joint model ``("core",)`` makes the line draws depend on the drawn
        (log_mstar, log_sfr, z) (the props chain's ``core`` block), so that the per-galaxy
        posterior keeps the correlations between properties and lines rather than only
        sharing h.
    """
    return (
        Block(
            "lines",
            LINE_FLUXES,
            "realnvp",
            parents=tuple(parents),
            transform="signed_log1p",
            flow_options={"num_couplings": int(num_couplings)},
            derived=("emission_lines",),
        ),
    )
