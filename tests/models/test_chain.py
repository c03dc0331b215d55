"""The chain of conditional blocks: structure checks, Pyro semantics, masking, chain rule, calibration."""

import copy
import math

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from galppl.models.calibration import CALIBRATION_BUFFERS
from galppl.models.chain import Block, ChainModel, check_blocks
from galppl.models.props import props_blocks
from galppl.train import TrainConfig, train_svi


def toy_data(n=3000, seed=0):
    """x -> core (4-d, heteroscedastic, correlated), detection, oh = f(core) + small noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    noise = torch.randn(n, 4, generator=g)
    scale = 0.2 + 0.3 * torch.sigmoid(2 * x[:, 1:2])  # heteroscedastic
    core = torch.stack([10 + 0.5 * x[:, 0], -0.3 + 0.4 * x[:, 1], 0.1 + 0.02 * x[:, 2]], -1)
    core = core + scale * noise[:, :3] * torch.tensor([1.0, 1.0, 0.05])
    core[:, 1] += 0.8 * scale[:, 0] * noise[:, 0]  # correlated residuals
    bh = 8 + 1.5 * (core[:, :1] - 10) + 0.3 * noise[:, 3:]
    detected = (torch.rand(n, 1, generator=g) < torch.sigmoid(2 * x[:, :1])).float()
    oh = 8.9 + 0.3 * (core[:, :1] - 10) - 0.2 * (core[:, 1:2] + 0.3) + 0.02 * torch.randn(n, 1, generator=g)
    oh = torch.where(detected > 0, oh, torch.full_like(oh, math.nan))
    bh[::9] = math.nan  # missing black-hole masses
    bh[(bh <= 4) | (bh >= 11)] = math.nan  # outside log M_BH's physical support: not a measurement
    return x, {"core": core, "bh": bh, "oh_detected": detected, "oh": oh}


def small_chain(feature_dim=3, couplings=4):
    torch.manual_seed(0)
    return ChainModel(props_blocks(num_couplings=couplings), feature_dim, hidden_dim=64, head_hidden_dim=64)


def trained_chain(epochs=60):
    x, targets = toy_data()
    chain = small_chain()
    chain.set_standardisation(x, targets)
    n_train = 2400
    train = {"features": x[:n_train], **{k: v[:n_train] for k, v in targets.items()}}
    val = {"features": x[n_train:], **{k: v[n_train:] for k, v in targets.items()}}
    config = TrainConfig(lr=3e-3, batch_size=256, max_epochs=epochs, patience=8, progress=False)
    train_svi(chain.model, chain.guide, {"chain": chain}, train, val, config)
    return chain, x[n_train:], {k: v[n_train:] for k, v in targets.items()}


@pytest.fixture(scope="module")
def fitted():
    return trained_chain()


@pytest.mark.parametrize(
    "blocks, message",
    [
        ([], "at least one block"),
        ([Block("a", ("x",), "affine", parents=("b",)), Block("b", ("y",), "affine")], "parent 'b' must be an earlier"),
        ([Block("a", ("x", "y")), Block("b", ("y",), "affine")], "modelled by an earlier block"),
        ([Block("a", ("x",), "affine"), Block("a", ("y",), "affine")], "used twice"),
        ([Block("a", ("x",), "affine"), Block("b", ("y",), "affine", gate="a")], "gate 'a' must be an earlier Bernoulli"),
        ([Block("d", ("x",), "bernoulli"), Block("b", ("y",), "affine", parents=("d",))], "is a Bernoulli gate"),
    ],
)
def test_malformed_chains_are_rejected(blocks, message):
    with pytest.raises(ValueError, match=message):
        check_blocks(blocks)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "c", "variables": ("x",), "kind": "realnvp"}, "needs >= 2 variables"),
        ({"name": "c", "variables": ("x", "y"), "kind": "affine"}, "exactly 1 variable"),
        ({"name": "c", "variables": ("x",), "kind": "gmm"}, "kind 'gmm'"),
        ({"name": "c d", "variables": ("x",), "kind": "affine"}, "identifier"),
        ({"name": "c", "variables": ("x",), "kind": "affine", "transform": "log"}, "transform 'log'"),
    ],
)
def test_bad_blocks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Block(**kwargs)


def test_block_dict_round_trip():
    for block in props_blocks():
        assert Block.from_dict(block.to_dict()) == block


def test_model_has_one_site_per_block_and_masks_missing_targets():
    x, targets = toy_data(n=64)
    chain = small_chain()
    chain.set_standardisation(x, targets)
    trace = poutine.trace(chain.model).get_trace(x, **targets)
    trace.compute_log_prob()
    samples = [
        name
        for name, node in trace.nodes.items()
        if node["type"] == "sample" and not site_is_subsample(node) and not name.endswith("_mse")
    ]
    assert samples == ["core", "bh", "oh_detected", "oh"]
    for name, target in targets.items():
        node = trace.nodes[name]
        assert node["is_observed"]
        missing = torch.isnan(target).any(-1)
        assert (node["log_prob"][missing] == 0).all()
        assert (node["log_prob"][~missing] != 0).all()
        assert torch.isfinite(node["log_prob"]).all()


def test_teacher_forcing_conditions_oh_on_true_core():
    x, targets = toy_data(n=32)
    chain = small_chain()
    chain.set_standardisation(x, targets)
    with torch.no_grad():
        for p in chain.flows["oh"].parameters():  # make the O/H flow depend on its context
            p.add_(0.3 * torch.randn_like(p))
    lp = chain.log_prob(x, targets)["oh"]
    shifted = dict(targets, core=targets["core"] + 1.0)
    lp_shifted = chain.log_prob(x, shifted)["oh"]
    finite = torch.isfinite(lp)
    assert not torch.allclose(lp[finite], lp_shifted[finite])


def _make_oh_depend_on_its_context(chain):
    with torch.no_grad():
        for p in chain.flows["oh"].parameters():
            p.add_(0.3 * torch.randn_like(p))


def test_child_of_a_missing_parent_scores_marginalised_over_the_parents_draws():
    x, targets = toy_data(n=90)
    chain = small_chain()
    chain.set_standardisation(x, targets)
    _make_oh_depend_on_its_context(chain)
    no_mbh = torch.isnan(targets["bh"][:, 0]) & ~torch.isnan(targets["oh"][:, 0])
    assert no_mbh.any()
    torch.manual_seed(1)
    lp = chain.log_prob(x, targets, num_draws=16000)
    assert torch.isnan(lp["bh"][no_mbh]).all()  # masked out of the M_BH likelihood...
    assert torch.isfinite(lp["core"][no_mbh]).all()  # ...not out of the core's
    assert torch.isfinite(lp["oh"][no_mbh]).all()  # ...and O/H | core, M_BH still scores
    # The score is log mean_k p(oh | core, M_BH_k) over the chain's own M_BH draws:
    # a Monte Carlo average that a second set of draws reproduces...
    torch.manual_seed(2)
    again = chain.log_prob(x, targets, num_draws=16000)["oh"]
    torch.testing.assert_close(again[no_mbh], lp["oh"][no_mbh], atol=0.03, rtol=0)
    # ...that is below the best single value of M_BH (Jensen) and differs from the mean's.
    grid = torch.linspace(4, 12, 41)
    best = torch.stack([chain.log_prob(x, dict(targets, bh=targets["bh"].nan_to_num(float(m))))["oh"]
                        for m in grid]).max(0).values
    assert (lp["oh"][no_mbh] <= best[no_mbh] + 0.05).all()
    at_mean = chain.log_prob(x, dict(targets, bh=targets["bh"].nan_to_num(float(chain.loc_bh[0]))))["oh"]
    assert not torch.allclose(lp["oh"][no_mbh], at_mean[no_mbh], atol=1e-3)
    # Galaxies whose parents are all measured are scored exactly, without draws.
    known = ~torch.isnan(targets["bh"][:, 0]) & ~torch.isnan(targets["oh"][:, 0])
    torch.testing.assert_close(lp["oh"][known], again[known])


def test_log_prob_needs_at_least_one_draw():
    x, targets = toy_data(n=8)
    with pytest.raises(ValueError, match="num_draws must be >= 1"):
        small_chain().log_prob(x, targets, num_draws=0)


def test_training_conditions_a_child_on_a_draw_where_its_parent_is_missing():
    x, targets = toy_data(n=90)
    chain = small_chain()
    chain.set_standardisation(x, targets)
    values = chain.model(x, **targets)
    missing = torch.isnan(targets["bh"])
    bh = values["bh"]
    assert torch.isfinite(bh).all()  # what the O/H block was conditioned on
    torch.testing.assert_close(bh[~missing], chain.standardise(chain.blocks[1], targets["bh"])[~missing])
    # The draw is a draw from the M_BH block given h and the true core, not a fixed fill.
    assert bh[missing].std() > 0.1
    torch.manual_seed(5)
    assert not torch.equal(chain.model(x, **targets)["bh"][missing], bh[missing])


def test_minibatch_likelihood_is_scaled_to_n_total():
    x, targets = toy_data(n=40)
    chain = small_chain()
    chain.set_standardisation(x, targets)
    full = poutine.trace(chain.model).get_trace(x, **targets).log_prob_sum()
    scaled = poutine.trace(chain.model).get_trace(x, n_total=400, **targets).log_prob_sum()
    assert torch.allclose(scaled, 10 * full, rtol=1e-5)


@pytest.mark.parametrize("n_total", [None, 400])
def test_plain_torch_negative_log_likelihood_equals_the_pyro_elbo(n_total):
    """The training loss in plain torch is the Pyro model's Trace_ELBO loss: value and gradients,
    with dropout, missing targets and a missing parent (drawn with the same random state)."""
    from pyro.infer import Trace_ELBO

    x, targets = toy_data(n=40)
    chain = ChainModel(props_blocks(num_couplings=4), 3, hidden_dim=64, head_hidden_dim=64, dropout=0.2)
    chain.set_standardisation(x, targets)
    chain.train()
    assert torch.isnan(targets["bh"]).any() and torch.isnan(targets["oh"]).any()

    def grads(loss):
        chain.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in chain.parameters()]

    torch.manual_seed(3)
    pyro_loss = Trace_ELBO().differentiable_loss(chain.model, chain.guide, x, n_total=n_total, **targets)
    pyro_grads = grads(pyro_loss)
    torch.manual_seed(3)
    torch_loss = chain.negative_log_likelihood(x, n_total=n_total, **targets)
    torch_grads = grads(torch_loss)
    torch.testing.assert_close(torch_loss, pyro_loss, rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(torch_grads, pyro_grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="cannot be smaller than the minibatch"):
        chain.negative_log_likelihood(x, n_total=10, **targets)


def test_targets_must_name_every_block():
    x, targets = toy_data(n=8)
    with pytest.raises(ValueError, match="must name every block"):
        small_chain().model(x, core=targets["core"])


def test_nan_features_are_refused_with_rows_named():
    x, _ = toy_data(n=8)
    x[3, 1] = math.nan
    with pytest.raises(ValueError, match=r"galaxy rows \[3\]"):
        small_chain().sample(x, 5)


def test_predictive_and_sample_shapes():
    x, targets = toy_data(n=10)
    chain = small_chain()
    chain.set_standardisation(x, targets)
    predictive = pyro.infer.Predictive(chain.model, num_samples=3)(x)
    assert predictive["core"].shape[-2:] == (10, 3)
    draws = chain.sample(x, 7)
    assert draws["core"].shape == (7, 10, 3)
    assert draws["bh"].shape == (7, 10, 1)
    assert draws["oh"].shape == (7, 10, 1)
    assert set(draws["oh_detected"].unique().tolist()) <= {0.0, 1.0}
    assert draws["p_oh_detected"].shape == (10, 1)


def test_log_prob_includes_standardisation_jacobian():
    x, targets = toy_data(n=20)
    chain = small_chain()
    chain.set_standardisation(x, targets)
    lp = chain.log_prob(x, targets)["oh"]
    # Rescale the physical units of O/H by 10: densities drop by log(10) per galaxy.
    chain.loc_oh.mul_(10)
    chain.scale_oh.mul_(10)
    chain.support_oh.mul_(10)  # and its physical support, which is in the same units
    lp10 = chain.log_prob(x, dict(targets, oh=targets["oh"] * 10, core=targets["core"]))["oh"]
    finite = torch.isfinite(lp)
    assert torch.allclose(lp10[finite], lp[finite] - math.log(10), atol=1e-4)


def test_standardisation_errors_name_the_block_and_variable():
    x, targets = toy_data(n=20)
    targets["bh"][1:] = math.nan  # one measured M_BH: no spread to standardise by
    with pytest.raises(ValueError, match="block 'bh': feature\\(s\\) log_mbh have zero variance or fewer than 2"):
        small_chain().set_standardisation(x, targets)
    x[:, 2] = 1.0
    with pytest.raises(ValueError, match="features: feature\\(s\\) 2 have zero variance"):
        small_chain().set_standardisation(x, targets)


def test_signed_log1p_block_is_finite_for_negative_and_huge_values():
    block = Block("lines", ("a", "b"), "realnvp", transform="signed_log1p", flow_options={"num_couplings": 2})
    values = torch.tensor([[-50.0, 0.0], [-1.5, 1e6], [3.0, -0.5]])
    chain = ChainModel([block], 2, hidden_dim=16, head_hidden_dim=16)
    chain.set_standardisation(torch.randn(3, 2), {"lines": values})
    back = chain.unstandardise(block, chain.standardise(block, values))
    assert torch.allclose(back, values, rtol=1e-4)
    assert torch.isfinite(chain.log_prob(torch.randn(3, 2), {"lines": values})["lines"]).all()


def test_trained_chain_is_calibrated_and_keeps_chain_rule_correlations(fitted):
    chain, x, targets = fitted
    draws = chain.sample(x, 400)
    core, oh = draws["core"], draws["oh"][..., 0]
    # 68% and 95% central intervals cover the held-out truth at the nominal rate.
    for k in range(3):
        truth = targets["core"][:, k]
        for level in (0.68, 0.95):
            lo, hi = torch.quantile(core[..., k], torch.tensor([(1 - level) / 2, (1 + level) / 2]), dim=0)
            covered = ((truth > lo) & (truth < hi)).float().mean().item()
            assert abs(covered - level) < 0.06, (k, level, covered)
    truth = targets["bh"][:, 0]
    known = ~torch.isnan(truth)
    lo, hi = torch.quantile(draws["bh"][..., 0], torch.tensor([0.16, 0.84]), dim=0)
    assert abs(((truth > lo) & (truth < hi))[known].float().mean().item() - 0.68) < 0.06
    # M_BH follows the mass drawn for the same galaxy (chain rule, slope 1.5 in the toy).
    assert np.corrcoef(core[:, 0, 0].numpy(), draws["bh"][:, 0, 0].numpy())[0, 1] > 0.5
    # O/H is a near-deterministic function of the core parameters: sampled through the
    # chain rule, its draws must follow the core draws of the same galaxy.
    implied = 0.3 * core[..., 0] - 0.2 * core[..., 1]  # the toy's O/H(core), up to a constant
    corr = [np.corrcoef(implied[:, g].numpy(), oh[:, g].numpy())[0, 1] for g in range(20)]
    assert np.median(corr) > 0.8
    # The detection head separates detected from undetected galaxies.
    p = draws["p_oh_detected"][:, 0]
    det = targets["oh_detected"][:, 0] > 0
    assert p[det].mean() > p[~det].mean() + 0.2


def test_calibration_widens_an_over_confident_block_and_keeps_the_weights():
    x, targets = toy_data(n=1000)
    chain = small_chain()
    chain.set_standardisation(x, targets)
    weights = {k: v.clone() for k, v in chain.state_dict().items() if not k.startswith(CALIBRATION_BUFFERS)}
    nll_before = -chain.log_prob(x, targets)["core"].mean()
    temperatures = {name: c["temperature"] for name, c in chain.calibrate(x, targets).items()}
    nll_after = -chain.log_prob(x, targets)["core"].mean()
    assert nll_after < nll_before
    assert set(temperatures) == {"core", "bh", "oh"}
    assert all(t > 0 for ts in temperatures.values() for t in ts)
    for k, v in chain.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k
    # Residuals three times wider call for larger temperatures.
    stretched_core = targets["core"] * 3.0 - 2 * chain.loc_core
    lower, upper = chain.support_core  # stretched out of the physical support: not a measurement
    stretched_core[((stretched_core <= lower) | (stretched_core >= upper)).any(-1)] = math.nan
    stretched = dict(targets, core=stretched_core)
    t_wide = chain.calibrate(x, stretched)["core"]["temperature"]
    assert min(t_wide) > max(temperatures["core"])


def test_calibration_moves_an_off_centre_block_back(fitted):
    """Targets offset by half a standard deviation: the shift takes it up, and the held-out
    likelihood improves beyond what a temperature alone reaches."""
    chain, x, targets = fitted
    chain = copy.deepcopy(chain)
    offset = 0.5 * chain.scale_core
    moved = dict(targets, core=targets["core"] + offset)
    calibration = chain.calibrate(x, moved)["core"]
    torch.testing.assert_close(torch.tensor(calibration["shift"]), torch.full((3,), 0.5), atol=0.08, rtol=0)
    with_shift = chain.log_prob(x, moved)["core"].mean()
    chain.shift_core.zero_()
    assert with_shift > chain.log_prob(x, moved)["core"].mean()


def mean_pit(chain, x, core):
    return (chain.sample(x, 400)["core"] < core).float().mean(0).mean(0)


def test_calibration_centres_the_pit_where_the_likelihood_shift_does_not(fitted):
    """Only the galaxies with sharp posteriors are off-centre (by about their residual width):
    the likelihood's shift, which weighs them most, over-corrects the others, so the PIT
    would be off-centre on average; the centring puts the mean PIT of every variable at 1/2."""
    chain, x, targets = fitted
    chain = copy.deepcopy(chain)
    sharp = (x[:, 1] < 0).unsqueeze(-1)  # the toy's residual width grows with x[:, 1]
    width = 0.3 * torch.tensor([1.0, 1.0, 0.05])  # about the sharp galaxies' residual sd
    moved = dict(targets, core=targets["core"] + torch.where(sharp, width, 0.0))
    calibration = chain.calibrate(x, moved)["core"]
    centred = mean_pit(chain, x, moved["core"])
    torch.testing.assert_close(centred, torch.full((3,), 0.5), atol=0.015, rtol=0)
    chain.shift_core -= torch.tensor(calibration["centring"])
    uncentred = mean_pit(chain, x, moved["core"])
    assert (uncentred[:2] - 0.5).abs().min() > 0.02, uncentred


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1001])
def test_median_by_selection_is_torch_quantiles_median(n):
    """The calibration's median (selection, not a sort) is ``torch.quantile(x, 0.5)`` exactly,
    the mean of the two middle values for an even count."""
    from galppl.models.calibration import _median

    values = torch.randn(n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    assert _median(values) == float(torch.quantile(values, 0.5))


def test_pit_scale_recovers_a_widened_and_moved_residual():
    """Truths whose gaps from the centre are the draws' residuals moved by 0.3 and widened 1.5
    times: the PIT fit finds that scale and move."""
    from galppl.models.calibration import uniform_pit_scale

    generator = torch.Generator().manual_seed(0)
    residual = torch.randn(128, 2000, generator=generator, dtype=torch.float64)
    gap = 0.3 + 1.5 * torch.randn(2000, generator=generator, dtype=torch.float64)
    scale, move = uniform_pit_scale(residual, gap)
    assert abs(scale - 1.5) < 0.08 and abs(move - 0.3) < 0.08, (scale, move)


def test_pit_scale_covers_the_centre_where_the_likelihood_scale_is_set_by_the_tails():
    """Gaussian draws, truths with a heavy tail (a tenth five times wider): the likelihood's
    Gaussian scale (the gaps' RMS) widens every posterior to reach the tail, so 68% intervals
    cover too much; the PIT's scale keeps the 68% coverage near nominal."""
    from galppl.models.calibration import uniform_pit_scale

    generator = torch.Generator().manual_seed(1)
    n = 4000
    residual = torch.randn(128, n, generator=generator, dtype=torch.float64)
    wide = torch.rand(n, generator=generator) < 0.1
    gap = torch.randn(n, generator=generator, dtype=torch.float64) * torch.where(wide, 5.0, 1.0)

    def coverage_68(scale, move):
        pit = ((move + scale * residual) <= gap).double().mean(0)
        return float(((pit > 0.16) & (pit < 0.84)).double().mean())

    rms = float(gap.pow(2).mean().sqrt())  # what a Gaussian likelihood would set the temperature to
    scale, move = uniform_pit_scale(residual, gap)
    assert scale < rms
    assert abs(coverage_68(scale, move) - 0.68) < abs(coverage_68(rms, 0.0) - 0.68)
    assert abs(coverage_68(scale, move) - 0.68) < 0.04


def test_residuals_only_trains_the_flows_on_the_representation_prediction_uses():
    """Inside ``residuals_only`` the representation and heads are frozen and dropout is off, so
    training moves only the flows and their context embeddings, and the training loss is the
    evaluation-mode loss; everything is restored on exit."""
    from galppl.train import train_loss_fn

    x, targets = toy_data(n=600)
    chain = ChainModel(props_blocks(num_couplings=2), 3, hidden_dim=32, head_hidden_dim=32, dropout=0.5)
    chain.set_standardisation(x, targets)
    assert chain.dropout == 0.5
    frozen = {k: v.clone() for k, v in chain.state_dict().items() if k.startswith(("representation.", "heads."))}
    moving = {k: v.clone() for k, v in chain.state_dict().items() if k.startswith(("flows.", "embeds."))}
    data = {"features": x, **targets}
    config = TrainConfig(max_epochs=3, batch_size=200, lr=1e-2, progress=False)

    def loss(training):  # the same random state for the draws of missing parents
        chain.train(training)
        torch.manual_seed(0)
        return chain.negative_log_likelihood(x, **targets)

    assert loss(True) != loss(False)
    with chain.residuals_only():
        assert chain.dropout == 0.0
        assert loss(True) == loss(False)  # training sees the representation evaluation sees
        train_loss_fn(chain.negative_log_likelihood, {"chain": chain}, data, None, config)
    after = chain.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items())
    assert any(not torch.equal(after[k], v) for k, v in moving.items() if "flows." in k)
    assert chain.dropout == 0.5 and all(p.requires_grad for p in chain.parameters())
