"""Checkpoints: a training (and a whole fit) killed between epochs resumes to the uninterrupted result."""

import numpy as np
import pytest
import torch
from torch import nn

import galppl
from galppl.checkpoint import TrainingCheckpoint, checkpoints
from galppl.data import simulate
from galppl.data.files import CorruptFileError
from galppl.train import TrainConfig, train_loss_fn


class Killed(Exception):
    """Stands in for a kill between two epochs."""


def kill_after_saves(monkeypatch, saves: int) -> None:
    """Make the ``saves``-th checkpoint write the last thing the process does."""
    original, count = TrainingCheckpoint.save, {"n": 0}

    def save(self, state):
        original(self, state)
        count["n"] += 1
        if count["n"] == saves:
            raise Killed

    monkeypatch.setattr(TrainingCheckpoint, "save", save)


def regression(seed=0):
    """A small net with dropout (so the random state matters) and its data."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 16), nn.SiLU(), nn.Dropout(0.3), nn.Linear(16, 1))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 3, generator=g)
    y = x.sum(1, keepdim=True) + 0.1 * torch.randn(200, 1, generator=g)

    def loss(x, y, n_total):
        return ((net(x) - y) ** 2).sum() * n_total / len(x)

    return net, loss, {"x": x[:150], "y": y[:150]}, {"x": x[150:], "y": y[150:]}


CONFIG = TrainConfig(lr=1e-2, batch_size=32, max_epochs=12, patience=50, progress=False)


def test_interrupted_training_resumes_to_the_uninterrupted_weights_and_history(tmp_path, monkeypatch):
    net, loss, train, val = regression()
    whole = train_loss_fn(loss, {"net": net}, train, val, CONFIG)
    expected = {k: v.clone() for k, v in net.state_dict().items()}

    net, loss, train, val = regression()
    kill_after_saves(monkeypatch, 5)
    with pytest.raises(Killed), checkpoints(tmp_path):
        train_loss_fn(loss, {"net": net}, train, val, CONFIG)
    monkeypatch.undo()
    net, loss, train, val = regression(seed=99)  # a fresh process: other initial weights, other RNG
    with checkpoints(tmp_path):
        resumed = train_loss_fn(loss, {"net": net}, train, val, CONFIG)
    assert resumed.train_loss == whole.train_loss and resumed.val_loss == whole.val_loss
    assert resumed.best_epoch == whole.best_epoch and resumed.stopped_because == whole.stopped_because == "max_epochs"
    for name, value in net.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_a_finished_training_is_restored_without_training(tmp_path):
    net, loss, train, val = regression()
    with checkpoints(tmp_path):
        first = train_loss_fn(loss, {"net": net}, train, val, CONFIG)
    calls = {"n": 0}

    def counting(**batch):
        calls["n"] += 1
        return loss(**batch)

    net2, _, _, _ = regression(seed=5)
    with checkpoints(tmp_path):
        again = train_loss_fn(counting, {"net": net2}, train, val, CONFIG)
    assert calls["n"] == 0 and again.val_loss == first.val_loss
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), net2.state_dict().values()))


def test_a_checkpoint_of_another_training_or_a_torn_file_is_refused_by_name(tmp_path):
    net, loss, train, val = regression()
    with checkpoints(tmp_path):
        train_loss_fn(loss, {"net": net}, train, val, CONFIG)
    with pytest.raises(ValueError, match=r"training-1\.pt was written by another fit"), checkpoints(tmp_path):
        train_loss_fn(loss, {"net": net}, train, val, TrainConfig(lr=1e-3, max_epochs=3, progress=False))
    path = tmp_path / "training-1.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CorruptFileError, match=r"training-1\.pt cannot be read.*delete it"), checkpoints(tmp_path):
        train_loss_fn(loss, {"net": net}, train, val, CONFIG)


def test_a_killed_fit_resumes_to_the_same_posterior(tmp_path, monkeypatch):
    catalog = simulate(600, seed=3, image_size=None, cache=False)
    options = dict(inputs="photometry", max_epochs=6, num_couplings=2, hidden_dim=32, batch_size=128,
                   progress=False)
    whole = galppl.fit("props", catalog, **options)
    folder = tmp_path / "checkpoints"
    kill_after_saves(monkeypatch, 3)
    with pytest.raises(Killed):
        galppl.fit("props", catalog, checkpoint_dir=folder, **options)
    assert (folder / "training-1.pt").exists()
    monkeypatch.undo()
    resumed = galppl.fit("props", catalog, checkpoint_dir=folder, **options)
    assert not folder.exists()  # removed once the fit ends
    assert resumed.history["val_loss"] == whole.history["val_loss"]
    test = catalog.sel(galaxy=whole.split["test"])
    a, b = whole.sample(test, 20, seed=1), resumed.sample(test, 20, seed=1)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
