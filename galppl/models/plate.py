"""The galaxy plate that every galppl model and guide opens (minibatch-scaled, see ``galppl.train``)."""

from __future__ import annotations

import pyro
import torch


def minibatch_scale(batch_size: int, n_total: int | None = None) -> float:
    """``n_total / batch_size``: the weight of each of ``batch_size`` galaxies that stand for
    ``n_total`` (default: themselves) in a minibatch estimate of the full-data log density."""
    n_total = batch_size if n_total is None else int(n_total)
    if n_total < batch_size:
        raise ValueError(f"n_total ({n_total}) cannot be smaller than the minibatch ({batch_size} galaxies)")
    return n_total / batch_size


def galaxy_plate(batch_size: int, n_total: int | None = None, *, name: str = "galaxy", device=None):
    """The ``pyro.plate`` over galaxies that models and guides open (see ``galppl.train``).

    ``batch_size`` galaxies are present; they stand for ``n_total`` (default: themselves),
    so each galaxy's log-density is scaled by ``n_total / batch_size``.
    """
    n_total = batch_size if n_total is None else int(n_total)
    minibatch_scale(batch_size, n_total)  # refuses n_total < batch_size, naming both
    # An explicit subsample keeps pyro from drawing random indices (and touching the RNG):
    # the minibatch rows were already chosen by the training loop.
    return pyro.plate(name, size=n_total, subsample=torch.arange(batch_size, device=device))
