"""Pyro models: the VAE, the generic chain of conditional blocks, and the named chains."""

from __future__ import annotations

from galppl.models.chain import Block, ChainModel
from galppl.models.props import props_blocks

CHAINS = ("props", "lines", "joint")


def chain_blocks(model: str, *, num_couplings: int = 12, oh_flow: str = "affine") -> tuple[Block, ...]:
    """The blocks of a named chain: ``"props"``, ``"lines"`` or ``"joint"`` (props then lines)."""
    if model not in CHAINS:
        raise ValueError(f"unknown chain {model!r}: choose one of {CHAINS}")
    props = props_blocks(num_couplings=num_couplings, oh_flow=oh_flow)
    if model == "props":
        return props
    from galppl.models.lines import lines_blocks

    if model == "lines":
        return lines_blocks(num_couplings=num_couplings)
    # Joint: the lines are conditioned on the drawn core properties, so the per-galaxy
    # posterior keeps the correlations between properties and lines.
    return props + lines_blocks(num_couplings=num_couplings, parents=("core",))


__all__ = ["CHAINS", "Block", "ChainModel", "chain_blocks", "props_blocks"]
