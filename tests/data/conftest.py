"""Fixtures for the data-layer tests: the real SDSS extracts, skipped cleanly when absent."""

from __future__ import annotations

import pytest

from galppl.data.paths import sdss_data_dir


@pytest.fixture(scope="session")
def sdss_dir():
    """``../shared/data/sdss`` (or $GALPPL_SDSS_DATA); skips the test where it is absent."""
    folder = sdss_data_dir()
    if folder is None:
        pytest.skip("../shared/data/sdss is absent (a fresh clone has no shared data; set GALPPL_SDSS_DATA)")
    return folder
