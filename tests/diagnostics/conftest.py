"""Shared synthetic InferenceData for the diagnostics tests (built once per session)."""

import matplotlib
import pytest

matplotlib.use("Agg")

from galppl.diagnostics.synthetic import synthetic_idata  # noqa: E402

N_GAL, N_DRAWS = 600, 200


@pytest.fixture(scope="session")
def calibrated():
    return synthetic_idata(N_GAL, N_DRAWS, scale=1.0, seed=11)


@pytest.fixture(scope="session")
def overconfident():
    return synthetic_idata(N_GAL, N_DRAWS, scale=0.5, seed=12)


@pytest.fixture(scope="session")
def underconfident():
    return synthetic_idata(N_GAL, N_DRAWS, scale=2.0, seed=13)
