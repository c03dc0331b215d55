"""galppl.fit / predict / save / load on small mock catalogs."""

import copy
import json
import re

import arviz as az
import numpy as np
import pytest
import torch
import xarray as xr

import galppl
from galppl.data import simulate
from galppl.fit import HELD_OUT_CALIBRATION_MIN, FitConfig, default_catalog, split_galaxies
from galppl.models.calibration import MIN_SLOPE_GALAXIES, OUTLIER_BUFFERS, SLOPE_BUFFERS
from galppl.models.chain import ChainModel

# A calibration split of its own, which by default these small catalogs would not get: the
# tests below check what it does.
HALVED = dict(calibration_fraction=0.5)
QUICK = dict(max_epochs=4, num_couplings=2, hidden_dim=32, batch_size=128, progress=False, **HALVED)


@pytest.fixture(scope="module")
def catalog():
    return simulate(1800, seed=3, image_size=None, cache=False)


@pytest.fixture(scope="module")
def posterior(catalog):
    return galppl.fit("props", catalog, inputs="photometry", **QUICK)


def test_split_is_disjoint_covers_everything_and_keeps_vae_apart(catalog):
    config = FitConfig().with_options(vae_fraction=0.3, inputs="image+photometry", **HALVED)
    split = split_galaxies(catalog, config)
    ids = np.concatenate(list(split.values()))
    assert len(ids) == len(set(ids.tolist())) == catalog.sizes["galaxy"]
    n = catalog.sizes["galaxy"]
    assert abs(len(split["test"]) - 0.15 * n) <= 1
    # Half the held-out galaxies stop the training, the other half only calibrate it.
    assert abs(len(split["val"]) - 0.075 * n) <= 1 and abs(len(split["calibration"]) - 0.075 * n) <= 1
    assert abs(len(split["vae"]) - 0.3 * 0.7 * n) <= 2
    photometry_only = split_galaxies(catalog, FitConfig().with_options(inputs="photometry", **HALVED))
    assert len(photometry_only["vae"]) == 0  # no VAE to train: its share goes to the flows


def test_no_calibration_share_calibrates_on_the_val_galaxies(catalog):
    whole = split_galaxies(catalog, FitConfig().with_options(calibration_fraction=0.0))
    halved = split_galaxies(catalog, FitConfig().with_options(**HALVED))
    assert len(whole["calibration"]) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([halved["val"], halved["calibration"]])), whole["val"])
    with pytest.raises(ValueError, match=r"calibration_fraction must be a number in \[0, 1\), got 1"):
        FitConfig().with_options(calibration_fraction=1)
    tiny = catalog.isel(galaxy=slice(0, 20))  # 3 val galaxies: 2 calibrate, 1 would stop the training
    with pytest.raises(ValueError, match=r"'val' split has 1 galaxies: .*or calibration_fraction=0"):
        split_galaxies(tiny, FitConfig().with_options(**HALVED))
    assert len(split_galaxies(tiny, FitConfig().with_options(calibration_fraction=0.0))["val"]) == 3


def test_by_default_half_the_val_galaxies_calibrate_only_where_enough_do():
    """calibration_fraction None: half the val galaxies kept apart where they and the VAE's make
    HELD_OUT_CALIBRATION_MIN galaxies to calibrate on; else all of them stop and calibrate."""
    def split(n, inputs):
        return split_galaxies(xr.Dataset(coords={"galaxy": np.arange(n)}), FitConfig().with_options(inputs=inputs))

    assert HELD_OUT_CALIBRATION_MIN == 500
    large = split(20000, "photometry")  # 3,000 val galaxies: 1,500 calibrate
    assert len(large["calibration"]) == len(large["val"]) == 1500
    small = split(5000, "photometry")  # 750 val galaxies: 375 would be too few
    assert len(small["calibration"]) == 0 and len(small["val"]) == 750
    with_vae = split(5000, "image+photometry")  # the VAE's 1,050 galaxies calibrate too
    assert len(with_vae["calibration"]) == len(with_vae["val"]) == 375 and len(with_vae["vae"]) == 1050


def test_split_seed_fixes_the_split_across_seeds(catalog):
    def test_ids(**kw):
        return split_galaxies(catalog, FitConfig().with_options(**kw))["test"]

    assert not np.array_equal(test_ids(seed=0), test_ids(seed=1))
    for name, ids in split_galaxies(catalog, FitConfig(seed=0)).items():
        np.testing.assert_array_equal(split_galaxies(catalog, FitConfig().with_options(seed=1, split_seed=0))[name], ids)


