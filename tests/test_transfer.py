"""Mock -> real transfer: posterior.recalibrate and galppl.fit(..., init=posterior)."""

import copy
import json
import warnings

import numpy as np
import pytest
import torch

import galppl
from galppl.data.files import file_sha256
from galppl.config import FINE_TUNING
from galppl import diagnostics
from galppl.data import simulate
from galppl.diagnostics.goals import tarp_atc_stderr
from galppl.models.calibration import CALIBRATION_BUFFERS

QUICK = dict(max_epochs=3, num_couplings=2, hidden_dim=32, batch_size=128, progress=False)
# What a real catalog often labels: the rest of the props chain's variables are absent.
NOT_Z_OR_MSTAR = ["log_sfr", "log_mbh", "oh", "oh_detected"]


@pytest.fixture(scope="module")
def catalog():
    return simulate(1000, seed=7, image_size=None, cache=False)


@pytest.fixture(scope="module")
def posterior(catalog):
    # lr 1e-3 at minibatches of 128 (fit's default lr, 2e-3, goes with its minibatches of 1024):
    # three epochs must leave a flow whose shape recalibration can work with.
    return galppl.fit("props", catalog, inputs="photometry", lr=1e-3, **QUICK)


@pytest.fixture(scope="module")
def small_catalog():
    """A second, small labelled sky (the 'real' catalog of these tests), with its own galaxy ids."""
    return simulate(300, seed=8, image_size=None, cache=False)


def held_out(catalog, posterior, noise=0.0):
    held = catalog.sel(galaxy=posterior.split["test"]).copy(deep=True)
    rng = np.random.default_rng(0)
    for name in ("log_mstar", "z", "log_sfr"):
        held[name].values += noise * rng.normal(size=held.sizes["galaxy"]) * (0.02 if name == "z" else 1.0)
    held["z"].values = np.clip(held["z"].values, 1e-3, None)
    return held


def state(posterior):
    return {name: value.clone() for name, value in posterior.chain.state_dict().items()}


def test_recalibrate_changes_only_the_calibration_buffers_and_records_them(catalog, posterior):
    model = copy.deepcopy(posterior)
    before = state(model)
    calibration = model.recalibrate(held_out(catalog, model, noise=0.5))
    after = state(model)
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert changed and all(name.startswith(CALIBRATION_BUFFERS) for name in changed), changed
    assert "temperature_core" in changed
    assert model.featurizer.to_dict() == posterior.featurizer.to_dict()
    record = model.history["recalibrations"][-1]
    # The galaxies the model flags out-of-distribution are left out of the fit, and counted.
    held = held_out(catalog, model)
    flagged = int(model.featurizer.ood_scores(model.features(held))["out_of_distribution"].sum())
    assert record["calibration"] == calibration and record["n_out_of_distribution_left_out"] == flagged
    assert record["n_galaxies"] == len(posterior.split["test"]) - flagged
    json.dumps(model.history)  # saved with the model: JSON-able

    # Residuals widened by noise call for larger temperatures than the clean galaxies do (the
    # temperature of the typical galaxy: each galaxy's follows the core's predicted values): for
    # log M* and log SFR, whose 0.5 dex of noise is large against this quick model's errors. z's
    # 0.01 is a fifth of its z error (0.05 rms) and moves the width by ~2%, within the fit's noise.
    clean = copy.deepcopy(posterior)
    clean.recalibrate(held_out(catalog, clean))
    core = posterior.chain.blocks[0].variables
    assert core[:2] == ("log_mstar", "log_sfr")
    assert (typical_temperature(model, held) > typical_temperature(clean, held))[:2].all()


def typical_temperature(posterior, catalog):
    """The core's temperatures (variable,), geometric mean over the catalog's usable galaxies."""
    tensors = posterior.tensors(catalog)
    chain = posterior.chain
    with torch.no_grad():
        mean = chain.heads["core"](chain.represent(tensors.features[tensors.usable]))["mean"]
        log_temperature = chain.temperature_core.log() + mean @ chain.log_temperature_slope_core.T
    return log_temperature.mean(0).exp()


def test_recalibrate_needs_some_labelled_galaxies_and_names_the_variables_it_leaves(catalog, posterior):
    model = copy.deepcopy(posterior)
    few = held_out(catalog, model).isel(galaxy=slice(0, 9))
    usable = int((~model.featurizer.ood_scores(model.features(few))["out_of_distribution"].values).sum())
    with pytest.raises(ValueError, match=rf"no variable can be recalibrated on this catalog \(each needs at least 10 "
                                         rf"of its {usable} usable, in-distribution galaxies labelled\): "
                                         rf"block 'core': log_mstar labelled on {usable}"):
        model.recalibrate(few)
    before = state(model)
    with pytest.warns(UserWarning, match=r"leaves the calibration of some variables as it was .*block 'bh': "
                                         r"log_mbh labelled on 0"):
        calibration = model.recalibrate(held_out(catalog, model, noise=0.5).drop_vars(["log_mbh", "oh", "oh_detected"]))
    after = state(model)
    assert calibration["core"]["method"] == "likelihood" and calibration["bh"]["method"] == "unchanged"
    assert not torch.equal(before["temperature_core"], after["temperature_core"])
    for block in ("bh", "oh"):
        assert torch.equal(before[f"temperature_{block}"], after[f"temperature_{block}"])


