"""predict_catalog: summaries equal predict's draws reduced, chunk by chunk; a killed run resumes
to the same store; a Dask client gives the same store as local threads; tables read by row range.
predict_hats: an LSDB/HATS catalog gives, partition by partition, what predict_catalog writes for
the same galaxies (same rows, same seed); resumes; refuses other settings."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import galppl
from galppl.data import save_catalog
from galppl.data.io import CatalogRows, catalog_format, read_catalog
from galppl.scale import chunk_seed, predict_catalog, summarise_draws

N, CHUNK, DRAWS = 300, 128, 40


@pytest.fixture(scope="module")
def catalog():
    return galppl.simulate(N, seed=2, image_size=None, progress=False)


@pytest.fixture(scope="module")
def posterior(catalog):
    return galppl.fit("props", catalog, inputs="photometry", max_epochs=1, num_couplings=2, hidden_dim=16,
                      progress=False)


@pytest.fixture(scope="module")
def zarr_catalog(catalog, tmp_path_factory):
    return save_catalog(catalog, tmp_path_factory.mktemp("catalog") / "sky.zarr")


def sdss_table(catalog) -> pd.DataFrame:
    """The catalog's photometry as an SDSS CasJobs table (objID, modelMag_*, modelMagErr_*, extinction_*)."""
    columns = {"objID": catalog["galaxy"].values.astype(np.int64)}
    for j, band in enumerate(catalog["band"].values):
        columns[f"modelMag_{band}"] = catalog["mag"].values[:, j]
        columns[f"modelMagErr_{band}"] = catalog["mag_err"].values[:, j]
        columns[f"extinction_{band}"] = catalog["extinction"].values[:, j]
    return pd.DataFrame(columns)


def load(store):
    with xr.open_zarr(store, consolidated=False) as ds:
        return ds.load()


def run(posterior, source, out, **options):
    options = {"num_samples": DRAWS, "chunk_size": CHUNK, "progress": False, **options}
    with pytest.warns(galppl.ood.OutOfDistributionWarning, match=f"of {N} galaxies have inputs unlike"):
        return predict_catalog(posterior, source, out, **options)


def test_summarise_draws_is_numpys_nan_statistics():
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(50, 40))
    draws[rng.random(draws.shape) < 0.2] = np.nan
    draws[:, 3] = np.nan  # no finite draw
    draws[1:, 4] = np.nan  # one finite draw: no sd
    got = summarise_draws(draws, ("mean", "sd", 0.025, 0.5, 0.975))
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        want = np.stack([np.nanmean(draws, 0), np.nanstd(draws, 0, ddof=1),
                         *np.nanquantile(draws, [0.025, 0.5, 0.975], axis=0)], axis=1)
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6, atol=1e-6)
    assert np.isnan(got[3]).all() and np.isnan(got[4, 1]) and got[4, 0] == np.float32(draws[0, 4])
    with pytest.raises(ValueError, match="quantiles in \\[0, 1\\], got 1.5"):
        summarise_draws(draws, ("mean", 1.5))


