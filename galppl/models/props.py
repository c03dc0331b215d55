"""The galaxy-properties chain: p(core, O/H | x) = p(core | x) p(detect | x) p(O/H | core, x).

core = (log_mstar, log_sfr, z, log_mbh), a 4-d conditional RealNVP (12 affine couplings)
over the residuals around an MLP mean; ``oh_detected`` a Bernoulli head saying whether
12+log(O/H) is measurable at all; ``oh`` a 1-d conditional flow given h and the core
parameters (true ones in training, sampled ones in prediction).
"""

from __future__ import annotations

from galppl.models.chain import Block

CORE = ("log_mstar", "log_sfr", "z", "log_mbh")


def props_blocks(num_couplings: int = 12, oh_flow: str = "affine") -> tuple[Block, ...]:
    """The props chain. ``oh_flow`` is ``"affine"`` (the paper's) or ``"spline"``."""
    return (
        Block("core", CORE, "realnvp", flow_options={"num_couplings": num_couplings}),
        Block("oh_detected", ("oh_detected",), "bernoulli"),
        Block("oh", ("oh",), oh_flow, parents=("core",), gate="oh_detected"),
    )
