"""Training on several processes or machines: torch DistributedDataParallel under ``torchrun``.

Launch any script that calls :func:`galppl.fit` (or :func:`galppl.train.train_loss_fn`) inside
:func:`process_group` with ``torchrun``, or the runner :mod:`galppl.distributed_fit`::

    torchrun --nproc-per-node 4 -m galppl.distributed_fit sky.nc model/ --model props --config fit.toml
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-endpoint host:29500 -m galppl.distributed_fit ...

Every process reads the whole training set (the chain trains on feature vectors: 1e6 galaxies
are ~0.2 GB) and shuffles it with the same seed, so all processes agree on each minibatch;
:func:`shard_loss` gives process ``r`` of ``W`` the rows ``r, r + W, ...`` of it, and
DistributedDataParallel averages the gradients. The average is weighted so that a step equals
the one-process step on the whole minibatch (up to float rounding): W processes train the
same model W times faster, not a different one. Reported losses are averaged over processes
too, so early stopping and the NaN check decide the same on every process, and every process
ends with the same weights; only the main process (rank 0) writes outputs
(:func:`is_main_process`). Backend: gloo on CPU, nccl when the modules live on a GPU.
:func:`galppl.train.train_svi` (Pyro's SVI) is not sharded: under ``torchrun`` every process
repeats the same training, stopping together.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main_process() -> bool:
    """True for rank 0, and for a process outside any process group: the one that writes outputs."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def any_process(flag: bool) -> bool:
    """True when ``flag`` is true on any process (``flag`` itself outside a process group): a
    decision every process must take together, such as stopping on a time budget."""
    if not active():
        return flag
    value = torch.tensor(int(flag))
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value)


@contextlib.contextmanager
def process_group(backend: str | None = None) -> Iterator[None]:
    """Join the process group ``torchrun`` describes (its RANK, WORLD_SIZE, MASTER_ADDR,
    MASTER_PORT environment variables) for the block, and leave it after. backend: ``"gloo"``
    (CPU) or ``"nccl"`` (GPUs); default gloo, nccl when CUDA is available (each process then
    uses GPU ``LOCAL_RANK``)."""
    missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise RuntimeError(f"no process group to join: {missing} are not set; launch with torchrun "
                           "(e.g. torchrun --nproc-per-node 2 -m galppl.distributed_fit ...)")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    try:
        yield
    finally:
        dist.destroy_process_group()


class _Loss(nn.Module):
    """The modules a loss trains, as one module, so DDP hooks every parameter; forward is the loss."""

    def __init__(self, loss_fn, modules: dict[str, nn.Module]):
        super().__init__()
        self.loss_fn = loss_fn
        self.parts = nn.ModuleDict(modules)

    def forward(self, batch: dict, n_total: int) -> torch.Tensor:
        return self.loss_fn(**batch, n_total=n_total)


def shard_loss(loss_fn, modules: dict[str, nn.Module]):
    """``loss_fn(**batch, n_total=N)`` (see :func:`galppl.train.train_loss_fn`) for this process's
    share of each minibatch, its gradient averaged over processes by DistributedDataParallel.

    The value returned is the whole minibatch's loss (nats, scaled to ``N`` galaxies), the same on
    every process; its gradient on this process is this share's, weighted by
    ``share rows x processes / minibatch rows`` so that the DDP average is the whole minibatch's
    gradient. A process whose share is empty (a last minibatch smaller than the number of
    processes) scores one row with weight zero, so it still joins the gradient all-reduce.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    wrapped = DistributedDataParallel(_Loss(loss_fn, modules))

    def loss(n_total: int, **batch: torch.Tensor) -> torch.Tensor:
        rows = next(iter(batch.values())).shape[0]
        share = torch.arange(rank, rows, world)
        weight = len(share) * world / rows
        if len(share) == 0:
            share = torch.arange(1)
        value = wrapped({key: tensor[share.to(tensor.device)] for key, tensor in batch.items()}, n_total) * weight
        whole = value.detach().clone()
        dist.all_reduce(whole)
        # Value: the processes' mean, i.e. the whole minibatch's loss; gradient: this share's.
        return value + (whole / world - value.detach())

    return loss