def test_split_seed_also_fixes_the_embedded_mock_sky(tmp_path, monkeypatch):
    monkeypatch.setenv("GALPPL_CACHE", str(tmp_path))

    def sky(**kw):
        return default_catalog(FitConfig().with_options(n_galaxies=40, inputs="photometry", **kw), progress=False)

    xr.testing.assert_identical(sky(seed=1, split_seed=0), sky(seed=0))
    assert not np.array_equal(sky(seed=1)["z"].values, sky(seed=0)["z"].values)


def test_predict_gives_inference_data_with_truth_inputs_and_units(catalog, posterior):
    test = catalog.sel(galaxy=posterior.split["test"][:40])
    idata = posterior.predict(test, num_samples=50)
    assert isinstance(idata, az.InferenceData)
    assert {"posterior", "observed_data", "constant_data"} <= set(idata.groups())
    post = idata.posterior
    for name in ("log_mstar", "log_sfr", "z", "log_mbh", "oh", "oh_detected", "p_oh_detected"):
        assert post[name].dims == ("chain", "draw", "galaxy")
        assert post[name].shape == (1, 50, 40)
        assert np.isfinite(post[name].values).all()
    assert post["log_mstar"].attrs["units"] == "dex(Msun)"
    np.testing.assert_array_equal(post["galaxy"].values, test["galaxy"].values)
    np.testing.assert_array_equal(idata.observed_data["oh"].values, test["oh"].values)
    # p_oh_detected is the head's probability: constant along draws, within [0, 1]
    p = post["p_oh_detected"].values
    assert np.allclose(p, p[:, :1]) and ((p >= 0) & (p <= 1)).all()
    assert idata.posterior.attrs["simulated"] == 1
    summary = az.summary(idata, var_names=["log_mstar"], coords={"galaxy": test["galaxy"].values[:3]}, kind="stats")
    assert len(summary) == 3


def test_incomplete_inputs_are_carried_with_nan_draws(catalog, posterior):
    test = catalog.sel(galaxy=posterior.split["test"][:10]).copy(deep=True)
    test["mag"].values[2, 0] = np.nan  # u band missing for one galaxy
    idata = posterior.predict(test, num_samples=20)
    usable = idata.constant_data["usable"].values
    assert usable.tolist() == [i != 2 for i in range(10)]
    assert np.isnan(idata.posterior["log_mstar"].values[..., 2]).all()
    assert np.isfinite(idata.posterior["log_mstar"].values[..., usable]).all()


def test_batched_prediction_matches_unbatched_shapes_and_is_seeded(catalog, posterior):
    test = catalog.sel(galaxy=posterior.split["test"][:30])
    a = posterior.sample(test, 20, max_batch_size=7, seed=1)
    b = posterior.sample(test, 20, max_batch_size=7, seed=1)
    c = posterior.sample(test, 20, max_batch_size=7, seed=2)
    np.testing.assert_array_equal(a["z"], b["z"])
    assert not np.array_equal(a["z"], c["z"])
    assert a["z"].shape == (20, 30)


def test_save_load_round_trip_gives_identical_draws(tmp_path, catalog, posterior):
    test = catalog.sel(galaxy=posterior.split["test"][:25])
    posterior.save(tmp_path / "model")
    loaded = galppl.load(tmp_path / "model")
    assert loaded.split["test"] == list(posterior.split["test"])
    a = posterior.predict(test, num_samples=30, seed=5)
    b = loaded.predict(test, num_samples=30, seed=5)
    for name in a.posterior.data_vars:
        np.testing.assert_array_equal(a.posterior[name].values, b.posterior[name].values)


def test_load_refuses_weights_that_do_not_fit_the_saved_chain(tmp_path, posterior):
    path = posterior.save(tmp_path / "model")
    config = json.loads((path / "config.json").read_text())
    config["config"]["chain"]["hidden_dim"] = 64  # as if saved by a galppl whose chain differed
    config["galppl_version"] = "0.0.1"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"chain\.pt.*does not fit.*saved by galppl 0\.0\.1"):
        galppl.load(path)


def test_history_records_training_and_exclusions(posterior):
    history = posterior.history
    assert history["epochs_run"] >= 1 and len(history["val_loss"]) == history["epochs_run"]
    assert set(history["excluded_incomplete_inputs"]) == {"vae", "train", "val", "calibration", "test"}
    calibrating = history["n_calibration"] + history["calibration_left_out_of_distribution"]
    assert calibrating == len(posterior.split["calibration"]) and history["n_calibration"] > 0
    refit = history["residual_refit"]  # the default dropout (0.35): the flows refitted without it
    assert refit["epochs_run"] >= 1 and history["wall_seconds"] >= refit["wall_seconds"] > 0
    # The refit starts from trained flows: they are scored first and kept unless an epoch beats them.
    assert history["start_val_loss"] is None and refit["start_val_loss"] is not None
    assert refit["best_epoch"] == -1 or refit["val_loss"][refit["best_epoch"]] < refit["start_val_loss"]


