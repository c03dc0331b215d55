"""DistributedDataParallel training (galppl.distributed): two gloo processes on CPU take the same
step as one process on the whole minibatch, and train_loss_fn ends with the same weights."""

import os
import socket

import pytest
import torch

from galppl import distributed
from galppl.models.chain import Block, ChainModel
from galppl.train import TrainConfig, train_loss_fn

FEATURES, N = 3, 96
ROWS = (64, 63, 1)  # an even minibatch, an uneven one, one smaller than the number of processes


def tiny_chain():
    """A float64 chain (a 2-d RealNVP block and an affine child of it) and its training data."""
    blocks = [Block("core", ("a", "b"), "realnvp", flow_options={"num_couplings": 2}),
              Block("child", ("c",), "affine", parents=("core",))]
    chain = ChainModel(blocks, FEATURES, hidden_dim=16, head_hidden_dim=8, context_embed_dim=4, seed=0).double()
    g = torch.Generator().manual_seed(1)
    features = torch.randn(N, FEATURES, generator=g, dtype=torch.float64)
    core = features[:, :2] + 0.3 * torch.randn(N, 2, generator=g, dtype=torch.float64)
    data = {"features": features, "core": core,
            "child": core[:, :1] - features[:, 2:] + 0.1 * torch.randn(N, 1, generator=g, dtype=torch.float64)}
    chain.set_standardisation(features, {"core": data["core"], "child": data["child"]})
    return chain, data


def steps_and_training(chain, data, loss):
    """The loss value and gradients of one minibatch per entry of ROWS, then the weights after
    training a fresh chain for two epochs."""
    results = []
    for rows in ROWS:
        chain.zero_grad()
        value = loss(n_total=N, **{key: tensor[:rows] for key, tensor in data.items()})
        value.backward()
        results.append((value.detach(), [p.grad.clone() for p in chain.parameters()]))
    trained, data = tiny_chain()
    train = {key: tensor[:80] for key, tensor in data.items()}
    val = {key: tensor[80:] for key, tensor in data.items()}
    config = TrainConfig(lr=1e-2, batch_size=25, max_epochs=2, progress=False, seed=3)
    history = train_loss_fn(trained.negative_log_likelihood, {"chain": trained}, train, val, config)
    return results, history.val_loss, trained.state_dict()


def worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    with distributed.process_group("gloo"):
        assert distributed.active() and distributed.is_main_process() == (rank == 0)
        chain, data = tiny_chain()
        result = steps_and_training(chain, data, distributed.shard_loss(chain.negative_log_likelihood,
                                                                        {"chain": chain}))
    torch.save(result, f"{out}/rank{rank}.pt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_take_the_one_process_step_and_train_the_same_weights(tmp_path):
    # fork: the children inherit the imported modules instead of importing galppl again (seconds each)
    torch.multiprocessing.start_processes(worker, args=(2, free_port(), str(tmp_path)), nprocs=2, start_method="fork")
    assert not distributed.active() and distributed.is_main_process()  # this process never joined
    chain, data = tiny_chain()
    single = steps_and_training(chain, data, chain.negative_log_likelihood)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for (value, grads), *on_ranks in zip(single[0], ranks[0][0], ranks[1][0]):
        for rank_value, rank_grads in on_ranks:
            torch.testing.assert_close(rank_value, value, rtol=1e-12, atol=0)
            for got, want in zip(rank_grads, grads):
                torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    for rank in ranks:
        assert rank[1] == pytest.approx(single[1], rel=1e-9)
        for name, want in single[2].items():
            torch.testing.assert_close(rank[2][name], want, rtol=1e-8, atol=1e-10, msg=name)
