"""The generic SDSS / MPA-JHU table loader: CSV, FITS, astropy Tables, sentinels, mappings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from galppl.data.io import load_catalog, save_catalog
from galppl.data.loaders import load_sdss_table
from galppl.data.schema import BANDS, CatalogError, has_flag
from galppl.physics import log_mbh_from_sigma

OBJID = 1237648702973411443


def casjobs_frame() -> pd.DataFrame:
    """Four galaxies as CasJobs + MPA-JHU would give them, each with one kind of trouble."""
    n = 4
    frame = {"objID": OBJID + np.arange(n), "ra": [150.0, 151.0, -9999.0, 153.0], "dec": [2.0, 2.1, 2.2, 2.3]}
    for k, b in enumerate(BANDS):
        frame[f"modelMag_{b}"] = 18.0 - 0.5 * k + np.arange(n) * 0.1
        frame[f"modelMagErr_{b}"] = [0.02, 0.03, 0.04, 0.05]
        frame[f"extinction_{b}"] = [0.1, 0.1, 0.1, 0.1]
        frame[f"petroMag_{b}"] = 18.3 - 0.5 * k + np.arange(n) * 0.1
    frame["modelMag_u"][1] = -9999.0  # SDSS missing magnitude
    frame["modelMagErr_r"][3] = -9999.0  # missing error of a good magnitude
    frame["z"] = [0.05, -0.0003, 0.1, -9999.0]
    frame["lgm_tot_p50"] = [10.5, 9.8, -9999.0, 11.0]
    frame["lgm_tot_p16"] = [10.4, 9.7, -9999.0, 10.8]
    frame["lgm_tot_p84"] = [10.6, 9.9, -9999.0, 11.2]
    frame["sfr_tot_p50"] = [0.3, -1.0, -99.0, -0.5]  # -1 is a real log SFR, -99 a code
    frame["oh_p50"] = [8.9, -99.9, 9.0, -9999.0]
    frame["v_disp"] = [150.0, 50.0, 0.0, 600.0]  # fine, below resolution, missing, spurious
    frame["v_disp_err"] = [10.0, 5.0, -1.0, 20.0]
    frame["h_alpha_flux"] = [300.0, -12.0, -9999.0, 50.0]  # a negative (noisy) flux is real
    frame["h_alpha_flux_err"] = [10.0, 8.0, -1.0, 5.0]
    frame["fracDeV_r"] = [0.1, 0.5, 0.9, 0.3]  # an unmapped column
    return pd.DataFrame(frame)


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "casjobs.csv"
    casjobs_frame().to_csv(path, index=False)
    return path


def test_csv_mapping_sentinels_and_flags(csv_path):
    ds = load_sdss_table(csv_path)
    assert ds["galaxy"].values.tolist() == (OBJID + np.arange(4)).tolist()
    assert np.isnan(ds["ra"].values[2]) and ds["ra"].values[0] == 150.0
    assert ds["mag"].attrs["magnitude_type"] == "modelMag"  # preferred over petroMag
    assert np.isnan(ds["mag"].sel(band="u").values[1])
    np.testing.assert_array_equal(has_flag(ds, "missing_mag").values, [False, True, False, False])
    np.testing.assert_array_equal(has_flag(ds, "bad_mag_err").values, [False, False, False, True])
    np.testing.assert_array_equal(has_flag(ds, "negative_redshift").values, [False, True, False, False])
    assert ds["z"].values[1] == -0.0003

    np.testing.assert_allclose(ds["log_mstar_err"].values[[0, 1, 3]], [0.1, 0.1, 0.2])
    assert np.isnan(ds["log_mstar"].values[2]) and np.isnan(ds["log_sfr"].values[2])
    assert ds["log_sfr"].values[1] == -1.0
    np.testing.assert_array_equal(ds["oh_detected"].values, [1, 0, 1, 0])

    np.testing.assert_array_equal(has_flag(ds, "spurious_sigma").values, [False, True, False, True])
    assert ds["sigma"].values[0] == 150.0 and np.isnan(ds["sigma"].values[1:]).all()
    np.testing.assert_allclose(ds["log_mbh"].values[0], log_mbh_from_sigma(150.0))
    # log_mbh_err is the linear propagation of sigma_err through M-sigma: check by finite difference.
    slope = (log_mbh_from_sigma(150.0 + 1e-3) - log_mbh_from_sigma(150.0 - 1e-3)) / 2e-3
    np.testing.assert_allclose(ds["log_mbh_err"].values[0], slope * 10.0, rtol=1e-6)

    assert ds["flux_halpha"].values[1] == -12.0 and np.isnan(ds["flux_halpha"].values[2])
    assert np.isnan(ds["flux_halpha_err"].values[2])
    # Galaxy 2: no mass, SFR, sigma or H-alpha; galaxy 3: no z.
    np.testing.assert_array_equal(has_flag(ds, "missing_target").values, [False, False, True, True])
    assert "fracDeV_r" in ds.attrs["ignored_columns"] and "fracDeV_r" not in ds
    assert ds.attrs["loader"] == "load_sdss_table" and len(ds.attrs["source_sha256"]) == 64


def test_fits_and_table_give_the_same_catalog(csv_path, tmp_path):
    from_csv = load_sdss_table(csv_path)
    table = Table.from_pandas(casjobs_frame())
    table.rename_columns(table.colnames, [c.upper() for c in table.colnames])  # MPA-JHU FITS style
    table.write(tmp_path / "mpa.fits")
    for source in (tmp_path / "mpa.fits", table):
        other = load_sdss_table(source)
        assert set(other.data_vars) == set(from_csv.data_vars)
        for name in from_csv.data_vars:
            np.testing.assert_array_equal(other[name].values, from_csv[name].values, err_msg=name)
        np.testing.assert_array_equal(other["galaxy"].values, from_csv["galaxy"].values)


def test_masked_table_entries_are_missing():
    table = Table({"objID": [1, 2], "z": [0.1, 0.2], "lgm_tot_p50": [10.0, 11.0]}, masked=True)
    table["lgm_tot_p50"].mask = [False, True]
    ds = load_sdss_table(table)
    assert np.isnan(ds["log_mstar"].values[1])
    np.testing.assert_array_equal(has_flag(ds, "missing_target").values, [False, True])


def test_missing_bands_are_nan_and_flagged():
    frame = casjobs_frame().drop(columns=[f"modelMag_{b}" for b in "uz"] + [f"petroMag_{b}" for b in "uz"])
    ds = load_sdss_table(frame)
    assert np.isnan(ds["mag"].sel(band=["u", "z"])).all()
    assert np.isfinite(ds["mag"].sel(band=["g", "r", "i"])).all()
    assert has_flag(ds, "missing_mag").all()
    assert "no column for band(s) u, z" in ds.attrs["conversions"]


def test_column_overrides(csv_path):
    petro = {f"mag_{b}": f"petroMag_{b}" for b in BANDS}
    ds = load_sdss_table(csv_path, columns={**petro, "galaxy": None, "oh": None})
    np.testing.assert_array_equal(ds["mag"].values, casjobs_frame()[list(petro.values())].values)
    assert ds["galaxy"].values.tolist() == [0, 1, 2, 3] and "oh" not in ds
    with pytest.raises(CatalogError, match=r"no column 'stellarMass'.*available: objID, ra"):
        load_sdss_table(csv_path, columns={"log_mstar": "stellarMass"})
    with pytest.raises(ValueError, match="unknown galppl variable"):
        load_sdss_table(csv_path, columns={"stellar_mass": "lgm_tot_p50"})


def test_keep_extra(csv_path):
    ds = load_sdss_table(csv_path, keep_extra=True)
    np.testing.assert_array_equal(ds["fracDeV_r"].values, [0.1, 0.5, 0.9, 0.3])
    assert ds["fracDeV_r"].attrs["units"] == "unknown"


def test_bad_ids(tmp_path):
    frame = casjobs_frame()
    frame.loc[1, "objID"] = frame.loc[0, "objID"]
    with pytest.raises(CatalogError, match="repeats"):
        load_sdss_table(frame)
    assert load_sdss_table(frame, columns={"galaxy": None}).sizes["galaxy"] == 4
    with pytest.raises(CatalogError, match="floats"):
        load_sdss_table(frame.astype({"objID": float}))


def test_corrupt_and_truncated_files(csv_path, tmp_path):
    Table.from_pandas(casjobs_frame()).write(tmp_path / "good.fits")
    data = (tmp_path / "good.fits").read_bytes()
    (tmp_path / "cut.fits").write_bytes(data[: len(data) - 2000])
    (tmp_path / "junk.fits").write_bytes(b"SIMPLE  = garbage" * 200)
    for name in ("cut.fits", "junk.fits"):
        with pytest.raises(CatalogError, match=name.replace(".", r"\.")):
            load_sdss_table(tmp_path / name)
    text = csv_path.read_text()
    (tmp_path / "cut.csv").write_text(text[: len(text) - 40])
    with pytest.raises(CatalogError, match=r"cut\.csv.*truncated"):
        load_sdss_table(tmp_path / "cut.csv")


def test_round_trip(csv_path, tmp_path):
    ds = load_sdss_table(csv_path, keep_extra=True)
    back = load_catalog(save_catalog(ds, tmp_path / "t.nc"))
    for name in ds.data_vars:
        np.testing.assert_array_equal(back[name].values, ds[name].values, err_msg=name)


def test_galppl_named_columns_are_read_after_the_sdss_names(tmp_path):
    # A table in galppl's own names (e.g. the shared DR9 extract: mag_u..mag_z, redshift).
    table = pd.DataFrame({"galaxy": [11, 12], "redshift": [0.05, 0.1], "log_mstar": [10.1, 10.9],
                          **{f"mag_{b}": [18.0 + k, 0.0] for k, b in enumerate(BANDS)}})
    table.to_csv(tmp_path / "own.csv", index=False)
    catalog = load_sdss_table(tmp_path / "own.csv")
    assert list(catalog["galaxy"].values) == [11, 12]
    np.testing.assert_allclose(catalog["mag"].values[0], [18.0, 19.0, 20.0, 21.0, 22.0])
    assert np.isnan(catalog["mag"].values[1]).all()  # 0 is a missing-value code, flagged
    assert has_flag(catalog, "missing_mag").values.tolist() == [False, True]
    np.testing.assert_allclose(catalog["log_mstar"].values, [10.1, 10.9])
    np.testing.assert_allclose(catalog["z"].values, [0.05, 0.1])


def test_the_dr9_extracts_stellar_mass_column_is_read_as_log_mstar(tmp_path):
    table = pd.DataFrame({"id": [1, 2], "redshift": [0.05, 0.1], "stellar_mass": [9.77, 0.0],
                          **{f"mag_{b}": [18.0 + k, 18.5 + k] for k, b in enumerate(BANDS)}})
    table.to_csv(tmp_path / "dr9.csv", index=False)
    catalog = load_sdss_table(tmp_path / "dr9.csv")
    np.testing.assert_allclose(catalog["log_mstar"].values, [9.77, np.nan])  # 0: the extract's missing code
    assert catalog["log_mstar"].attrs["source_column"] == "stellar_mass"


@pytest.mark.parametrize("column, values, message", [
    ("stellar_mass", [3.2e10, 5e9, -9999.0], r"'stellar_mass' \(read as log_mstar\) looks like linear stellar masses"),
    ("lgm_tot_p50", [3.2e10, 5e9, 1e11], r"'lgm_tot_p50' \(read as log_mstar\) looks like linear"),
    ("oh_p50", [-3.3, -3.6, -99.9], r"'oh_p50' \(read as oh\) looks like log\(O/H\), where galppl reads 12 \+ log"),
])
def test_a_target_column_in_other_units_is_refused_naming_it(tmp_path, column, values, message):
    table = pd.DataFrame({"z": [0.05, 0.1, 0.07], column: values,
                          **{f"mag_{b}": [18.0 + k] * 3 for k, b in enumerate(BANDS)}})
    table.to_csv(tmp_path / "units.csv", index=False)
    with pytest.raises(CatalogError, match=message):
        load_sdss_table(tmp_path / "units.csv")
