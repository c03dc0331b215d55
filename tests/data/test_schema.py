"""The catalog data model: validate() accepts good catalogs and names what is wrong in bad ones."""

import numpy as np
import pytest
import xarray as xr

from galppl.data import CatalogError, load_catalog, save_catalog, validate
from galppl.data.schema import QUALITY_BITS, attrs_for, flag, has_flag, new_catalog


def good_catalog(n=6, image_size=8):
    rng = np.random.default_rng(0)
    ds = new_catalog(np.arange(100, 100 + n), ra=rng.uniform(0, 360, n), dec=rng.uniform(-10, 60, n), source="test")
    ds["mag"] = (("galaxy", "band"), rng.uniform(14, 18, (n, 5)), attrs_for("mag"))
    ds["mag_err"] = (("galaxy", "band"), rng.uniform(0.01, 0.05, (n, 5)), attrs_for("mag_err"))
    ds["extinction"] = (("galaxy", "band"), rng.uniform(0.0, 0.2, (n, 5)), attrs_for("extinction"))
    ds["image"] = (("galaxy", "channel", "y", "x"), rng.random((n, 3, image_size, image_size), dtype=np.float32),
                   attrs_for("image"))
    ds["log_mstar"] = ("galaxy", rng.uniform(9, 11.5, n), attrs_for("log_mstar"))
    ds["z"] = ("galaxy", rng.uniform(0.01, 0.3, n), attrs_for("z"))
    det = np.array([1, 0] * (n // 2), dtype=np.int8)
    ds["oh_detected"] = ("galaxy", det, attrs_for("oh_detected"))
    ds["oh"] = ("galaxy", np.where(det == 1, 8.9, np.nan), attrs_for("oh"))
    ds["flux_halpha"] = ("galaxy", rng.normal(50, 80, n), attrs_for("flux_halpha"))
    return ds


def test_good_catalog_passes_and_is_returned():
    ds = good_catalog()
    assert validate(ds) is ds


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda ds: ds.drop_dims("galaxy"), "no 'galaxy' dimension"),
        (lambda ds: ds.assign(z=("galaxy", np.r_[-0.5, ds.z.values[1:]], attrs_for("z"))), "'z' has values below"),
        (lambda ds: ds.assign(log_mstar=("galaxy", ds.log_mstar.values, {"units": "Msun"})), "units 'Msun'"),
        (lambda ds: ds.assign(log_mstar=("galaxy", ds.log_mstar.values)), "no 'units' attr"),
        (lambda ds: ds.assign(mag=(("band", "galaxy"), ds.mag.values.T, attrs_for("mag"))), "dims ('band', 'galaxy')"),
        (lambda ds: ds.assign(oh=("galaxy", np.full(ds.sizes["galaxy"], 8.5), attrs_for("oh"))), "'oh_detected' is 0"),
        (lambda ds: ds.assign(oh=("galaxy", np.full(ds.sizes["galaxy"], np.nan), attrs_for("oh"))), "'oh_detected' is 1"),
        (lambda ds: ds.assign(oh_detected=("galaxy", np.full(ds.sizes["galaxy"], 2, np.int8), attrs_for("oh_detected"))),
         "'oh_detected' has values above the physical limit 1"),
        (lambda ds: ds.assign(mag_err=(("galaxy", "band"), -ds.mag_err.values, attrs_for("mag_err"))), "'mag_err'"),
        (lambda ds: ds.assign(log_mstar=("galaxy", np.r_[np.inf, ds.log_mstar.values[1:]], attrs_for("log_mstar"))),
         "infinite"),
        (lambda ds: ds.assign_coords(galaxy=np.r_[1, 1, ds.galaxy.values[2:]]), "not unique"),
        (lambda ds: ds.assign_coords(band=list("ugriy")), "coordinate 'band'"),
        (lambda ds: ds.assign(name=("galaxy", np.array(["a"] * ds.sizes["galaxy"]), attrs_for("z"))), None),
    ],
)
def test_bad_catalogs_raise_clear_errors(mutate, message):
    ds = mutate(good_catalog())
    if message is None:  # an unknown extra variable with units is fine
        validate(ds)
        return
    with pytest.raises(CatalogError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(ds)


def test_error_names_the_offending_galaxies():
    ds = good_catalog()
    ds["z"].values[[2, 4]] = [-1.0, 8.0]
    with pytest.raises(CatalogError, match="galaxies 102"):
        validate(ds)


def test_required_variables():
    with pytest.raises(CatalogError, match="lacks required variable 'sigma'"):
        validate(good_catalog(), require=("sigma",))


def test_not_a_dataset():
    with pytest.raises(CatalogError, match="xarray.Dataset"):
        validate({"z": [0.1]})


def test_quality_flags_set_and_read():
    ds = good_catalog()
    flag(ds, "missing_mag", [True, False, True, False, False, False])
    flag(ds, "bad_image", [True, False, False, False, False, False])
    assert ds["quality"].values[0] == QUALITY_BITS["missing_mag"] | QUALITY_BITS["bad_image"]
    assert has_flag(ds, "missing_mag").values.tolist() == [True, False, True, False, False, False]
    with pytest.raises(KeyError, match="unknown quality bit"):
        flag(ds, "cosmic_ray", [True] * 6)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_save_load_round_trip_is_exact(tmp_path, suffix):
    ds = good_catalog()
    flag(ds, "negative_redshift", [False, True, False, False, False, False])
    path = save_catalog(ds, tmp_path / f"cat{suffix}")
    back = load_catalog(path)
    xr.testing.assert_identical(ds, back)
    assert back["image"].dtype == np.float32
    assert back["oh_detected"].dtype == np.int8


def test_load_reports_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no catalog"):
        load_catalog(tmp_path / "absent.nc")
    bad = tmp_path / "corrupt.nc"
    bad.write_bytes(b"this is not HDF5")
    with pytest.raises(CatalogError, match="not a readable netcdf catalog"):
        load_catalog(bad)
    with pytest.raises(CatalogError, match="cannot tell the format"):
        save_catalog(good_catalog(), tmp_path / "cat.csv")