def coverage_and_tarp(posterior, catalog):
    """68/95% coverage (variable, level) of log M*, z, log SFR and the joint TARP ATC of the core."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", galppl.ood.OutOfDistributionWarning)
        idata = posterior.predict(catalog, num_samples=200, seed=0)
    cover = diagnostics.coverage(idata, levels=[0.68, 0.95], var_names=["log_mstar", "z", "log_sfr"])
    return cover["coverage"].values, float(diagnostics.tarp(idata, var_names=["log_mstar", "log_sfr", "z"])["atc"])


def test_recalibrating_on_z_and_mstar_only_repairs_an_injected_z_error_and_keeps_the_rest(posterior):
    """A real catalog labels z and log M* only. The model's z posterior is made off-centre and
    too narrow (shift +0.3 sd, temperature halved); recalibration on 1,000 other galaxies with
    z and log M* alone gives, on 1,000 more, the coverage that recalibrating the untouched
    model gives (within 0.015: the injected error is undone), within 0.05 of nominal (the
    three-epoch flow's shape is not the truth's, which location and scale cannot mend), leaves
    log SFR's (unlabelled) calibration bitwise alone, and the joint TARP that recalibrating the
    untouched model gives (the joint structure is kept). (Not the fitted model's TARP: it was
    calibrated on 75 galaxies, and its errors in the three margins may cancel in the joint,
    which two margins refitted on 1,000 galaxies then expose.)"""
    sky = simulate(2000, seed=9, image_size=None, cache=False)
    calibration_set, test_set = sky.isel(galaxy=slice(0, 1000)), sky.isel(galaxy=slice(1000, None))
    untouched = copy.deepcopy(posterior)
    with pytest.warns(UserWarning, match=r"block 'core': log_sfr labelled on 0"):
        untouched.recalibrate(calibration_set.drop_vars(NOT_Z_OR_MSTAR))
    covered_untouched, atc_untouched = coverage_and_tarp(untouched, test_set)
    model = copy.deepcopy(posterior)
    z = model.chain.blocks[0].variables.index("z")
    model.chain.shift_core[z] += 0.3
    model.chain.temperature_core[z] *= 0.5
    injected, _ = coverage_and_tarp(model, test_set)
    assert injected[1, 0] < 0.68 - 0.2  # the injected error is plain to see
    before = state(model)
    with pytest.warns(UserWarning, match=r"block 'core': log_sfr labelled on 0"):
        calibration = model.recalibrate(calibration_set.drop_vars(NOT_Z_OR_MSTAR))
    assert calibration["core"]["method"] == "marginal_likelihood"
    assert calibration["core"]["variables"] == ["log_mstar", "z"]
    after = state(model)
    sfr = model.chain.blocks[0].variables.index("log_sfr")
    for kind in ("shift", "temperature"):
        assert after[f"{kind}_core"][sfr] == before[f"{kind}_core"][sfr]
        for block in ("bh", "oh"):
            assert torch.equal(after[f"{kind}_{block}"], before[f"{kind}_{block}"])
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith(CALIBRATION_BUFFERS))

    covered, atc = coverage_and_tarp(model, test_set)
    np.testing.assert_allclose(covered[:2], covered_untouched[:2], atol=0.015)
    np.testing.assert_allclose(covered[:2], [[0.68, 0.95]] * 2, atol=0.05)
    assert abs(atc - atc_untouched) <= tarp_atc_stderr(1000)


def test_fine_tune_from_a_saved_model_on_z_and_mstar_only(tmp_path, posterior, small_catalog):
    saved = posterior.save(tmp_path / "mock")
    # As a model fitted on a large catalog (or by galppl 0.9-0.10) has it: a calibration split.
    config = json.loads((saved / "config.json").read_text())
    config["config"]["data"]["calibration_fraction"] = 0.5
    (saved / "config.json").write_text(json.dumps(config))
    init = galppl.load(saved)
    assert init.config.data.calibration_fraction == 0.5
    initial = state(init)
    real = small_catalog.drop_vars(NOT_Z_OR_MSTAR)
    # 10 epochs: at the fine-tuning rate the first few lose to init's weights on validation (which
    # it would then keep, moving nothing); about the fifth beats them
    tuned = galppl.fit(data=real, init=init, **{**QUICK, "max_epochs": 10})
    assert tuned.history["best_epoch"] >= 0

    assert state(init).keys() == initial.keys() and all(torch.equal(v, initial[k]) for k, v in state(init).items())
    assert tuned.featurizer is init.featurizer and tuned.model == "props"
    assert tuned.config.train.lr == FINE_TUNING.lr and tuned.config.data.vae_fraction == 0.0
    # The fine-tune splits its own 300 galaxies by the default rule: too few for a calibration split.
    assert tuned.config.data.calibration_fraction is None and len(tuned.split["calibration"]) == 0
    assert tuned.history["frozen_blocks"] == ["bh", "oh_detected", "oh"]
    assert tuned.history["init_history"] == init.history
    assert tuned.history["start_val_loss"] is not None  # init's weights were a candidate for the best
    assert set(tuned.split["train"]) <= set(real["galaxy"].values.tolist())

    tuned_state = state(tuned)
    moved = {name for name in initial if not torch.equal(initial[name], tuned_state[name])}
    # Blocks without data keep their weights; the core's flow trains on the CRPS of z's and
    # log M*'s marginals, and their calibration is refitted on those marginals; log SFR keeps
    # init's shift and temperature, and the standardisation stays init's. init (its 150 validation
    # galaxies calibrate it) has temperature slopes; the 45 here are too few for slopes, so z's and
    # log M*'s go back to one temperature each.
    trained = ("representation.", "heads.core.", "flows.core.", "shift_core", "temperature_core")
    assert moved and all(name.startswith((*trained, "log_temperature_slope_core")) for name in moved), sorted(moved)
    for prefix in trained:
        assert any(name.startswith(prefix) for name in moved), prefix
    sfr = init.chain.blocks[0].variables.index("log_sfr")
    for kind in ("shift", "temperature"):
        assert tuned_state[f"{kind}_core"][sfr] == initial[f"{kind}_core"][sfr]
    slopes = tuned_state["log_temperature_slope_core"]
    assert torch.equal(slopes[sfr], initial["log_temperature_slope_core"][sfr])
    assert not slopes[[i for i in range(3) if i != sfr]].any()
    assert tuned.history["calibration"]["core"]["variables"] == ["log_mstar", "z"]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", galppl.ood.OutOfDistributionWarning)  # a few, on a sky of another seed
        idata = tuned.predict(real, num_samples=20)
    for name in ("log_mstar", "log_sfr", "z", "log_mbh", "oh"):
        assert np.isfinite(idata.posterior[name].values).all()


def test_fine_tune_with_every_variable_trains_every_block_and_recalibrates(posterior, small_catalog):
    tuned = galppl.fit(data=small_catalog, init=posterior, **QUICK)
    assert tuned.history["frozen_blocks"] == []
    initial, tuned_state = state(posterior), state(tuned)
    for prefix in ("flows.core.", "flows.bh.", "heads.oh_detected.", "temperature_core", "shift_core"):
        assert any(not torch.equal(initial[k], tuned_state[k]) for k in initial if k.startswith(prefix)), prefix
    for prefix in ("feature_loc", "feature_scale", "loc_", "scale_"):
        assert all(torch.equal(initial[k], tuned_state[k]) for k in initial if k.startswith(prefix)), prefix
    assert tuned.history["calibration"]["core"]["temperature"] != [1.0, 1.0, 1.0] and len(tuned.history["val_loss"]) == tuned.history["epochs_run"]


def test_fine_tune_refuses_another_chain_or_other_features(tmp_path, posterior, small_catalog):
    with pytest.raises(ValueError, match=r"fitted with inputs='photometry'; got inputs='image\+photometry'"):
        galppl.fit(data=small_catalog, init=posterior, inputs="image+photometry", **QUICK)
    with pytest.raises(ValueError, match=r"fitted with hidden_dim=32; got hidden_dim=64"):
        galppl.fit(data=small_catalog, init=posterior, **{**QUICK, "hidden_dim": 64})
    with pytest.raises(ValueError, match=r"model 'lines' differs from init's model 'props'"):
        galppl.fit("lines", small_catalog, init=posterior, **QUICK)
    with pytest.raises(ValueError, match=r"both init= and ensemble="):
        galppl.fit(data=small_catalog, init=posterior, ensemble=2)
    with pytest.raises(ValueError, match=r"catalog has none of the variables"):
        galppl.fit(data=small_catalog.drop_vars(["log_mstar", "z", *NOT_Z_OR_MSTAR]), init=posterior, **QUICK)
    with pytest.raises(ValueError, match=r"needs a labelled catalog"):
        galppl.fit(init=posterior)
    with pytest.raises(TypeError, match=r"init must be a fitted GalaxyPosterior"):
        galppl.fit(data=small_catalog, init=tmp_path)

    # A model whose features were named otherwise (say, by another galppl) does not read this catalog.
    path = posterior.save(tmp_path / "renamed")
    saved = json.loads((path / "featurizer.json").read_text())
    saved["feature_names"] = [name.replace("mag_", "petro_") for name in saved["feature_names"]]
    (path / "featurizer.json").write_text(json.dumps(saved))
    config = json.loads((path / "config.json").read_text())  # a consistent model, not a corrupt one
    config["checksums"]["files"]["featurizer.json"] = file_sha256(path / "featurizer.json")
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"catalog gives features .*'mag_u'.*the model was fitted on .*'petro_u'"):
        galppl.fit(data=small_catalog, init=galppl.load(path), **QUICK)
