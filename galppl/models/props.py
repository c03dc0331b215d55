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


# The props chain's continuous variables, in its order.
PROPS_VARIABLES = tuple(v for block in props_blocks() if block.kind != "bernoulli" for v in block.variables)


def subset_blocks(variables, num_couplings: int = 12) -> tuple[Block, ...]:
    """A one-block chain over some of the props chain's continuous variables, for a catalog that
    labels only those (the DR9 extract: z and log M*): a RealNVP block ``"targets"`` over two or
    more (in the props chain's order), an affine block named after a single one. A galaxy
    missing one of them trains the others through the marginal, as in any block."""
    variables = tuple(variables)
    unknown = [v for v in variables if v not in PROPS_VARIABLES]
    if unknown or not variables or len(set(variables)) != len(variables):
        raise ValueError(f"variables must be distinct names among {PROPS_VARIABLES}, got {list(variables)}"
                         + (f" ({unknown} unknown)" if unknown else ""))
    ordered = tuple(v for v in PROPS_VARIABLES if v in variables)
    if len(ordered) == 1:
        return (Block(ordered[0], ordered, "affine"),)
    return (Block("targets", ordered, "realnvp", flow_options={"num_couplings": num_couplings}),)
