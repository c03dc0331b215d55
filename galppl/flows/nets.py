"""The one MLP builder of galppl (:class:`DenseNet`), seeded construction, soft clamps, checks.

:class:`DenseNet` follows Pyro's ``DenseNN(param_dims=...)``: one network whose output is cut
into named parameters. Its first layer is split as ``W_c context + b (+ W_x inputs)`` so a
caller can project the context once per galaxy and add the per-draw input term later.

Without gradients (sampling), the hidden layers are computed in place in buffers that
:func:`reused_buffers` keeps across calls: a draw of a 12-coupling flow otherwise allocates
two fresh (rows, 128) activations per coupling, and on CPU fresh multi-MB tensors cost page
faults comparable to the matmuls themselves. The numbers are the same as with gradients.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional

# The hidden-activation buffers of reused_buffers, per thread: (slot, shape, dtype, device) -> tensor.
_WORKSPACE = threading.local()

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


@contextlib.contextmanager
def reused_buffers() -> Iterator[None]:
    """Within the block, on this thread, every :class:`DenseNet` evaluated without gradients
    writes its hidden activations into buffers shared by all calls of the block (one per
    shape and layer slot) instead of fresh tensors; they are freed after the block. Its
    outputs are always fresh tensors. For loops that call many networks on same-sized
    batches, such as :meth:`ChainModel.sample <galppl.models.chain.ChainModel.sample>`."""
    previous = getattr(_WORKSPACE, "buffers", None)
    _WORKSPACE.buffers = {}
    try:
        yield
    finally:
        _WORKSPACE.buffers = previous


def _hidden_buffer(slot: int, shape: torch.Size, like: Tensor) -> Tensor:
    """An uninitialised tensor for hidden activations: :func:`reused_buffers`' one for ``slot``
    and ``shape`` when a block is active, a fresh one otherwise."""
    buffers = getattr(_WORKSPACE, "buffers", None)
    if buffers is None:
        return like.new_empty(shape)
    key = (slot, tuple(shape), like.dtype, like.device)
    if key not in buffers:
        buffers[key] = like.new_empty(shape)
    return buffers[key]


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
        if torch.is_grad_enabled():
            hidden = projected if inputs is None else self.input_layer(inputs) + projected
            out = self.layers(hidden)
        else:
            out = self._layers_in_place(projected, inputs)
        return {
            name: value if len(shape) == 1 else value.unflatten(-1, shape)
            for (name, shape), value in zip(self.param_shapes.items(), out.split(self.param_sizes, dim=-1))
        }

    def _layers_in_place(self, projected: Tensor, inputs: Tensor | None) -> Tensor:
        """The last layer's output, the hidden layers computed in place (no autograd)."""
        width = projected.shape[-1]
        if inputs is None:  # projected may be kept by the caller (a context projected once): copy it
            hidden = _hidden_buffer(0, projected.shape, projected).copy_(projected)
        else:
            hidden = torch.matmul(inputs, self.input_layer.weight.t(),
                                  out=_hidden_buffer(0, inputs.shape[:-1] + (width,), projected))
            if torch.broadcast_shapes(hidden.shape, projected.shape) == hidden.shape:
                hidden += projected
            else:  # the projection has more leading axes than the inputs
                hidden = hidden + projected
        linears = self.layers[1::2]  # (SiLU, Linear) pairs
        for slot, layer in enumerate(linears[:-1], start=1):
            rows = functional.silu(hidden, inplace=True).reshape(-1, hidden.shape[-1])
            out = _hidden_buffer(slot, (rows.shape[0], layer.out_features), rows)
            hidden = torch.addmm(layer.bias, rows, layer.weight.t(), out=out).view(*hidden.shape[:-1], -1)
        return linears[-1](functional.silu(hidden, inplace=True))

    def forward(self, context: Tensor, inputs: Tensor | None = None) -> dict[str, Tensor]:
        """Named outputs of the network for a context (and inputs); see the class docstring."""
        return self.from_projection(self.project_context(context), inputs)
