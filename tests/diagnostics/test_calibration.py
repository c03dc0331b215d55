import arviz as az
import numpy as np
import pytest
import xarray as xr
from scipy import stats

from galppl.diagnostics import coverage, pit, pit_uniformity, tarp, tarp_coverage
from galppl.diagnostics.calibration import pit_values, simultaneous_band, uniformity_test
from galppl.diagnostics.synthetic import synthetic_idata

PARAMS = ["log_mstar", "log_sfr", "z", "log_mbh", "oh"]


def test_pit_of_calibrated_posteriors_is_uniform(calibrated):
    ds = pit(calibrated, seed=0)
    assert list(ds.data_vars) == PARAMS  # discrete oh_detected / p_oh_detected are not parameters
    assert ds.attrs["label"] == "SBC"
    np.testing.assert_array_equal(ds["galaxy"], calibrated.posterior["galaxy"])
    # Missing truths stay NaN, not dropped or filled.
    assert np.isnan(ds["oh"]).sum() == np.isnan(calibrated.observed_data["oh"]).sum() > 0
    uni = pit_uniformity(ds)
    assert (uni["ks_pvalue"] > 0.01).all(), uni["ks_pvalue"].values
    assert (uni["ecdf_in_band"] == 1).all()
    np.testing.assert_allclose(uni["mean"], 0.5, atol=0.04)
    np.testing.assert_allclose(uni["std"], 1 / np.sqrt(12), atol=0.02)


@pytest.mark.parametrize("which, std_sign", [("overconfident", 1), ("underconfident", -1)])
def test_pit_flags_miscalibration(request, which, std_sign):
    uni = pit_uniformity(pit(request.getfixturevalue(which)))
    assert (uni["ks_pvalue"] < 1e-3).all(), uni["ks_pvalue"].values
    assert (uni["ecdf_in_band"] == 0).all()
    # Over-confident: U-shaped PIT, std above 1/sqrt(12); under-confident: humped, below.
    assert (std_sign * (uni["std"] - 1 / np.sqrt(12)) > 0.05).all(), uni["std"].values


@pytest.mark.parametrize("bias, direction", [(1.0, -1), (-1.0, 1)])
def test_biased_posterior_shifts_pit_mean(bias, direction):
    idata = synthetic_idata(300, 100, bias=bias, seed=5)
    uni = pit_uniformity(pit(idata, ["log_mstar", "z"]))
    # Draws shifted up by one posterior width put the truth low in them: PIT mean ~ Phi(-1) ~ 0.16.
    assert (direction * (uni["mean"] - 0.5) > 0.25).all(), uni["mean"].values
    assert (uni["ks_pvalue"] < 1e-6).all()


def test_pit_randomises_ties():
    # Every draw equals the truth: without tie-breaking the PIT would be 0 (or 1) everywhere.
    truth = np.arange(2000.0)
    draws = np.repeat(truth[:, None], 50, axis=1)
    v = pit_values(draws, truth, np.random.default_rng(0))
    assert stats.kstest(v, "uniform").pvalue > 0.01
    # Ties only on part of the draws: 10 below, 20 equal, 20 above -> PIT in [0.2, 0.6].
    d = np.concatenate([np.zeros(10), np.ones(20), 2 * np.ones(20)])
    v = pit_values(np.tile(d, (500, 1)), np.ones(500), np.random.default_rng(1))
    assert v.min() >= 0.2 and v.max() <= 0.6
    assert stats.kstest((v - 0.2) / 0.4, "uniform").pvalue > 0.01


def test_pit_label_for_real_data():
    idata = synthetic_idata(50, 20, simulated=False, seed=2)
    assert pit(idata).attrs["label"] == "held-out PIT (not SBC)"


def test_coverage_of_calibrated_posteriors_matches_nominal(calibrated):
    cov = coverage(calibrated)
    assert set(cov.dims) == {"parameter", "level"}
    assert {0.68, 0.95} <= set(np.round(cov["level"].values, 4))
    # Within binomial error at every level (3.5 sigma for ~100 correlated comparisons).
    assert (np.abs(cov["deviation"]) < 3.5).all(), cov["deviation"].values
    assert int(cov["count"].sel(parameter="oh")) == int(np.isfinite(calibrated.observed_data["oh"]).sum())


def test_coverage_flags_over_and_under_confidence(overconfident, underconfident):
    over = coverage(overconfident, levels=[0.68, 0.95])
    under = coverage(underconfident, levels=[0.68, 0.95])
    # Half-width intervals of a N(0, 1) truth cover P(|Z| < 0.5 z_p): 0.39 at 68%, 0.67 at 95%.
    np.testing.assert_allclose(over["coverage"].sel(level=0.68), 0.39, atol=0.06)
    np.testing.assert_allclose(over["coverage"].sel(level=0.95), 0.67, atol=0.06)
    assert (over["deviation"] < -5).all()
    # Double-width: P(|Z| < 2 z_p) = 0.9525 at 68%, 0.9991 at 95%.
    np.testing.assert_allclose(under["coverage"].sel(level=0.68), 0.95, atol=0.04)
    assert (under["coverage"].sel(level=0.95) > 0.98).all()
    assert (under["deviation"].sel(level=0.68) > 5).all()


def test_coverage_hdi_option(calibrated, overconfident):
    cov = coverage(calibrated, levels=[0.5, 0.9], var_names=["log_mstar", "z"], interval="hdi")
    assert cov.attrs["interval"] == "hdi"
    assert (np.abs(cov["deviation"]) < 3.5).all()
    over = coverage(overconfident, levels=[0.9], var_names="log_sfr", interval="hdi")
    assert float(over["coverage"].squeeze()) < 0.75


