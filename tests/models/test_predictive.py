"""Sampling without gradients (in-place hidden layers, reused buffers) draws what the autograd
path draws for the same seed; the buffers never leak into outputs or into a kept projection."""

import pyro
import pytest
import torch
from pyro import poutine

from galppl.flows.nets import DenseNet, reused_buffers
from galppl.models.chain import Block, ChainModel


def net_and_inputs(input_dim):
    torch.manual_seed(0)
    net = DenseNet(5, (16, 16, 8), {"shift": 2, "log_scale": (2, 1)}, input_dim=input_dim, last_layer_std=0.5)
    return net, torch.randn(3, 5), torch.randn(7, 3, input_dim) if input_dim else None


@pytest.mark.parametrize("input_dim", [0, 2])
def test_densenet_without_gradients_equals_the_autograd_path(input_dim):
    net, context, inputs = net_and_inputs(input_dim)
    want = net(context, inputs)
    projected = net.project_context(context).detach()
    kept = projected.clone()
    with torch.no_grad(), reused_buffers():
        first = net.from_projection(projected, inputs)
        second = net.from_projection(projected, None if inputs is None else inputs + 1)
        outside = net.from_projection(projected, inputs)  # buffers reused by the second call
    torch.testing.assert_close(projected, kept, rtol=0, atol=0)  # a kept projection is never written
    for name, value in want.items():
        assert first[name].shape == value.shape
        torch.testing.assert_close(first[name], value.detach(), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(outside[name], first[name], rtol=0, atol=0)
    if inputs is not None:
        assert not torch.equal(second["shift"], first["shift"])


def test_densenet_broadcasts_a_projection_with_more_axes_than_the_inputs():
    net, _, _ = net_and_inputs(2)
    projected, inputs = torch.randn(4, 3, 16), torch.randn(3, 2)
    want = net.from_projection(projected, inputs)
    with torch.no_grad(), reused_buffers():
        got = net.from_projection(projected, inputs)
    torch.testing.assert_close(got["shift"], want["shift"].detach(), rtol=1e-6, atol=1e-7)


def test_chain_sample_draws_what_the_traced_model_draws_with_gradients():
    blocks = [Block("core", ("a", "b", "c"), "realnvp", flow_options={"num_couplings": 3}),
              Block("gate", ("d",), "bernoulli"), Block("child", ("e",), "affine", parents=("core",))]
    chain = ChainModel(blocks, 4, hidden_dim=32, head_hidden_dim=16, context_embed_dim=4, seed=0)
    g = torch.Generator().manual_seed(1)
    chain.set_standardisation(torch.randn(200, 4, generator=g), {
        "core": torch.randn(200, 3, generator=g), "gate": (torch.rand(200, 1, generator=g) < 0.5).float(),
        "child": torch.randn(200, 1, generator=g)})
    with torch.no_grad():  # away from the near-identity initialisation
        for p in chain.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    features = torch.randn(6, 4, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(5)
    got = chain.sample(features, 50)
    torch.manual_seed(5)
    with pyro.get_param_store().scope(), torch.enable_grad():
        trace = poutine.trace(chain.model).get_trace(features, 50)
    for block in chain.blocks:
        torch.testing.assert_close(got[block.name], trace.nodes[block.name]["value"].detach(), rtol=1e-5, atol=1e-5)
    assert got["p_gate"].shape == (6, 1)
