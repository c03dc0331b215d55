"""Out-of-distribution score and flag: galppl.ood.InputDensity, the Featurizer's copy, predict's flag."""

import json
import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

import galppl
import galppl.diagnostics as gd
from galppl.config import ChainConfig
from galppl.data import load_galaxyzoo, simulate
from galppl.data.schema import QUALITY_BITS, has_flag
from galppl.diagnostics.synthetic import synthetic_idata
from galppl.features import Featurizer, build_features
from galppl.ood import COVARIANCE_FLOOR, MAX_COMPONENTS, InputDensity, OutOfDistributionWarning

QUICK = dict(inputs="photometry", max_epochs=2, num_couplings=2, hidden_dim=32, batch_size=128, progress=False)
# The DR9 galaxies with one glitched magnitude (issue 13), by row of the CSV = galaxy id.
GLITCHED_DR9_ROWS = [4233, 1391, 1504, 1600]


def shift_one_band(catalog, shift, seed=0):
    """A copy of ``catalog`` with one random band per galaxy shifted by ``shift`` mag (either sign)."""
    rng = np.random.default_rng(seed)
    shifted = catalog.copy(deep=True)
    n = catalog.sizes["galaxy"]
    band = rng.integers(0, 5, n)
    shifted["mag"].values[np.arange(n), band] += shift * rng.choice([-1, 1], n)
    return shifted


@pytest.fixture(scope="module")
def catalog():
    return simulate(3000, seed=11, image_size=None, cache=False)


@pytest.fixture(scope="module")
def posterior(catalog):
    return galppl.fit("props", catalog, **QUICK)


@pytest.fixture(scope="module")
def features(catalog):
    return build_features(catalog, "photometry").values


def test_score_is_the_negative_log_density_of_the_mixture(features):
    density = InputDensity.fit(features[:2000], features[2000:2500], 0.99, seed=3)
    mixture = GaussianMixture(density.num_components, covariance_type="full", reg_covar=COVARIANCE_FLOOR,
                              random_state=3).fit(density.standardizer.transform(features[:2000]))
    np.testing.assert_allclose(density.score(features[2500:]),
                               -mixture.score_samples(density.standardizer.transform(features[2500:])), rtol=1e-8, atol=1e-7)
    assert 1 <= density.num_components <= MAX_COMPONENTS
    # Few training galaxies: one component, still a proper density.
    assert InputDensity.fit(features[:100], features[100:200], 0.99).num_components == 1


@pytest.mark.parametrize("quantile", [0.9, 0.99])
def test_threshold_leaves_the_quantile_of_validation_galaxies_unflagged(features, quantile):
    validation = features[2000:2600]
    density = InputDensity.fit(features[:2000], validation, quantile)
    share_flagged = density.flagged(density.score(validation)).mean()
    assert abs(share_flagged - (1 - quantile)) <= 1 / len(validation)


def test_incomplete_inputs_get_no_score_and_no_flag(features):
    density = InputDensity.fit(features[:2000], features[2000:2500], 0.99)
    rows = features[2500:2503].copy()
    rows[1, 4] = np.nan
    scores = density.score(rows)
    assert np.isnan(scores[1]) and np.isfinite(scores[[0, 2]]).all()
    assert not density.flagged(scores)[1]


def test_input_density_errors(features):
    with pytest.raises(ValueError, match="1 validation galaxies have complete inputs; the input density needs at least 2"):
        InputDensity.fit(features[:100], np.vstack([features[100], np.full(9, np.nan)]), 0.99)
    density = InputDensity.fit(features[:100], features[100:200], 0.99)
    with pytest.raises(ValueError, match=r"needs means of shape \(1, 9\)"):
        InputDensity(density.standardizer, density.weights, density.means[:, :3], density.precision_cholesky, 1.0, 0.99)
    with pytest.raises(ValueError, match="quantile must be in"):
        InputDensity(density.standardizer, density.weights, density.means, density.precision_cholesky, 1.0, 1.5)
    with pytest.raises(ValueError, match=r"ChainConfig\.ood_quantile must be a number in \(0, 1\), got 1"):
        ChainConfig(ood_quantile=1)


def test_featurizer_save_load_round_trip_keeps_the_density_exactly(tmp_path, catalog, posterior):
    featurizer = posterior.featurizer
    loaded = Featurizer.load(featurizer.save(tmp_path))
    assert loaded.ood.to_dict() == featurizer.ood.to_dict()
    features = featurizer.features(catalog)
    np.testing.assert_array_equal(loaded.ood_scores(features)["ood_score"].values,
                                  featurizer.ood_scores(features)["ood_score"].values)
    reloaded = galppl.load(posterior.save(tmp_path / "posterior"))
    assert reloaded.featurizer.ood.to_dict() == featurizer.ood.to_dict()
    saved = json.loads((tmp_path / "featurizer.json").read_text())
    del saved["ood"]
    with pytest.raises(ValueError, match="saved without an input density"):
        Featurizer.from_dict(saved)


