"""Small building blocks shared by the conditional flows: MLP trunks, seeded init, checks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

# Standard deviation of the last layer's weights at initialisation. Small but not zero: a
# zero last layer makes the untrained flow exactly the identity but also blocks every
# gradient to the layers below it on the first step.
LAST_LAYER_INIT_STD = 1e-3


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded, restoring the caller's state after.

    Module constructors draw their initial weights from the global generator; forking it
    makes construction deterministic given ``seed`` without touching the caller's stream.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def check_hidden_dims(hidden_dims: Sequence[int]) -> tuple[int, ...]:
    """Validate hidden layer widths: at least one layer, every width a positive int."""
    dims = tuple(hidden_dims)
    if not dims or any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in dims):
        raise ValueError(
            f"hidden_dims must be a non-empty sequence of positive ints, got {hidden_dims!r}"
        )
    return dims


def check_positive_int(name: str, value: int, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_clamp(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be a positive float, got {value!r}")
    return float(value)


def trunk(hidden_dims: Sequence[int], out_dim: int) -> nn.Sequential:
    """Activation, hidden layers and output layer that follow a first affine projection.

    The caller owns the first projection (so it can be split into a context part computed
    once and an input part computed per draw); this trunk maps its pre-activation of width
    ``hidden_dims[0]`` to ``out_dim`` outputs. The last layer starts near zero.
    """
    layers: list[nn.Module] = []
    for width_in, width_out in zip(hidden_dims[:-1], hidden_dims[1:]):
        layers += [nn.SiLU(), nn.Linear(width_in, width_out)]
    last = nn.Linear(hidden_dims[-1], out_dim)
    nn.init.normal_(last.weight, std=LAST_LAYER_INIT_STD)
    nn.init.zeros_(last.bias)
    layers += [nn.SiLU(), last]
    return nn.Sequential(*layers)


def soft_clamp(log_scale: torch.Tensor, bound: float) -> torch.Tensor:
    """Smoothly squash log-scales into (-bound, bound), identity near zero.

    A hard clamp kills gradients at the boundary; ``bound * tanh(s / bound)`` keeps them
    and still stops a single coupling from scaling by more than exp(bound).
    """
    return bound * torch.tanh(log_scale / bound)


def check_context(context: torch.Tensor, context_dim: int, owner: str) -> None:
    if not isinstance(context, torch.Tensor):
        raise TypeError(f"{owner}: context must be a torch.Tensor, got {type(context).__name__}")
    if context.dim() < 1 or context.shape[-1] != context_dim:
        raise ValueError(
            f"{owner}: context must have shape (*batch, {context_dim}), "
            f"got {tuple(context.shape)}"
        )
