"""The generic SVI loop: losses, early stopping, time budget, config checks, no leaked state."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from galppl.models.plate import galaxy_plate
from galppl.train import TrainConfig, TrainHistory, minibatch_size, train_loss_fn, train_svi

NOISE = 0.1


class Regression(nn.Module):
    """y ~ Normal(w x + b, NOISE): a Pyro model without latent variables (maximum likelihood)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def model(self, x, y, n_total=None):
        pyro.module("regression", self)
        with galaxy_plate(x.shape[0], n_total):
            pyro.sample("y", dist.Normal(self.linear(x).squeeze(-1), NOISE), obs=y)

    @staticmethod
    def guide(x, y, n_total=None):
        pass

    def nll_per_galaxy(self, x, y) -> float:
        with torch.no_grad():
            return float(-dist.Normal(self.linear(x).squeeze(-1), NOISE).log_prob(y).mean())


def line_data(n, slope, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, generator=g)
    y = slope * x[:, 0] + 0.5 + NOISE * torch.randn(n, generator=g)
    return {"x": x, "y": y}


def fit(reg, train, val, **kw):
    cfg = TrainConfig(**{"lr": 0.05, "batch_size": 16, "max_epochs": 30, "progress": False, **kw})
    return train_svi(reg.model, reg.guide, {"regression": reg}, train, val, cfg)


def test_loss_decreases_and_recovers_the_line():
    reg = Regression()
    train, val = line_data(200, 2.0, seed=1), line_data(70, 2.0, seed=2)
    history = fit(reg, train, val, max_epochs=25, patience=25, batch_size=50, lr=0.1)
    assert history.train_loss[-1] < history.train_loss[0] - 10
    assert history.val_loss[history.best_epoch] == min(history.val_loss)
    assert reg.linear.weight.item() == pytest.approx(2.0, abs=0.1)
    assert reg.linear.bias.item() == pytest.approx(0.5, abs=0.1)
    assert history.epochs_run == len(history.train_loss) == len(history.val_loss)


@pytest.mark.parametrize("n_train, expected", [(100_000, 1024), (9800, 1024), (8192, 1024), (8191, 512),
                                               (2988, 256), (300, 32), (5, 32)])
def test_automatic_minibatch_gives_small_catalogs_eight_steps_per_epoch(n_train, expected):
    assert minibatch_size(None, n_train) == expected
    assert minibatch_size(100, n_train) == 100  # a given size is kept


def test_history_records_the_minibatch_trained_with():
    reg = Regression()
    train, val = line_data(600, 2.0, seed=1), line_data(70, 2.0, seed=2)
    history = fit(reg, train, val, batch_size=None, max_epochs=2)
    assert history.batch_size == 64  # 600 galaxies: the largest power of two giving 8 minibatches
    assert len(history.train_loss) == 2
    assert fit(Regression(), train, val, max_epochs=1).batch_size == 16


def test_val_loss_is_the_mean_negative_log_likelihood_per_galaxy():
    # 70 validation galaxies in minibatches of 16 (the last one has 6): the n_total/batch
    # scaling of the plate must still give the exact per-galaxy mean.
    reg = Regression()
    train, val = line_data(100, 2.0, seed=3), line_data(70, 2.0, seed=4)
    history = fit(reg, train, val, max_epochs=3)
    assert history.val_loss[history.best_epoch] == pytest.approx(reg.nll_per_galaxy(**val), rel=1e-5)


def test_early_stopping_restores_the_best_weights():
    # Validation data follow the opposite slope, so the validation loss is best early and
    # worsens as training proceeds: early stopping must fire and roll back.
    train, val = line_data(200, 2.0, seed=5), line_data(50, -2.0, seed=6)
    reg = Regression()
    history = fit(reg, train, val, patience=2, lr=0.01)
    assert history.stopped_because == "early_stopping"
    assert history.epochs_run == history.best_epoch + 3 < 30
    assert history.val_loss[history.best_epoch] == pytest.approx(reg.nll_per_galaxy(**val), rel=1e-5)

    # The same run cut at the best epoch ends with exactly the restored weights.
    replay = Regression()
    fit(replay, train, val, patience=2, lr=0.01, max_epochs=history.best_epoch + 1)
    assert torch.equal(replay.linear.weight, reg.linear.weight)
    assert not reg.training


def test_max_seconds_stops_early():
    reg = Regression()
    history = fit(reg, line_data(2000, 2.0, seed=7), line_data(20, 2.0, seed=8), max_seconds=1e-6, max_epochs=50)
    assert history.stopped_because == "max_seconds"
    assert history.epochs_run == 1
    assert math.isfinite(history.val_loss[0])