def test_featurizer_checks_its_density_and_validation_features(catalog, posterior):
    features = build_features(catalog, "photometry")
    with pytest.raises(ValueError, match="validation features .* differ from the training features"):
        Featurizer.from_training("photometry", None, features, features.isel(feature=slice(0, 4)))
    featurizer = posterior.featurizer
    with pytest.raises(ValueError, match="the input density models 9 features, the featurizer gives 4"):
        Featurizer("photometry", None, featurizer.feature_names[:4], featurizer.input_ranges.isel(feature=slice(0, 4)),
                   featurizer.ood)


def test_fit_sets_the_threshold_on_the_validation_galaxies(catalog, posterior):
    assert posterior.featurizer.ood.quantile == posterior.config.chain.ood_quantile == 0.99
    val = posterior.featurizer.ood_scores(posterior.features(catalog.sel(galaxy=posterior.split["val"])))
    assert abs(val["out_of_distribution"].mean().item() - 0.01) <= 1 / val.sizes["galaxy"]


def test_a_band_shifted_by_five_mag_is_flagged_and_clean_galaxies_mostly_not(catalog, posterior):
    test = catalog.sel(galaxy=posterior.split["test"])
    featurizer = posterior.featurizer
    clean = featurizer.ood_scores(featurizer.features(test))
    shifted = featurizer.ood_scores(featurizer.features(shift_one_band(test, 5.0)))
    assert clean["out_of_distribution"].mean() <= 0.03
    assert shifted["out_of_distribution"].all()
    assert (shifted["ood_score"] > clean["ood_score"]).all()


def test_predict_warns_with_the_count_and_carries_flag_and_bit(catalog, posterior):
    test = catalog.sel(galaxy=posterior.split["test"][:60])
    glitched = test.copy(deep=True)
    glitched["mag"].loc[{"galaxy": test["galaxy"].values[:3], "band": "i"}] += 5.0
    with pytest.warns(OutOfDistributionWarning) as caught:
        idata = posterior.predict(glitched, num_samples=20)
    cd = idata.constant_data
    outside = cd["out_of_distribution"].values
    assert outside[:3].all() and cd["out_of_distribution"].dtype == bool
    assert f"{outside.sum()} of 60 galaxies have inputs unlike the training galaxies'" in str(caught[0].message)
    assert "constant_data['out_of_distribution']" in str(caught[0].message)
    np.testing.assert_array_equal(has_flag(cd, "out_of_distribution").values, outside)
    assert "out_of_distribution" in cd["quality"].attrs["flag_meanings"]
    assert cd["ood_score"].attrs["units"] == "nats" and np.isfinite(cd["ood_score"]).all()
    # Flagged galaxies still get draws; the input catalog is not touched.
    assert np.isfinite(idata.posterior["log_mstar"].sel(galaxy=test["galaxy"].values[:3])).all()
    assert not (glitched["quality"].values & QUALITY_BITS["out_of_distribution"]).any()


def test_predict_is_silent_when_no_galaxy_is_out_of_distribution(catalog, posterior):
    test = catalog.sel(galaxy=posterior.split["test"])
    inside = test["galaxy"].values[~posterior.featurizer.ood_scores(posterior.features(test))["out_of_distribution"].values]
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfDistributionWarning)
        idata = posterior.predict(test.sel(galaxy=inside[:40]), num_samples=5)
    assert not idata.constant_data["out_of_distribution"].any()


def test_glitched_real_dr9_galaxies_are_flagged_by_a_mock_trained_model(sdss_dir, posterior):
    real = load_galaxyzoo(sdss_dir / "dr9_galaxyzoo_5k.csv")
    np.testing.assert_array_equal(real["galaxy"].values, np.arange(real.sizes["galaxy"]))  # ids are CSV rows
    with pytest.warns(OutOfDistributionWarning):
        idata = posterior.predict(real.sel(galaxy=GLITCHED_DR9_ROWS + [0, 1, 2]), num_samples=5)
    assert idata.constant_data["out_of_distribution"].sel(galaxy=GLITCHED_DR9_ROWS).all()


def test_report_lists_the_out_of_distribution_galaxies(tmp_path):
    idata = synthetic_idata(60, 20, seed=4)
    idata.constant_data["out_of_distribution"] = ("galaxy", np.isin(np.arange(60), [3, 7]))
    md = gd.report(idata, tmp_path, var_names=["z"], band_trials=20).read_text()
    ids = idata.constant_data["galaxy"].values[[3, 7]]
    assert "2 galaxies are out of distribution (inputs unlike the training galaxies', " in md
    assert f"constant_data['out_of_distribution']): {ids[0]}, {ids[1]}. Their posteriors are extrapolations" in md
