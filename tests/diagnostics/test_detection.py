import arviz as az
import numpy as np
import pytest
import xarray as xr

from galppl.diagnostics import detection, plot_reliability


def _hand_idata(observed=(1, 0, 0, 0, 1, np.nan)):
    p = np.array([0.9, 0.8, 0.3, 0.1, 0.6, 0.5])
    post = xr.Dataset(
        {
            "p_oh_detected": (("chain", "draw", "galaxy"), np.broadcast_to(p, (1, 3, 6)).copy()),
            "oh_detected": (("chain", "draw", "galaxy"), np.array([[[1, 1, 0, 0, 1, 0]] * 2 + [[1, 0, 0, 0, 0, 1]]])),
        }
    )
    obs = xr.Dataset({"oh_detected": ("galaxy", np.array(observed, dtype=float))})
    return az.InferenceData(posterior=post, observed_data=obs)


def test_detection_hand_example():
    ds = detection(_hand_idata(), bins=2)
    # threshold 0.5: predicted (1, 1, 0, 0, 1); the galaxy without an observed flag is left out.
    assert int(ds["n"]) == 5 and int(ds["n_missing"]) == 1
    assert ds["confusion"].values.tolist() == [[2, 1], [0, 2]]  # rows true 0/1, cols predicted 0/1
    assert float(ds["accuracy"]) == pytest.approx(4 / 5)
    assert float(ds["precision"]) == pytest.approx(2 / 3)
    assert float(ds["recall"]) == pytest.approx(1.0)
    # positives (0.9, 0.6) outrank negatives (0.8, 0.3, 0.1) in 5 of 6 pairs.
    assert float(ds["roc_auc"]) == pytest.approx(5 / 6)
    assert float(ds["brier"]) == pytest.approx((0.01 + 0.64 + 0.09 + 0.01 + 0.16) / 5)
    np.testing.assert_allclose(ds["mean_predicted"], [0.2, (0.9 + 0.8 + 0.6) / 3])
    np.testing.assert_allclose(ds["observed_frequency"], [0.0, 2 / 3])
    assert ds["bin_count"].values.tolist() == [2, 3]


def test_detection_from_draws_when_no_probability():
    ds = detection(_hand_idata(), prob=None, bins=2)
    assert ds.attrs["probability"] == "oh_detected"
    # draw means: (1, 2/3, 0, 0, 2/3, 1/3) -> same predicted classes as the probability head
    assert ds["confusion"].values.tolist() == [[2, 1], [0, 2]]


def test_detection_of_a_calibrated_head_is_reliable(calibrated):
    ds = detection(calibrated)
    full = ds["bin_count"] >= 30
    dev = np.abs(ds["observed_frequency"] - ds["mean_predicted"]).where(full)
    assert float(dev.max()) < 0.15
    assert 0.7 < float(ds["roc_auc"]) < 1.0
    fig = plot_reliability(ds)
    assert "AUC" in fig.axes[0].get_title()


def test_detection_rejects_bad_input():
    with pytest.raises(ValueError, match="observed values must be 0 or 1"):
        detection(_hand_idata(observed=(1, 0, 2, 0, 1, 0)))
    with pytest.raises(ValueError, match="needs group 'posterior' with variable 'p_x'"):
        detection(_hand_idata(), prob="p_x")
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\]"):
        detection(_hand_idata(), threshold=1.5)