def test_the_residual_refit_shares_the_chains_time_budget(catalog):
    posterior = galppl.fit("props", catalog, inputs="photometry", max_seconds=1e-3, **QUICK)
    history = posterior.history
    assert history["stopped_because"] == history["residual_refit"]["stopped_because"] == "max_seconds"
    assert history["residual_refit"]["epochs_run"] == 1


def test_a_chain_without_dropout_trains_once(catalog):
    posterior = galppl.fit("props", catalog, inputs="photometry", dropout=0.0, **{**QUICK, "max_epochs": 1})
    assert "residual_refit" not in posterior.history


def test_fit_with_images_trains_vae_on_disjoint_galaxies():
    catalog = simulate(300, seed=4, image_size=16, cache=False)
    post = galppl.fit("props", catalog, vae_max_epochs=1, **QUICK)
    assert post.vae is not None
    assert not set(post.split["vae"]) & set(post.split["train"])
    # The chain never saw the VAE's galaxies: they calibrate it, with the calibration split
    # (those its out-of-distribution density flags apart).
    calibrating = post.history["n_calibration"] + post.history["calibration_left_out_of_distribution"]
    assert calibrating == len(post.split["calibration"]) + len(post.split["vae"])
    assert post.feature_names[:2] == ["latent_mean_0", "latent_mean_1"]
    idata = post.predict(catalog.sel(galaxy=post.split["test"][:5]), num_samples=10)
    assert np.isfinite(idata.posterior["z"].values).all()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"model": "stars"}, ValueError, "unknown model 'stars'"),
        ({"learning_rate": 1.0}, TypeError, "unknown fit option"),
        ({"fractions": (0.5, 0.5, 0.5)}, ValueError, "summing to 1"),
        ({"inputs": "spectra"}, ValueError, "inputs must be one of"),
        ({"image_size": 60}, ValueError, "multiple of 8"),
        ({"split_seed": -1}, ValueError, "split_seed must be a non-negative integer"),
        ({"seed": 1.5}, ValueError, "seed must be a non-negative integer"),
    ],
)
def test_fit_argument_errors(catalog, kwargs, error, message):
    kwargs = dict(kwargs)
    model = kwargs.pop("model", "props")
    with pytest.raises(error, match=message):
        galppl.fit(model, catalog, **kwargs)


def test_a_catalog_without_some_props_labels_is_refused_naming_what_it_can_fit(catalog):
    # The real DR9 file labels only z and log M*: the error says how to fit those alone.
    partial = catalog.drop_vars(["log_sfr", "log_mbh", "oh"])
    with pytest.raises(ValueError, match=r"block 'core' needs catalog variables \['log_sfr'\].*"
                                         r"the catalog labels \['log_mstar', 'z'\].*--variables log_mstar,z"):
        galppl.fit("props", partial, inputs="photometry", **QUICK)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved galppl model"):
        galppl.load(tmp_path)
    (tmp_path / "config.json").write_text('{"kind": "table"}')
    with pytest.raises(ValueError, match="kind 'table'"):
        galppl.load(tmp_path)


def test_saved_posterior_keeps_the_nested_config_and_the_featurizer(tmp_path, catalog, posterior):
    path = posterior.save(tmp_path / "model")
    saved = json.loads((path / "config.json").read_text())
    assert saved["galppl_version"] == galppl.__version__ == "0.12.0"
    assert saved["config"] == posterior.config.to_dict()
    assert saved["config"]["chain"]["inputs"] == "photometry" and saved["config"]["train"]["max_epochs"] == 4
    loaded = galppl.load(path)
    assert loaded.config == posterior.config and loaded.inputs == "photometry" and loaded.vae is None
    xr.testing.assert_identical(loaded.featurizer.input_ranges, posterior.featurizer.input_ranges)


