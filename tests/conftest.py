"""Settings and fixtures shared by the whole test suite."""

import pytest
import torch

from galppl.data.paths import sdss_data_dir


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a busy 2-core machine torch's thread pool spins and runs ~5x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def sdss_dir():
    """``../shared/data/sdss`` (or $GALPPL_SDSS_DATA): the real SDSS extracts; skips the test where it is absent."""
    folder = sdss_data_dir()
    if folder is None:
        pytest.skip("../shared/data/sdss is absent (a fresh clone has no shared data; set GALPPL_SDSS_DATA)")
    return folder
