"""Pyro models: the VAE, the generic chain of conditional blocks, and the named chains."""

from __future__ import annotations

import dataclasses

from galppl.models.chain import Block, ChainModel, check_blocks
from galppl.models.props import OH_FLOWS, props_blocks

CHAINS = ("props", "lines", "joint")


def chain_blocks(model, *, num_couplings: int = 12, oh_flow: str | None = None) -> tuple[Block, ...]:
    """The blocks of a chain with the chain options applied.

    model: a named chain, ``"props"``, ``"lines"`` or ``"joint"`` (props then lines), or your
        own sequence of :class:`Block` s.
    num_couplings: affine couplings of every RealNVP block that does not set
        ``flow_options["num_couplings"]`` itself.
    oh_flow: the flow of the props chain's 1-d M_BH and O/H blocks (``None``: ``"affine"``).
        The lines chain has no such block and a custom chain names each block's kind
        itself, so they take none.
    """
    if not isinstance(model, str):
        if oh_flow is not None:
            raise ValueError(f"oh_flow={oh_flow!r} chooses the flow of the named chains' M_BH and O/H blocks; "
                             "a custom chain sets each Block's kind itself: leave oh_flow unset")
        return tuple(
            dataclasses.replace(b, flow_options={"num_couplings": num_couplings, **b.flow_options})
            if b.kind == "realnvp" else b
            for b in check_blocks(model)
        )
    if model not in CHAINS:
        raise ValueError(f"unknown chain {model!r}: choose one of {CHAINS}")
    from galppl.models.lines import lines_blocks

    if model == "lines":
        if oh_flow is not None:
            raise ValueError(f"oh_flow={oh_flow!r} chooses the props blocks' flow; the lines chain has none")
        return lines_blocks(num_couplings=num_couplings)
    props = props_blocks(num_couplings=num_couplings, oh_flow=oh_flow or "affine")
    if model == "props":
        return props
    # Joint: the lines are conditioned on the drawn core properties, so the per-galaxy
    # posterior keeps the correlations between properties and lines.
    return props + lines_blocks(num_couplings=num_couplings, parents=("core",))

__all__ = ["CHAINS", "OH_FLOWS", "Block", "ChainModel", "chain_blocks", "props_blocks"]