def test_a_model_saved_by_0_2_0_is_refused_naming_both_versions(tmp_path, posterior):
    """config.json as galppl 0.2.0 wrote it: a flat config, chain_options, inputs and feature names."""
    path = tmp_path / "old"
    path.mkdir()
    flat = {"n_galaxies": 20000, "image_size": 64, "fractions": [0.7, 0.15, 0.15], "vae_fraction": 0.3,
            "inputs": "photometry", "hidden_dim": 32, "dropout": 0.2, "num_couplings": 2, "oh_flow": "affine",
            "lr": 0.001, "batch_size": 128, "max_epochs": 4, "patience": 20, "max_seconds": None, "vae_lr": 0.0001,
            "vae_epochs": 40, "vae_patience": 5, "vae_max_seconds": None, "calibrate": True, "seed": 0,
            "split_seed": None}
    old = {"kind": "posterior", "galppl_version": "0.2.0", "model": "props", "inputs": "photometry",
           "feature_names": posterior.feature_names, "blocks": [b.to_dict() for b in posterior.chain.blocks],
           "chain_options": {"hidden_dim": 32, "dropout": 0.2}, "config": flat, "history": {}, "split": {}}
    (path / "config.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match=rf"saved by galppl 0\.2\.0, this is galppl {re.escape(galppl.__version__)}.*refit"):
        galppl.load(path)
    old["galppl_version"] = "9.0.0"  # newer than this galppl: refused too
    (path / "config.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match=rf"saved by galppl 9\.0\.0, this is galppl {re.escape(galppl.__version__)}"):
        galppl.load(path)


@pytest.mark.parametrize("version, removed_prefixes", [("0.3.0", OUTLIER_BUFFERS + SLOPE_BUFFERS),
                                                       ("0.5.0", SLOPE_BUFFERS)])
def test_a_model_saved_before_its_calibration_buffers_loads_without_them_and_predicts_as_it_did(
        tmp_path, catalog, posterior, version, removed_prefixes):
    """galppl 0.3.0 saved no outlier calibration buffers and 0.5.0 no temperature slopes: such a
    model loads with none (the plain flow, one temperature: exactly the distribution it had) and
    draws what it drew."""
    old = copy.deepcopy(posterior)  # as that galppl fitted it: no outlier share, no slopes
    for name, buffer in old.chain.named_buffers():
        if name.startswith(removed_prefixes):
            buffer.fill_(1.0 if name.startswith("outlier_widening_") else 0.0)
    path = old.save(tmp_path / "model")
    state = torch.load(path / "chain.pt", weights_only=True)
    removed = [name for name in state if name.startswith(removed_prefixes)]
    assert removed
    torch.save({k: v for k, v in state.items() if k not in removed}, path / "chain.pt")
    with pytest.raises(ValueError, match="weights do not fit"):  # a save of this galppl must hold them
        galppl.load(path)
    config = json.loads((path / "config.json").read_text())
    config["galppl_version"] = version
    (path / "config.json").write_text(json.dumps(config))
    loaded = galppl.load(path)
    for name in removed:
        default = 1.0 if name.startswith("outlier_widening_") else 0.0
        assert torch.equal(loaded.chain.state_dict()[name], torch.full_like(state[name], default)), name
    test = catalog.sel(galaxy=posterior.split["test"][:20])
    np.testing.assert_array_equal(loaded.sample(test, num_samples=30, seed=1)["z"],
                                  old.sample(test, num_samples=30, seed=1)["z"])


def test_the_fit_calibrates_on_the_calibration_galaxies_only(catalog, monkeypatch):
    """Early stopping reads ``val``; the calibration reads the ``calibration`` galaxies' features,
    without those the out-of-distribution density flags."""
    seen = []
    calibrate = ChainModel.calibrate

    def recording(self, features, *args, **kwargs):
        seen.append(features)
        return calibrate(self, features, *args, **kwargs)

    monkeypatch.setattr(ChainModel, "calibrate", recording)
    # Three calibration galaxies with a glitched g band (3 mag too faint): flagged, so left out.
    calibration_ids = split_galaxies(catalog, FitConfig().with_options(inputs="photometry", **HALVED))["calibration"]
    glitched = catalog.copy(deep=True)
    glitched["mag"].loc[{"galaxy": calibration_ids[:3], "band": "g"}] += 3.0
    posterior = galppl.fit("props", glitched, inputs="photometry", **QUICK)
    assert list(posterior.split["calibration"]) == list(calibration_ids)
    features = posterior.features(glitched.sel(galaxy=posterior.split["calibration"]))
    flagged = posterior.featurizer.ood_scores(features)["out_of_distribution"].values
    assert flagged[:3].all() and flagged.sum() == posterior.history["calibration_left_out_of_distribution"]
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0].numpy(), features.values[~flagged], rtol=1e-6)