def test_training_is_seeded_and_leaves_global_state_alone():
    store = pyro.get_param_store()
    store.clear()
    sentinel = pyro.param("sentinel", torch.tensor(3.0))
    runs = []
    for _ in range(2):
        reg = Regression()
        rng_before = torch.get_rng_state()
        history = fit(reg, line_data(64, 1.0, seed=9), line_data(16, 1.0, seed=10), max_epochs=3)
        runs.append((history.train_loss, reg.linear.weight.item()))
        assert torch.equal(torch.get_rng_state(), rng_before)
    assert runs[0] == runs[1]
    assert list(store.keys()) == ["sentinel"]
    assert torch.equal(store["sentinel"], sentinel)
    store.clear()


def test_no_validation_set_watches_the_training_loss():
    reg = Regression()
    history = fit(reg, line_data(64, 1.0, seed=11), None, max_epochs=4)
    assert history.val_loss == [] and len(history.train_loss) == 4
    assert history.best_epoch == 3


def scripted_validation(val_losses, **kw) -> TrainHistory:
    """Train a one-weight module whose validation loss per epoch is ``val_losses``."""
    module = nn.Linear(1, 1)
    epoch = iter(val_losses)

    def loss_fn(x, n_total):
        value = (module(x) ** 2).mean()  # any differentiable training loss
        return value if module.training else value * 0 + next(epoch)

    data = {"x": torch.ones(1, 1)}  # one galaxy: the validation loss per galaxy is the scripted value
    cfg = TrainConfig(**{"batch_size": 1, "max_epochs": len(val_losses), "progress": False, **kw})
    return train_loss_fn(loss_fn, {"m": module}, data, data, cfg)


def test_relative_plateau_stops_and_keeps_the_lowest_loss():
    # After 1000 -> 900 every step is < 0.1% of the loss: a plateau for min_rel_delta=1e-3.
    losses = [1000.0, 900.0, 899.8, 899.6, 899.4, 899.2, 899.0, 898.8, 500.0]
    history = scripted_validation(losses, patience=3, min_rel_delta=1e-3)
    assert history.stopped_because == "early_stopping"
    assert history.epochs_run == 5  # 900 at epoch 1, then three epochs without a 0.9-nat step
    assert history.best_epoch == 4  # the weights kept are the lowest loss's, small steps or not
    # Without the relative threshold the same losses are improvements every epoch.
    assert scripted_validation(losses, patience=3).stopped_because == "max_epochs"


def test_absolute_min_delta_counts_from_the_last_significant_improvement():
    # Steps of 0.4 nats never exceed min_delta=1 one by one, but add up past it at epoch 3
    # (10 -> 8.8); from there 0.1-nat steps stop the run three epochs later.
    history = scripted_validation([10.0, 9.6, 9.2, 8.8, 8.7, 8.6, 8.5, 8.4, 8.3], patience=3, min_delta=1.0)
    assert history.stopped_because == "early_stopping"
    assert history.epochs_run == 7 and history.best_epoch == 6


def test_diverging_loss_names_epoch_and_minibatch():
    # An absurd learning rate throws the weights to ~1e30, so the float32 loss overflows.
    reg = Regression()
    with pytest.raises(FloatingPointError, match=r"training diverged: the loss went non-finite "
                                                 r"\(inf in epoch \d+, minibatch \d+\) at lr=1e\+30"):
        fit(reg, line_data(64, 1.0, seed=12), None, max_epochs=3, lr=1e30, clip_norm=None)
    assert reg.linear.weight.item() == 0.0  # rolled back to the best (here: initial) weights


def test_unregistered_module_is_an_error():
    reg, other = Regression(), nn.Linear(2, 2)
    cfg = TrainConfig(progress=False, max_epochs=1)
    with pytest.raises(RuntimeError, match="'other'.*pyro.module"):
        train_svi(reg.model, reg.guide, {"regression": reg, "other": other}, line_data(8, 1.0, 0), None, cfg)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": 0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"max_epochs": -1}, "max_epochs"),
        ({"patience": 0}, "patience"),
        ({"min_delta": -1.0}, "min_delta"),
        ({"min_rel_delta": 1.0}, "min_rel_delta"),
        ({"min_rel_delta": float("nan")}, "min_rel_delta"),
        ({"clip_norm": 0.0}, "clip_norm"),
        ({"seed": -3}, "seed"),
        ({"progress": "yes"}, "progress"),
        ({"max_seconds": -5}, "max_seconds"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=f"TrainConfig.{message}"):
        TrainConfig(**kwargs)


def test_bad_data_raises():
    reg, cfg = Regression(), TrainConfig(progress=False)
    with pytest.raises(ValueError, match="disagree on the number of galaxies"):
        train_svi(reg.model, reg.guide, {"regression": reg}, {"x": torch.zeros(4, 1), "y": torch.zeros(5)}, None, cfg)
    with pytest.raises(ValueError, match="different tensors"):
        train_svi(reg.model, reg.guide, {"regression": reg}, line_data(4, 1, 0), {"x": torch.zeros(4, 1)}, cfg)
    with pytest.raises(ValueError, match="no galaxies"):
        train_svi(reg.model, reg.guide, {"regression": reg}, {"x": torch.zeros(0, 1), "y": torch.zeros(0)}, None, cfg)


