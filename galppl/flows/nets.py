"""The one MLP builder of galppl (:class:`DenseNet`), seeded construction, soft clamps, checks.

:class:`DenseNet` follows Pyro's ``DenseNN(param_dims=...)``: one network whose output is cut
into named parameters. Its first layer is split as ``W_c context + b (+ W_x inputs)`` so a
caller can project the context once per galaxy and add the per-draw input term later.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

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
    """``value`` itself if it is an int >= ``minimum``, else a ValueError naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_clamp(name: str, value: float) -> float:
    """``value`` as a float if it is positive, else a ValueError naming ``name``."""
    if not value > 0:
        raise ValueError(f"{name} must be a positive float, got {value!r}")
    return float(value)


def soft_clamp(values: Tensor, bound: float) -> Tensor:
    """Smoothly squash values into (-bound, bound), identity near zero.

    A hard clamp kills gradients at the boundary; ``bound * tanh(v / bound)`` keeps them
    and still stops, e.g., a single coupling from scaling by more than exp(bound).
    """
    return bound * torch.tanh(values / bound)


class DenseNet(nn.Module):
    """MLP ``(context, inputs) -> named parameters``, SiLU between layers.

    The first layer is ``context_layer(context) + input_layer(inputs)`` (no input term when
    ``input_dim == 0``); :meth:`project_context` computes the context term alone, so a
    caller that evaluates many inputs per context (draws of one galaxy) projects it once.

    Args:
        context_dim: width of the context vector.
        hidden_dims: widths of the hidden layers (>= 1 layer).
        param_shapes: name -> shape of each output parameter, in output order; an int ``n``
            means shape ``(n,)``. The network returns a dict with these names, each of
            shape ``(*batch, *shape)``.
        input_dim: width of the per-draw input (0: the network reads the context only).
        last_layer_std: the last layer starts with N(0, std) weights and zero bias, so the
            outputs start near zero (near-identity flows); None keeps torch's default init.
        initial_bias: name -> constant that parameter's biases start at (e.g. the spline's
            knot derivatives at the identity).
    """

    def __init__(
        self,
        context_dim: int,
        hidden_dims: Sequence[int],
        param_shapes: Mapping[str, int | Sequence[int]],
        *,
        input_dim: int = 0,
        last_layer_std: float | None = LAST_LAYER_INIT_STD,
        initial_bias: Mapping[str, float] | None = None,
    ):
        super().__init__()
        hidden_dims = check_hidden_dims(hidden_dims)
        self.param_shapes = {
            name: (shape,) if isinstance(shape, int) else tuple(shape) for name, shape in param_shapes.items()
        }
        self.param_sizes = [math.prod(shape) for shape in self.param_shapes.values()]
        self.context_layer = nn.Linear(context_dim, hidden_dims[0])
        # No bias: the context layer already carries one.
        self.input_layer = nn.Linear(input_dim, hidden_dims[0], bias=False) if input_dim else None
        layers: list[nn.Module] = []
        for width_in, width_out in zip(hidden_dims[:-1], hidden_dims[1:]):
            layers += [nn.SiLU(), nn.Linear(width_in, width_out)]
        last = nn.Linear(hidden_dims[-1], sum(self.param_sizes))
        if last_layer_std is not None:
            nn.init.normal_(last.weight, std=last_layer_std)
            nn.init.zeros_(last.bias)
        sizes = dict(zip(self.param_shapes, self.param_sizes))
        starts = dict(zip(self.param_shapes, itertools.accumulate([0] + self.param_sizes)))
        with torch.no_grad():
            for name, value in (initial_bias or {}).items():
                if name not in self.param_shapes:
                    raise ValueError(f"initial_bias names {name!r}; the outputs are {list(self.param_shapes)}")
                last.bias[starts[name] : starts[name] + sizes[name]] = value
        self.layers = nn.Sequential(*layers, nn.SiLU(), last)

    def project_context(self, context: Tensor) -> Tensor:
        """The first layer's context term ``W_c context + b``, shape (*batch, hidden_dims[0])."""
        return self.context_layer(context)

    def from_projection(self, projected: Tensor, inputs: Tensor | None = None) -> dict[str, Tensor]:
        """Named outputs given the projected context and, if the net has an input layer, inputs.

        ``inputs`` (*draws, *batch, input_dim) may carry more leading axes than ``projected``;
        the projection broadcasts over them.
        """
        hidden = projected if inputs is None else self.input_layer(inputs) + projected
        out = self.layers(hidden)
        return {
            name: value if len(shape) == 1 else value.unflatten(-1, shape)
            for (name, shape), value in zip(self.param_shapes.items(), out.split(self.param_sizes, dim=-1))
        }

    def forward(self, context: Tensor, inputs: Tensor | None = None) -> dict[str, Tensor]:
        """Named outputs of the network for a context (and inputs); see the class docstring."""
        return self.from_projection(self.project_context(context), inputs)