def test_the_fit_lets_each_temperature_follow_the_mean_where_enough_galaxies_calibrate(catalog, posterior):
    """Since galppl 0.10 the fit's calibration is conditional: a block calibrated on at least
    MIN_SLOPE_GALAXIES galaxies gets slopes of its log temperature on its mean (as recorded, so
    stored), a block with fewer keeps none."""
    calibration = posterior.history["calibration"]
    assert posterior.history["n_calibration"] >= MIN_SLOPE_GALAXIES
    core = np.array(calibration["core"]["log_temperature_slope"])
    assert core.shape == (3, 3) and np.abs(core).max() > 0
    np.testing.assert_allclose(posterior.chain.log_temperature_slope_core.numpy(), core, rtol=1e-6)
    with_oh = int(np.isfinite(catalog["oh"].sel(galaxy=posterior.split["calibration"]).values).sum())
    assert 0 < with_oh < MIN_SLOPE_GALAXIES
    assert np.all(np.array(calibration["oh"]["log_temperature_slope"]) == 0)


def test_a_model_saved_before_the_calibration_split_loads_saying_it_calibrated_on_val(tmp_path, posterior):
    path = posterior.save(tmp_path / "model")
    config = json.loads((path / "config.json").read_text())
    del config["config"]["data"]["calibration_fraction"]
    config["galppl_version"] = "0.8.0"
    (path / "config.json").write_text(json.dumps(config))
    assert galppl.load(path).config.data.calibration_fraction == 0.0


def test_load_refuses_weights_that_do_not_fit_at_this_version(tmp_path, posterior):
    path = posterior.save(tmp_path / "model")
    config = json.loads((path / "config.json").read_text())
    config["config"]["chain"]["hidden_dim"] = 64
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=rf"chain\.pt.*saved by galppl {re.escape(galppl.__version__)}.*weights do not fit"):
        galppl.load(path)


def test_log_prob_is_the_chains_log_prob_on_the_catalog_tensors(catalog, posterior):
    test = catalog.sel(galaxy=posterior.split["test"][:60]).copy(deep=True)
    test["mag"].values[4, 1] = np.nan  # unusable inputs: NaN for every block
    lp = posterior.log_prob(test, num_draws=16, seed=2)
    blocks = [b.name for b in posterior.chain.blocks]
    assert list(lp.data_vars) == blocks and lp["oh"].dims == ("galaxy",) and lp["oh"].attrs["units"] == "nats"
    np.testing.assert_array_equal(lp["galaxy"].values, test["galaxy"].values)

    tensors = posterior.tensors(test).usable_rows()
    with torch.random.fork_rng():
        torch.manual_seed(2)
        expected = posterior.chain.log_prob(tensors.features, tensors.targets, num_draws=16)
    rows = np.flatnonzero(posterior.tensors(test).usable)
    for name in blocks:
        np.testing.assert_array_equal(lp[name].values[rows], expected[name].numpy().astype(np.float64))
        assert np.isnan(lp[name].values[4])
    # finite exactly where the block's values exist (and the inputs are complete)
    for name, variable in (("core", "z"), ("bh", "log_mbh"), ("oh", "oh")):
        has_value = np.isfinite(test[variable].values) & (np.arange(60) != 4)
        assert np.array_equal(np.isfinite(lp[name].values), has_value), name
    assert (~np.isfinite(test["log_mbh"].values)).any()  # some children are averaged over parent draws
    # batches of 7: the same densities (to float32 rounding) where no parent draw is involved
    batched = posterior.log_prob(test, num_draws=16, seed=2, max_batch_size=7)
    np.testing.assert_allclose(batched["core"].values, lp["core"].values, rtol=1e-5, atol=1e-5)


def test_fit_vae_alone_and_the_removed_fit_vae_model(catalog):
    with pytest.raises(ValueError, match=r"galppl\.fit\('vae'\) was removed in galppl 0\.3\.0.*galppl\.fit_vae"):
        galppl.fit("vae", catalog)
    with pytest.raises(TypeError, match=r"unknown fit_vae option\(s\) \['vae_lr'\]; VAEConfig has"):
        galppl.fit_vae(catalog, vae_lr=1.0)


def test_custom_chain_takes_the_chain_options(catalog):
    from galppl.models import Block

    with pytest.raises(ValueError, match="a custom chain sets each Block's kind itself"):
        galppl.fit((Block("core", ("log_mstar", "z")),), catalog, oh_flow="spline", **QUICK)
    post = galppl.fit((Block("core", ("log_mstar", "z")),), catalog, inputs="photometry", **QUICK)
    assert post.chain.blocks[0].flow_options == {"num_couplings": 2} and post.model == "custom"
    with pytest.raises(ValueError, match=r"block 'dust' needs catalog variables \['dust_mass'\]"):
        galppl.fit((Block("dust", ("dust_mass",), "affine"),), catalog, **QUICK)