def test_coverage_hand_example():
    # Draws 0..99 for 4 galaxies; the central 50% interval is [24.75, 74.25].
    draws = np.tile(np.arange(100.0), (4, 1)).T[None]  # chain, draw, galaxy
    post = xr.Dataset({"x": (("chain", "draw", "galaxy"), draws)}, coords={"galaxy": [1, 2, 3, 4]})
    obs = xr.Dataset({"x": ("galaxy", [10.0, 30.0, 70.0, np.nan])}, coords={"galaxy": [1, 2, 3, 4]})
    cov = coverage(az.InferenceData(posterior=post, observed_data=obs), levels=[0.5, 0.9])
    np.testing.assert_allclose(cov["coverage"].sel(parameter="x"), [2 / 3, 1.0])
    assert int(cov["count"].sel(parameter="x")) == 3


def test_coverage_rejects_bad_levels(calibrated):
    with pytest.raises(ValueError, match="level must lie in"):
        coverage(calibrated, levels=[0.5, 1.2])
    with pytest.raises(ValueError, match="interval must be 'central' or 'hdi'"):
        coverage(calibrated, interval="widest")


def test_tarp_coverage_matches_its_definition():
    # One galaxy, 1-d, reference at 0, truth at 2: f = fraction of draws with |draw| < 2.
    draws = np.array([[[-3.0], [-1.0], [0.5], [1.5], [2.5]]])  # galaxy, sample, dim
    alpha = np.array([0.0, 0.5, 0.6, 1.0])
    ecp, f = tarp_coverage(draws, np.array([[2.0]]), np.array([[0.0]]), alpha)
    assert f.tolist() == [0.6]
    assert ecp.tolist() == [0.0, 0.0, 1.0, 1.0]
    # Two dims, Euclidean distance: reference (0, 0), truth (3, 4) at distance 5.
    draws = np.array([[[1.0, 1.0], [4.0, 4.0], [0.0, 4.9], [5.0, 0.1]]])
    _, f = tarp_coverage(draws, np.array([[3.0, 4.0]]), np.zeros((1, 2)), alpha)
    assert f.tolist() == [0.5]


def test_tarp_calibrated_and_miscalibrated(calibrated, overconfident, underconfident):
    names = ["log_mstar", "log_sfr", "z"]
    cal = tarp(calibrated, names, num_refs=2, seed=0)
    assert cal.attrs["n_galaxies"] == calibrated.posterior.sizes["galaxy"]
    assert abs(float(cal["atc"])) < 0.02 and float(cal["ks_pvalue"]) > 0.01
    np.testing.assert_allclose(cal["ecp"].sel(alpha=[0.0, 1.0]), [0.0, 1.0], atol=0.01)
    over = tarp(overconfident, names, seed=0)
    under = tarp(underconfident, names, seed=0)
    assert float(over["atc"]) < -0.03 and float(over["ks_pvalue"]) < 1e-3
    assert float(under["atc"]) > 0.03 and float(under["ks_pvalue"]) < 1e-3


def test_tarp_uses_only_galaxies_with_all_truths(calibrated):
    ds = tarp(calibrated, ["log_mstar", "oh", "log_mbh"], seed=1)
    obs = calibrated.observed_data
    n_all = int((np.isfinite(obs["oh"]) & np.isfinite(obs["log_mbh"])).sum())
    assert ds.attrs["n_galaxies"] == n_all == ds.sizes["galaxy"]


def _correlated_idata(rho_truth: float, rho_post: float, n=800, s=200, seed=0):
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 3, (n, 2))
    truth = mu + rng.multivariate_normal([0, 0], [[1, rho_truth], [rho_truth, 1]], n)
    draws = mu[:, None] + rng.multivariate_normal([0, 0], [[1, rho_post], [rho_post, 1]], (n, s))
    post = xr.Dataset({k: (("chain", "draw", "galaxy"), draws[None, :, :, i].transpose(0, 2, 1)) for i, k in enumerate("ab")})
    obs = xr.Dataset({k: ("galaxy", truth[:, i]) for i, k in enumerate("ab")})
    return az.InferenceData(posterior=post, observed_data=obs)


def test_tarp_catches_a_wrong_correlation_that_pit_cannot():
    # Marginals exactly right, joint wrong (truth correlation 0.95, posterior -0.95).
    idata = _correlated_idata(0.95, -0.95)
    assert (pit_uniformity(pit(idata))["ks_pvalue"] > 0.01).all()
    assert float(tarp(idata, ["a", "b"], seed=0)["ks_pvalue"]) < 1e-4
    assert float(tarp(_correlated_idata(0.95, 0.95), ["a", "b"], seed=0)["ks_pvalue"]) > 0.01


def test_uniformity_test_band_is_arviz_simultaneous_band():
    lower, upper = simultaneous_band(500, 0.99)
    assert np.all(lower < upper)
    # A 99% simultaneous band is wider than the 99% pointwise binomial interval at the centre.
    lo_pw, hi_pw = stats.binom.interval(0.99, 500, 0.5)
    assert lower[49] <= lo_pw / 500 and upper[49] >= hi_pw / 500
    rng = np.random.default_rng(3)
    assert uniformity_test(rng.uniform(size=500))["ecdf_in_band"] == 1
    assert uniformity_test(rng.uniform(size=500) ** 1.5)["ecdf_in_band"] == 0
