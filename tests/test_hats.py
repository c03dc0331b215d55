"""predict_hats: an LSDB/HATS catalog gives, partition by partition, the summaries predict_catalog
writes for the same galaxies (same rows, same seed); resumes; refuses other settings."""

import numpy as np
import pytest
import xarray as xr

import galppl
from galppl.scale import chunk_seed, predict_catalog

lsdb = pytest.importorskip("lsdb")
# LSDB 0.11 itself calls pandas' deprecated inplace= keywords.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")
from galppl.hats import partition_seed, predict_hats  # noqa: E402

N, DRAWS = 120, 30


@pytest.fixture(scope="module")
def catalog():
    return galppl.simulate(N, seed=3, image_size=None, progress=False)


@pytest.fixture(scope="module")
def posterior(catalog):
    return galppl.fit("props", catalog, inputs="photometry", max_epochs=1, num_couplings=2, hidden_dim=16,
                      progress=False)


def sdss_frame(catalog, ra, dec):
    """The catalog's photometry as an SDSS table with sky positions (deg)."""
    import pandas as pd

    columns = {"objID": catalog["galaxy"].values.astype(np.int64), "ra": ra, "dec": dec}
    for j, band in enumerate(catalog["band"].values):
        for prefix, name in (("modelMag", "mag"), ("modelMagErr", "mag_err"), ("extinction", "extinction")):
            columns[f"{prefix}_{band}"] = catalog[name].values[:, j]
    return pd.DataFrame(columns)


def hats_catalog(frame, path, **partitioning):
    lsdb.from_dataframe(frame, lowest_order=0, **partitioning).write_catalog(path, progress_bar=False)
    return lsdb.open_catalog(path)


def test_one_partition_equals_predict_catalog_on_the_same_rows(posterior, catalog, tmp_path):
    rng = np.random.default_rng(0)
    # All galaxies in HEALPix order-0 pixel 0 (around ra 45, dec 42), one partition: it draws
    # with chunk 0's seed, so it must equal predict_catalog's single chunk of the same rows.
    sky = hats_catalog(sdss_frame(catalog, rng.uniform(40, 50, N), rng.uniform(35, 45, N)), tmp_path / "sky",
                       partition_rows=10 * N)
    assert [(p.order, p.pixel) for p in sky.get_healpix_pixels()] == [(0, 0)]
    assert partition_seed(7, 0, 0) == chunk_seed(7, 0)
    result = predict_hats(posterior, tmp_path / "sky", tmp_path / "out", DRAWS, seed=7, progress=False)
    got = result.compute()
    rows = sky.compute()  # in HATS order
    rows.reset_index(drop=True).to_parquet(tmp_path / "rows.parquet")
    with pytest.warns(galppl.ood.OutOfDistributionWarning):
        want = predict_catalog(posterior, tmp_path / "rows.parquet", tmp_path / "rows.zarr", DRAWS, chunk_size=N,
                               seed=7, progress=False).load()
    np.testing.assert_array_equal(got.index.values, rows.index.values)
    np.testing.assert_array_equal(got["galaxy"].values, want["galaxy"].values)
    np.testing.assert_array_equal(got[["ra", "dec"]].values, rows[["ra", "dec"]].values)
    for name in ("log_mstar", "oh", "z"):
        for label in want["summary"].values:
            np.testing.assert_array_equal(got[f"{name}_{label}"].values, want[name].sel(summary=label).values)
    for name in ("p_oh_detected", "usable", "quality", "ood_score", "out_of_distribution"):
        np.testing.assert_array_equal(got[name].values, want[name].values)
    assert want["out_of_distribution"].values.any() == got["out_of_distribution"].values.any()

    again = predict_hats(posterior, tmp_path / "sky", tmp_path / "out", DRAWS, seed=7, progress=False)
    xr.testing.assert_equal(xr.Dataset.from_dataframe(again.compute()), xr.Dataset.from_dataframe(got))
    with pytest.raises(ValueError, match="num_samples was 30, now 31"):
        predict_hats(posterior, tmp_path / "sky", tmp_path / "out", DRAWS + 1, seed=7, progress=False)


def test_partitions_draw_by_their_pixel_whatever_else_is_computed(posterior, catalog, tmp_path):
    rng = np.random.default_rng(1)
    sky = hats_catalog(sdss_frame(catalog, rng.uniform(0, 360, N), rng.uniform(-60, 60, N)), tmp_path / "sky",
                       partition_rows=40)
    assert len(sky.get_healpix_pixels()) > 2
    whole = predict_hats(posterior, sky, tmp_path / "whole", DRAWS, progress=False).compute()
    assert sorted(whole["galaxy"].values) == sorted(catalog["galaxy"].values)  # every galaxy once
    pixel = sky.get_healpix_pixels()[1]
    part = predict_hats(posterior, sky.pixel_search([pixel]), tmp_path / "part", DRAWS, progress=False).compute()
    assert 0 < len(part) < N
    np.testing.assert_array_equal(part["log_mstar_q0.5"].values, whole.loc[part.index, "log_mstar_q0.5"].values)
