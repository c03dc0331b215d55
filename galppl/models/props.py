"""The galaxy-properties chain, the paper's joint posterior factorised by the chain rule:

    p(core, M_BH, detect, O/H | x) = p(core | x) p(M_BH | core, x) p(detect | x) p(O/H | core, M_BH, x)

core = (log_mstar, log_sfr, z), a conditional RealNVP (12 affine couplings) over the
residuals around an MLP mean; ``bh`` = log_mbh, a 1-d conditional flow given h and the
core. Together they are the paper's 4-d core posterior, written as two links so that the
~14% of galaxies whose velocity dispersion is unmeasurable (sigma < 70 km/s, hence no
M_BH) still train the mass/SFR/redshift part: a single 4-d flow would have to drop them,
and would then be over-confident on exactly the low-mass galaxies it never saw.
``oh_detected`` is a Bernoulli head saying whether 12+log(O/H) is measurable at all; ``oh``
a 1-d conditional flow given h and the core and M_BH draws (true ones in training, sampled
ones in prediction).
"""

from __future__ import annotations

from galppl.models.chain import Block

CORE = ("log_mstar", "log_sfr", "z")
# The flows the 1-d M_BH and O/H blocks can take.
OH_FLOWS = ("affine", "spline")


def props_blocks(num_couplings: int = 12, oh_flow: str = "affine") -> tuple[Block, ...]:
    """The props chain. ``oh_flow`` (also used for M_BH) is ``"affine"`` (the paper's) or ``"spline"``."""
    if oh_flow not in OH_FLOWS:
        raise ValueError(f"oh_flow must be one of {OH_FLOWS}, got {oh_flow!r}")
    return (
        Block("core", CORE, "realnvp", flow_options={"num_couplings": num_couplings}),
        Block("bh", ("log_mbh",), oh_flow, parents=("core",)),
        Block("oh_detected", ("oh_detected",), "bernoulli"),
        Block("oh", ("oh",), oh_flow, parents=("core", "bh"), gate="oh_detected"),
    )
