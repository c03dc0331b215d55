"""Checkpoints that let a killed fit resume where it stopped, to the same result.

``with checkpoints(folder):`` around a fit (``galppl.fit(..., checkpoint_dir=folder)`` does
it) makes every training loop inside it (:func:`galppl.train.train_loss_fn`: the VAE's and
each chain's, in the fit's fixed order) write its state after each epoch to
``folder/training-<k>.pt``, the k-th training of the fit: the weights, the optimiser, the
best weights so far, the early-stopping counters, the history, and the random states (torch's
and the shuffling generator's). Run again with the same folder, a training whose file says
it finished restores its result without training; the one that was interrupted continues
from its last finished epoch, and because the random states come back too, the result is
the one an uninterrupted fit gives (tested bit for bit). A file written by another fit
(other settings or data sizes) is refused, naming it. Files are written atomically (a kill
mid-write leaves the previous epoch's), and read with ``weights_only=True``.

Not covered: the wall-clock budget restarts with the resumed run; Pyro-SVI training
(``train_svi``, the VAE's ``trainer="pyro"``) is not checkpointed; on a GPU the CUDA
generator's state is not saved, so a resumed GPU fit is the same fit statistically, not bit
for bit.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import torch

from galppl.data.files import CorruptFileError, atomic_path

__all__ = ["checkpoints", "clear_checkpoints", "next_checkpoint"]

_active = threading.local()


@contextlib.contextmanager
def checkpoints(folder):
    """Checkpoint every training loop run inside the block into ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    previous = getattr(_active, "state", None)
    _active.state = {"folder": folder, "count": 0}
    try:
        yield folder
    finally:
        _active.state = previous


def clear_checkpoints(folder) -> None:
    """Remove the checkpoint files :func:`checkpoints` wrote in ``folder`` (and the folder if
    that leaves it empty): a finished fit's next run starts afresh."""
    folder = Path(folder)
    for path in folder.glob("training-*.pt"):
        path.unlink()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def next_checkpoint(fingerprint: dict) -> TrainingCheckpoint | None:
    """The checkpoint of the next training loop inside :func:`checkpoints`; None outside."""
    state = getattr(_active, "state", None)
    if state is None:
        return None
    state["count"] += 1
    return TrainingCheckpoint(state["folder"] / f"training-{state['count']}.pt", fingerprint)


class TrainingCheckpoint:
    """One training loop's checkpoint file; ``fingerprint`` (JSON-able) identifies the loop."""

    def __init__(self, path: Path, fingerprint: dict):
        self.path = path
        self.fingerprint = fingerprint

    def load(self) -> dict | None:
        """The saved state, or None when there is none yet."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:  # a torn or foreign file: say which
            raise CorruptFileError(f"checkpoint {self.path} cannot be read ({type(error).__name__}: {error}); "
                                   "delete it to restart that training") from error
        if state.get("fingerprint") != self.fingerprint:
            raise ValueError(f"checkpoint {self.path} was written by another fit (saved "
                             f"{state.get('fingerprint')}, this one {self.fingerprint}); use another "
                             "checkpoint folder or delete it")
        return state

    def save(self, state: dict) -> None:
        """Write ``state`` (plus the fingerprint) atomically."""
        with atomic_path(self.path) as temporary:
            torch.save({**state, "fingerprint": self.fingerprint}, temporary)