def test_store_holds_predicts_draws_and_their_summaries(posterior, catalog, zarr_catalog, tmp_path):
    store = run(posterior, zarr_catalog, tmp_path / "out.zarr", keep_draws=True).load()
    assert store.sizes["galaxy"] == N and list(store["chunk_done"].values) == [True] * 3
    np.testing.assert_array_equal(store["galaxy"].values, catalog["galaxy"].values)
    # Chunk 1 (galaxies 128-255) is predict on those galaxies with the chunk's seed.
    rows = slice(CHUNK, 2 * CHUNK)
    with pytest.warns(galppl.ood.OutOfDistributionWarning):
        idata = posterior.predict(catalog.isel(galaxy=rows), DRAWS, seed=chunk_seed(0, 1))
    for name in ("log_mstar", "oh", "oh_detected"):
        np.testing.assert_array_equal(store[f"{name}_draws"].values[rows], idata.posterior[name].values[0].T)
    draws = idata.posterior["log_mstar"].values[0]
    np.testing.assert_allclose(store["log_mstar"].sel(summary="q0.5").values[rows], np.median(draws, 0), rtol=1e-6)
    np.testing.assert_allclose(store["log_mstar"].sel(summary="sd").values[rows], draws.std(0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(store["p_oh_detected"].values[rows], idata.posterior["p_oh_detected"].values[0, 0])
    for name in ("usable", "quality", "ood_score", "out_of_distribution"):
        np.testing.assert_array_equal(store[name].values[rows], idata.constant_data[name].values)
    assert "oh_detected" not in store  # a 0/1 gate is carried by p_oh_detected
    assert store["log_mstar"].attrs["units"] == "dex(Msun)"
    assert list(store["summary"].values) == ["mean", "sd", "q0.025", "q0.16", "q0.5", "q0.84", "q0.975"]


def test_interrupted_run_resumes_to_the_uninterrupted_store(posterior, zarr_catalog, tmp_path, monkeypatch):
    whole = run(posterior, zarr_catalog, tmp_path / "whole.zarr").load()
    import galppl.scale as scale

    real = scale._predict_chunk
    calls = []

    def dies_in_second_chunk(posterior, rows, out, index, *args):
        if calls:  # Dask runs independent chunks in any order: the second one to start dies
            raise RuntimeError("killed")
        calls.append(index)
        return real(posterior, rows, out, index, *args)

    monkeypatch.setattr(scale, "_predict_chunk", dies_in_second_chunk)
    with pytest.raises(RuntimeError, match="killed"):
        predict_catalog(posterior, zarr_catalog, tmp_path / "resumed.zarr", DRAWS, chunk_size=CHUNK, progress=False)
    done = load(tmp_path / "resumed.zarr")["chunk_done"].values
    assert list(np.flatnonzero(done)) == calls and len(calls) == 1
    calls.clear()
    monkeypatch.setattr(scale, "_predict_chunk", lambda *a: calls.append(a[3]) or real(*a))
    resumed = run(posterior, zarr_catalog, tmp_path / "resumed.zarr").load()
    assert sorted(calls) == list(np.flatnonzero(~done))  # the done chunk is not computed again
    xr.testing.assert_identical(resumed, whole)
    with pytest.raises(ValueError, match="num_samples was 40, now 41"):
        predict_catalog(posterior, zarr_catalog, tmp_path / "resumed.zarr", 41, chunk_size=CHUNK, progress=False)


KILLED_RUN = """
import os, signal
import torch
torch.set_num_threads(1)
import galppl, galppl.scale as scale
real = scale._predict_chunk
started = []

def killed_in_third_chunk(posterior, rows, out, index, run, summaries):
    started.append(index)
    if len(started) == 3:  # die after writing part of the chunk's region, before its completion mark
        start = index * run["chunk_size"]
        ds = scale._chunk_summaries(posterior, rows, start, start + 10, run, summaries, 0)
        ds.drop_vars(["galaxy", "summary"]).to_zarr(out, region={{"galaxy": slice(start, start + 10)}},
                                                    consolidated=False, zarr_format=2)
        os.kill(os.getpid(), signal.SIGKILL)
    return real(posterior, rows, out, index, run, summaries)

scale._predict_chunk = killed_in_third_chunk
scale.predict_catalog(galppl.load({model!r}), {catalog!r}, {out!r}, {draws}, chunk_size=60, progress=False)
"""


def test_a_killed_process_resumes_without_losing_or_repeating_galaxies(posterior, zarr_catalog, tmp_path):
    model = posterior.save(tmp_path / "model")
    loaded = galppl.load(model)
    script = KILLED_RUN.format(model=str(model), catalog=str(zarr_catalog), out=str(tmp_path / "killed.zarr"),
                               draws=DRAWS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    assert load(tmp_path / "killed.zarr")["chunk_done"].values.sum() == 2  # of 5
    resumed = run(loaded, zarr_catalog, tmp_path / "killed.zarr", chunk_size=60).load()
    whole = run(loaded, zarr_catalog, tmp_path / "whole.zarr", chunk_size=60).load()
    xr.testing.assert_identical(resumed, whole)


def test_a_dask_client_writes_the_store_local_threads_write(posterior, zarr_catalog, tmp_path):
    distributed = pytest.importorskip("distributed")
    local = run(posterior, zarr_catalog, tmp_path / "local.zarr").load()
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    with cluster:
        with distributed.Client(cluster) as client:
            on_client = run(posterior, zarr_catalog, tmp_path / "client.zarr", client=client).load()
    xr.testing.assert_identical(on_client, local)


def test_tables_are_read_by_row_range_and_predict_like_the_catalog(posterior, catalog, zarr_catalog, tmp_path):
    from astropy.table import Table

    table = sdss_table(catalog)
    table.to_parquet(tmp_path / "sky.parquet", row_group_size=70)
    Table.from_pandas(table).write(tmp_path / "sky.fits")
    for path in (tmp_path / "sky.parquet", tmp_path / "sky.fits"):
        rows = CatalogRows(path)
        assert rows.n_galaxies == N and catalog_format(path) in ("parquet", "fits")
        part = rows.read(60, 150)  # across parquet row groups
        np.testing.assert_array_equal(part["galaxy"].values, catalog["galaxy"].values[60:150])
        np.testing.assert_array_equal(part["mag"].values, catalog["mag"].values[60:150])
        np.testing.assert_array_equal(read_catalog(path)["mag"].values, catalog["mag"].values)
    from_table = run(posterior, tmp_path / "sky.parquet", tmp_path / "table.zarr").load()
    from_catalog = run(posterior, zarr_catalog, tmp_path / "catalog.zarr").load()
    for name in ("log_mstar", "oh", "p_oh_detected", "ood_score"):
        np.testing.assert_array_equal(from_table[name].values, from_catalog[name].values)


def test_tables_without_ids_number_galaxies_by_row_in_the_file(catalog, tmp_path):
    sdss_table(catalog).drop(columns="objID").to_parquet(tmp_path / "noid.parquet", row_group_size=100)
    part = CatalogRows(tmp_path / "noid.parquet").read(250, 300)
    np.testing.assert_array_equal(part["galaxy"].values, np.arange(250, 300))


def test_bad_arguments_are_named(posterior, zarr_catalog, tmp_path):
    with pytest.raises(ValueError, match="must be a zarr store, a path ending in .zarr"):
        predict_catalog(posterior, zarr_catalog, tmp_path / "out.nc")
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1, got 0"):
        predict_catalog(posterior, zarr_catalog, tmp_path / "out.zarr", chunk_size=0)
    with pytest.raises(FileNotFoundError, match="no catalog at"):
        predict_catalog(posterior, tmp_path / "absent.zarr", tmp_path / "out.zarr")
    (tmp_path / "sky.csv").write_text("objID\n1\n")
    with pytest.raises(ValueError, match="a csv file cannot be read a range of rows at a time"):
        predict_catalog(posterior, tmp_path / "sky.csv", tmp_path / "out.zarr")


def test_cutouts_join_a_table_by_galaxy_id(catalog, tmp_path):
    from astropy.io import fits

    table = sdss_table(catalog.isel(galaxy=slice(0, 5)))
    table.to_csv(tmp_path / "sky.csv", index=False)
    (tmp_path / "cutouts").mkdir()
    cubes = {int(gid): np.full((3, 16, 16), k + 1.0, np.float32) for k, gid in enumerate(table["objID"][:3])}
    for gid, cube in cubes.items():
        fits.PrimaryHDU(cube, header=fits.Header({"BUNIT": "nanomaggy"})).writeto(tmp_path / "cutouts" / f"{gid}.fits")
    fits.PrimaryHDU(np.zeros((3, 16, 16), np.float32)).writeto(tmp_path / "cutouts" / "999999.fits")  # no such galaxy
    joined = read_catalog(tmp_path / "sky.csv", cutouts=tmp_path / "cutouts")
    assert joined["image"].shape == (5, 3, 16, 16) and list(joined["channel"].values) == ["g", "r", "i"]
    for k, gid in enumerate(table["objID"][:3]):
        assert (joined["image"].sel(galaxy=gid).values == k + 1.0).all()
    assert np.isnan(joined["image"].values[3:]).all()
    bad_image = (joined["quality"].values & galppl.data.QUALITY_BITS["bad_image"]) != 0
    assert list(bad_image) == [False] * 3 + [True] * 2
    (tmp_path / "foreign").mkdir()
    fits.PrimaryHDU(np.zeros((3, 8, 8), np.float32)).writeto(tmp_path / "foreign" / "123.fits")
    with pytest.raises(galppl.data.CatalogError, match="none of the 5 catalog galaxies has a cutout"):
        read_catalog(tmp_path / "sky.csv", cutouts=tmp_path / "foreign")


# ------------------------------------------------------------------ LSDB / HATS
def hats_catalog(catalog, path, ra, dec, **partitioning):
    """The catalog's SDSS table at sky positions ra, dec (deg), written as a HATS catalog and opened."""
    lsdb = pytest.importorskip("lsdb")
    table = sdss_table(catalog).assign(ra=ra, dec=dec)
    lsdb.from_dataframe(table, lowest_order=0, **partitioning).write_catalog(path, progress_bar=False)
    return lsdb.open_catalog(path)


# LSDB 0.11 itself calls pandas' deprecated inplace= keywords.
@pytest.mark.filterwarnings("ignore:The inplace keyword")
def test_a_hats_partition_equals_predict_catalog_on_the_same_rows(posterior, catalog, tmp_path):
    from galppl.hats import partition_seed, predict_hats

    rng = np.random.default_rng(0)
    # All galaxies in HEALPix order-0 pixel 0 (around ra 45, dec 42), one partition: it draws
    # with chunk 0's seed, so it must equal predict_catalog's single chunk of the same rows.
    sky = hats_catalog(catalog, tmp_path / "sky", rng.uniform(40, 50, N), rng.uniform(35, 45, N),
                       partition_rows=10 * N)
    assert [(p.order, p.pixel) for p in sky.get_healpix_pixels()] == [(0, 0)]
    assert partition_seed(7, 0, 0) == chunk_seed(7, 0)
    got = predict_hats(posterior, tmp_path / "sky", tmp_path / "out", DRAWS, seed=7, progress=False).compute()
    rows = sky.compute()  # in HATS order
    rows.reset_index(drop=True).to_parquet(tmp_path / "rows.parquet")
    want = run(posterior, tmp_path / "rows.parquet", tmp_path / "rows.zarr", chunk_size=N, seed=7).load()
    np.testing.assert_array_equal(got.index.values, rows.index.values)
    np.testing.assert_array_equal(got["galaxy"].values, want["galaxy"].values)
    np.testing.assert_array_equal(got[["ra", "dec"]].values, rows[["ra", "dec"]].values)
    for name in ("log_mstar", "oh", "z"):
        for label in want["summary"].values:
            np.testing.assert_array_equal(got[f"{name}_{label}"].values, want[name].sel(summary=label).values)
    for name in ("p_oh_detected", "usable", "quality", "ood_score", "out_of_distribution"):
        np.testing.assert_array_equal(got[name].values, want[name].values)

    again = predict_hats(posterior, tmp_path / "sky", tmp_path / "out", DRAWS, seed=7, progress=False).compute()
    pd.testing.assert_frame_equal(again, got)
    with pytest.raises(ValueError, match="num_samples was 40, now 41"):
        predict_hats(posterior, tmp_path / "sky", tmp_path / "out", DRAWS + 1, seed=7, progress=False)


@pytest.mark.filterwarnings("ignore:The inplace keyword")
def test_hats_partitions_draw_by_their_pixel_whatever_else_is_computed(posterior, catalog, tmp_path):
    from galppl.hats import predict_hats

    rng = np.random.default_rng(1)
    sky = hats_catalog(catalog, tmp_path / "sky", rng.uniform(0, 360, N), rng.uniform(-60, 60, N),
                       partition_rows=N // 3)
    assert len(sky.get_healpix_pixels()) > 2
    whole = predict_hats(posterior, sky, tmp_path / "whole", DRAWS, progress=False).compute()
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            on_client = predict_hats(posterior, sky, tmp_path / "client", DRAWS, client=client, progress=False)
    pd.testing.assert_frame_equal(on_client.compute(), whole)
    assert sorted(whole["galaxy"].values) == sorted(catalog["galaxy"].values)  # every galaxy once
    pixel = sky.get_healpix_pixels()[1]
    part = predict_hats(posterior, sky.pixel_search([pixel]), tmp_path / "part", DRAWS, progress=False).compute()
    assert 0 < len(part) < N
    np.testing.assert_array_equal(part["log_mstar_q0.5"].values, whole.loc[part.index, "log_mstar_q0.5"].values)
