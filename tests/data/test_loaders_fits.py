"""FITS cutouts in nanomaggies: the three accepted layouts, shape checks, bad files."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from galppl.data.io import load_catalog, save_catalog
from galppl.data.loaders import load_fits_cutouts
from galppl.data.schema import CatalogError, has_flag


def cube(seed, side=16):
    """(g, r, i) planes with distinct levels so a swapped band shows."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.normal(level, 0.1, (side, side)) for level in (1.0, 2.0, 3.0)]).astype(np.float32)


def write_cube(path, data, **header):
    hdu = fits.PrimaryHDU(data)
    hdu.header.update(header)
    hdu.writeto(path)


def write_hdus(path, planes, bands):
    hdus = [fits.PrimaryHDU()]
    for plane, band in zip(planes, bands):
        hdu = fits.ImageHDU(plane)
        hdu.header["FILTER"] = band
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(path)


def test_three_layouts_agree(tmp_path):
    data = {7: cube(7), 8: cube(8)}
    for layout in ("cube", "hdus", "files"):
        (tmp_path / layout).mkdir()
    for gid, c in data.items():
        write_cube(tmp_path / "cube" / f"{gid}.fits", c, BUNIT="nanomaggy", RA=150.0 + gid, DEC=2.0)
        # HDUs in r, i, g order: the FILTER keys, not the order, say which is which.
        write_hdus(tmp_path / "hdus" / f"{gid}.fits", c[[1, 2, 0]], ["r", "i", "g"])
        for k, b in enumerate("gri"):
            fits.PrimaryHDU(c[k]).writeto(tmp_path / "files" / f"{gid}_{b}.fits")
    loaded = {layout: load_fits_cutouts(tmp_path / layout) for layout in ("cube", "hdus", "files")}
    for ds in loaded.values():
        assert ds["galaxy"].values.tolist() == [7, 8]
        assert ds["image"].shape == (2, 3, 16, 16) and ds["image"].attrs["units"] == "nanomaggy"
        np.testing.assert_array_equal(ds["image"].values, np.stack([data[7], data[8]]))
        assert (ds["quality"] == 0).all()
    np.testing.assert_array_equal(loaded["cube"]["ra"].values, [157.0, 158.0])
    assert np.isnan(loaded["files"]["ra"].values).all()
    assert "no BUNIT, nanomaggies assumed" in loaded["files"].attrs["conversions"]
    # A list of files works for single-file layouts.
    listed = load_fits_cutouts([tmp_path / "cube" / "8.fits"])
    np.testing.assert_array_equal(listed["image"].values[0], data[8])


def test_resampling_conserves_flux(tmp_path):
    write_cube(tmp_path / "1.fits", cube(1, side=32))
    write_cube(tmp_path / "2.fits", cube(2, side=16))
    with pytest.raises(CatalogError, match="differ in size"):
        load_fits_cutouts(tmp_path)
    ds = load_fits_cutouts(tmp_path, size=16)
    for gid, side in ((1, 32), (2, 16)):
        total = cube(gid, side).sum(axis=(1, 2))
        np.testing.assert_allclose(ds["image"].sel(galaxy=gid).sum(dim=("y", "x")).values, total, rtol=1e-5)
    up = load_fits_cutouts(tmp_path / "2.fits", size=24)
    np.testing.assert_allclose(up["image"].sum(dim=("y", "x")).values[0], cube(2).sum(axis=(1, 2)), rtol=2e-3)


@pytest.mark.parametrize(
    ("writer", "match"),
    [
        (lambda p: write_cube(p, np.ones((4, 8, 8), np.float32)), "4 planes"),
        (lambda p: write_cube(p, np.ones((8, 8), np.float32)), r"shapes \[\(8, 8\)\]"),
        (lambda p: write_cube(p, np.ones((3, 8, 16), np.float32)), "not square"),
        (lambda p: write_cube(p, np.ones((3, 8, 8), np.float32), BUNIT="MJy/sr"), "BUNIT='MJy/sr'"),
        (lambda p: write_hdus(p, np.ones((3, 8, 8), np.float32), ["g", "g", "i"]), "names bands"),
        (lambda p: p.write_bytes(b"SIMPLE  = T" + b"\0" * 500), "not a readable FITS"),
    ],
)
def test_bad_cutouts_are_clear_errors(tmp_path, writer, match):
    writer(tmp_path / "42.fits")
    with pytest.raises(CatalogError, match=match):
        load_fits_cutouts(tmp_path)


def test_truncated_file_and_flag_mode(tmp_path):
    write_cube(tmp_path / "1.fits", cube(1))
    write_cube(tmp_path / "2.fits", cube(2))
    data = (tmp_path / "2.fits").read_bytes()
    (tmp_path / "2.fits").write_bytes(data[: len(data) - 2880])
    with pytest.raises(CatalogError, match=r"2\.fits.*corrupt or truncated"):
        load_fits_cutouts(tmp_path)
    ds = load_fits_cutouts(tmp_path, on_error="flag")
    np.testing.assert_array_equal(has_flag(ds, "bad_image").values, [False, True])
    assert np.isnan(ds["image"].sel(galaxy=2)).all() and np.isfinite(ds["image"].sel(galaxy=1)).all()


def test_missing_band_file(tmp_path):
    for b in "gr":
        fits.PrimaryHDU(np.ones((8, 8), np.float32)).writeto(tmp_path / f"5_{b}.fits")
    with pytest.raises(CatalogError, match=r"galaxy 5: no file for band\(s\) i"):
        load_fits_cutouts(tmp_path)


def test_nan_pixels_are_flagged_and_round_trip(tmp_path):
    c = cube(3)
    c[0, 2, 2] = np.nan
    c[1, 3, 3] = np.inf
    write_cube(tmp_path / "3.fits", c)
    write_cube(tmp_path / "4.fits", cube(4))
    ds = load_fits_cutouts(tmp_path)
    np.testing.assert_array_equal(has_flag(ds, "bad_image").values, [True, False])
    assert np.isnan(ds["image"].sel(galaxy=3).values[1, 3, 3])
    back = load_catalog(save_catalog(ds, tmp_path / "c.nc"))
    np.testing.assert_array_equal(back["image"].values, ds["image"].values)
    np.testing.assert_array_equal(back["quality"].values, ds["quality"].values)
