"""Photo-z statistics against hand-computed values."""

import numpy as np
import pytest

from galppl.diagnostics.photoz import photoz_metrics


def test_photoz_metrics_by_hand():
    z_true = np.array([0.1, 0.1, 0.1, 0.1, 0.0, np.nan])
    z_est = np.array([0.1, 0.111, 0.046, 0.32, 0.16, 0.1])
    dz = np.array([0.0, 0.01, -0.049090909, 0.2, 0.16])  # dz / (1 + z): over 1.1, and 1 for z = 0
    m = photoz_metrics(z_true, z_est)
    assert m["n"] == 5
    assert m["nmad"] == pytest.approx(1.4826 * np.median(np.abs(dz - 0.01)))
    assert m["outliers_0.05"] == pytest.approx(2 / 5)
    assert m["outliers_0.15"] == pytest.approx(2 / 5)
    assert m["bias"] == pytest.approx(dz.mean()) and m["median_bias"] == pytest.approx(0.01)


def test_photoz_metrics_errors():
    with pytest.raises(ValueError, match="one shape"):
        photoz_metrics([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="no pair of finite"):
        photoz_metrics([np.nan], [0.1])