def test_history_json_round_trip():
    history = TrainHistory([1.0, float("nan")], [2.0, 1.5], 1, 2, 0.3, "max_epochs")
    data = history.to_dict()
    assert data["train_loss"] == [1.0, None]
    back = TrainHistory.from_dict(data)
    assert back.val_loss == [2.0, 1.5] and math.isnan(back.train_loss[1]) and back.best_epoch == 1


def test_fused_clipping_matches_clip_grad_norm_per_tensor():
    """train_loss_fn clips each gradient tensor like pyro.optim's clip_args, in foreach calls."""
    from galppl.train import _clip_each

    g = torch.Generator().manual_seed(0)
    params = [torch.zeros(shape, requires_grad=True) for shape in [(3, 4), (7,), (2, 2, 2)]]
    grads = [torch.randn(p.shape, generator=g) * scale for p, scale in zip(params, [0.1, 50.0, 3.0])]
    for p, grad in zip(params, grads):
        p.grad = grad.clone()
    _clip_each(params, 2.0)
    for p, grad in zip(params, grads):
        expected = grad.clone().requires_grad_()
        expected.grad = grad.clone()
        torch.nn.utils.clip_grad_norm_(expected, 2.0)
        torch.testing.assert_close(p.grad, expected.grad)
    assert params[0].grad.norm() < 2.0 and torch.isclose(params[1].grad.norm(), torch.tensor(2.0), rtol=1e-5)


def gaussian_nll(reg):
    """train_loss_fn's loss for ``reg``: the Gaussian NLL of the minibatch, scaled to n_total galaxies."""
    def loss(x, y, n_total):
        return -dist.Normal(reg.linear(x).squeeze(-1), NOISE).log_prob(y).sum() * n_total / len(y)
    return loss


def trained_regression(slope):
    reg = Regression()
    train_loss_fn(gaussian_nll(reg), {"regression": reg}, line_data(200, slope, seed=11), line_data(50, slope, seed=12),
                  TrainConfig(lr=0.1, batch_size=50, max_epochs=30, patience=30, progress=False))
    return reg


def test_from_trained_keeps_the_starting_weights_when_no_epoch_beats_them():
    # Trained on slope 2, validated on slope 2; then trained on slope -2: every epoch is worse on val.
    val = line_data(50, 2.0, seed=12)
    cfg = TrainConfig(lr=0.05, batch_size=50, max_epochs=5, patience=5, progress=False)
    kept = trained_regression(2.0)
    start = kept.linear.weight.detach().clone(), kept.linear.bias.detach().clone()
    start_loss = kept.nll_per_galaxy(**val)
    history = train_loss_fn(gaussian_nll(kept), {"regression": kept}, line_data(200, -2.0, seed=13), val, cfg,
                            from_trained=True)
    assert history.best_epoch == -1 and history.epochs_run == 5
    assert history.start_val_loss == pytest.approx(start_loss, rel=1e-5)
    assert min(history.val_loss) > history.start_val_loss
    assert torch.equal(kept.linear.weight, start[0]) and torch.equal(kept.linear.bias, start[1])
    assert TrainHistory.from_dict(history.to_dict()).start_val_loss == history.start_val_loss

    moved = trained_regression(2.0)  # without from_trained the best epoch's (worse) weights come back
    plain = train_loss_fn(gaussian_nll(moved), {"regression": moved}, line_data(200, -2.0, seed=13), val, cfg)
    assert plain.best_epoch == 0 and plain.start_val_loss is None
    assert moved.nll_per_galaxy(**val) > start_loss


def test_from_trained_trains_as_before_when_an_epoch_beats_the_start():
    # Scoring the start must not move the training's random stream: same losses, same weights.
    train, val = line_data(200, 2.0, seed=14), line_data(50, 2.0, seed=15)
    cfg = TrainConfig(lr=0.05, batch_size=16, max_epochs=4, patience=4, progress=False)
    runs = []
    for from_trained in (False, True):
        reg = Regression()
        history = train_loss_fn(gaussian_nll(reg), {"regression": reg}, train, val, cfg, from_trained=from_trained)
        runs.append((history, reg.linear.weight.item()))
    (plain, w_plain), (scored, w_scored) = runs
    assert scored.train_loss == plain.train_loss and scored.val_loss == plain.val_loss and w_scored == w_plain
    assert scored.best_epoch == plain.best_epoch >= 0
    assert scored.start_val_loss > max(scored.val_loss)
