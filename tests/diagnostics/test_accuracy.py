import arviz as az
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from galppl.diagnostics import accuracy, point_metrics

GAL = [7, 8, 9, 10, 11]


def _tiny_idata():
    """Two draws per galaxy at pred +- 0.1, so the posterior mean is exactly `pred`."""
    pred = {"x": [1.5, 2.0, 2.5, 5.0, 7.0], "z": [0.1, 0.3, 0.5, 1.0, 0.3]}
    truth = {"x": [1.0, 2.0, 3.0, 4.0, np.nan], "z": [0.1, 0.2, 0.5, 1.0, 0.3]}
    post = xr.Dataset(
        {k: (("chain", "draw", "galaxy"), np.array(v)[None, None] + np.array([-0.1, 0.1])[None, :, None]) for k, v in pred.items()},
        coords={"galaxy": GAL},
    )
    obs = xr.Dataset({k: ("galaxy", v) for k, v in truth.items()}, coords={"galaxy": GAL})
    const = xr.Dataset({"flag": ("galaxy", [0, 0, 1, 1, 1])}, coords={"galaxy": GAL})
    return az.InferenceData(posterior=post, observed_data=obs, constant_data=const)


def test_accuracy_equals_hand_computed_numbers():
    acc = accuracy(_tiny_idata())
    x = acc.sel(parameter="x")
    # dx = (0.5, 0, -0.5, 1); the galaxy without a truth is left out and counted.
    assert int(x["count"]) == 4 and int(x["n_missing"]) == 1
    np.testing.assert_allclose(float(x["rmse"]), np.sqrt(0.375))
    np.testing.assert_allclose(float(x["bias"]), 0.25)
    np.testing.assert_allclose(float(x["r2"]), 1 - 1.5 / 5.0)  # SS_tot = 2.25+0.25+0.25+2.25
    np.testing.assert_allclose(float(x["nmad"]), 1.4826 * 0.5)  # median|dx - 0.25| = 0.5
    assert float(x["outlier_fraction"]) == 0.0  # no |dx| > 3 NMAD = 2.22
    z = acc.sel(parameter="z")
    # dz/(1+z) = (0, 0.1/1.2, 0, 0, 0): one of five beyond 0.05.
    assert str(z["residual"].values) == "dz/(1+z)"
    np.testing.assert_allclose(float(z["outlier_fraction"]), 0.2)
    np.testing.assert_allclose(float(z["bias"]), 0.1 / 1.2 / 5)
    assert float(z["nmad"]) == 0.0
    np.testing.assert_allclose(float(z["rmse"]), np.sqrt(0.01 / 5))


def test_accuracy_point_median_and_outliers():
    m = point_metrics(np.array([0.0, 0.1, -0.1, 0.05, 5.0]), np.zeros(5))
    # residuals (0, .1, -.1, .05, 5): median .05, |r - .05| = (.05,.05,.15,0,4.95) -> median .05
    np.testing.assert_allclose(m["nmad"], 1.4826 * 0.05)
    np.testing.assert_allclose(m["outlier_fraction"], 0.2)
    assert np.isnan(m["r2"])  # constant truth: R^2 undefined, not a division by zero
    acc = accuracy(_tiny_idata(), "x", point="median")
    np.testing.assert_allclose(float(acc["bias"].squeeze()), 0.25)


def test_accuracy_in_bins_of_a_discrete_variable():
    acc = accuracy(_tiny_idata(), "x", by="flag")
    assert acc.attrs["by"] == "flag" and acc.sizes["bin"] == 2
    x = acc.sel(parameter="x")
    assert x["count"].values.tolist() == [2, 2]
    assert x["n_missing"].values.tolist() == [0, 1]
    np.testing.assert_allclose(x["rmse"], [np.sqrt(0.25 / 2), np.sqrt(1.25 / 2)])


def test_accuracy_in_quantile_bins_of_r_magnitude(calibrated):
    acc = accuracy(calibrated, by=("mag", "r"), bins=4)
    assert acc.sizes == {"parameter": 5, "bin": 4}
    n = calibrated.posterior.sizes["galaxy"]
    counts = acc["count"] + acc["n_missing"]
    assert (counts.sum("bin") == n).all()
    assert (np.abs(counts.sel(parameter="z") - n / 4) <= 1).all()  # quantile bins: equal counts
    r = calibrated.constant_data["mag"].sel(band="r")
    np.testing.assert_allclose(acc["bin_low"][0], r.min())
    np.testing.assert_allclose(acc["bin_high"][-1], r.max())
    by_da = accuracy(calibrated, "z", by=r.rename("r_mag"), bins=4)
    np.testing.assert_allclose(by_da["nmad"], acc["nmad"].sel(parameter=["z"]))


def test_accuracy_errors():
    idata = _tiny_idata()
    with pytest.raises(ValueError, match="by='nope' is not a variable"):
        accuracy(idata, by="nope")
    with pytest.raises(ValueError, match="point must be 'mean' or 'median'"):
        accuracy(idata, point="mode")
    with pytest.raises(ValueError, match="needs group 'constant_data' with variable 'mag'"):
        accuracy(idata, by=("mag", "r"))


finite = st.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(st.tuples(finite, finite), min_size=2, max_size=30),
    shift=st.floats(-10, 10),
)
def test_point_metrics_invariants(pairs, shift):
    pred, truth = np.array(pairs).T
    m = point_metrics(pred, truth)
    assert m["count"] == len(pairs) and m["n_missing"] == 0
    assert m["rmse"] >= abs(m["bias"]) - 1e-9  # RMS >= |mean|
    assert m["nmad"] >= 0 and 0 <= m["outlier_fraction"] <= 1
    shifted = point_metrics(pred + shift, truth)
    np.testing.assert_allclose(shifted["bias"], m["bias"] + shift, atol=1e-6)
    np.testing.assert_allclose(shifted["nmad"], m["nmad"], atol=1e-6)
