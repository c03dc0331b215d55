"""The CSV catalog loaders (Galaxy Zoo, GSWLC-2, black-hole compilation) and paths.

Real-file tests use ``../shared/data/sdss`` and skip where it is absent; expectations are
recomputed from the raw text with the ``csv`` module, independently of the loaders.
"""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest

from galppl.data.io import load_catalog, save_catalog
from galppl.data.loaders import load_bh_compilation, load_galaxyzoo, load_gswlc
from galppl.data.paths import ENV_VAR, sdss_data_dir
from galppl.data.schema import CatalogError, has_flag

GZ_HEADER = (
    "id,ra,dec,redshift,mag_u,mag_g,mag_r,mag_i,mag_z,deVRad_r,deVAB_r,expRad_r,expAB_r,"
    "stellar_mass,votes,p_el_debiased,p_cs_debiased,spiral,elliptical,uncertain"
)
GZ_GOOD = "587725074995609000,147.3,0.03,0.048,17.6,16.0,15.3,14.9,14.7,6.1,0.61,3.6,0.52,10.6,25,0,1,1,0,0"


def raw_rows(path):
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def write(tmp_path, name, text, bom=False):
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


# --- paths -------------------------------------------------------------------------


def test_sdss_data_dir_follows_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert sdss_data_dir() == tmp_path.resolve()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    assert sdss_data_dir() is None


# --- Galaxy Zoo --------------------------------------------------------------------


def test_galaxyzoo_real_file(sdss_dir):
    path = sdss_dir / "dr9_galaxyzoo_5k.csv"
    ds = load_galaxyzoo(path)
    rows = raw_rows(path)
    assert ds.sizes["galaxy"] == len(rows) == 5000
    assert ds.attrs["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ds.attrs["loader"] == "load_galaxyzoo"
    assert "mag_err" not in ds

    def missing(value):
        return value.strip() in ("", "-9999", "0") or float(value) in (-9999.0, 0.0)

    bad_mag = np.array([any(missing(r[f"mag_{b}"]) for b in "ugriz") for r in rows])
    bad_target = np.array([r["redshift"].strip() == "" or missing(r["stellar_mass"]) for r in rows])
    # Every bad row is kept, NaN where the file has a code, and flagged.
    np.testing.assert_array_equal(has_flag(ds, "missing_mag").values, bad_mag)
    np.testing.assert_array_equal(has_flag(ds, "missing_target").values, bad_target)
    assert np.isnan(ds["mag"].values).any(axis=1).sum() == bad_mag.sum()
    # PROVENANCE's reference figures drop exactly these rows: 5000 - 4975.
    assert (bad_mag | bad_target).sum() == 25
    assert not np.isin(ds["mag"].values, (-9999.0, 0.0)).any()
    good = ~bad_mag
    mags = np.array([[float(r[f"mag_{b}"]) for b in "ugriz"] for r, ok in zip(rows, good) if ok])
    np.testing.assert_array_equal(ds["mag"].values[good], mags)

    z_file = np.array([float(r["redshift"]) if r["redshift"].strip() else np.nan for r in rows])
    negative = z_file < 0
    assert negative.sum() >= 1
    np.testing.assert_array_equal(has_flag(ds, "negative_redshift").values, negative)
    np.testing.assert_array_equal(ds["z"].values[negative], z_file[negative])  # kept, not clipped

    assert len(np.unique(ds["galaxy"])) == 5000
    assert len(np.unique(ds["sdss_objid_approx"])) < 5000  # why ids are row numbers
    assert ds["radius_dev_r"].attrs["units"] == "arcsec"
    assert 0 <= float(ds["gz_p_spiral"].min()) and float(ds["gz_p_spiral"].max()) <= 1


def test_galaxyzoo_sentinels_and_blanks(tmp_path):
    bad = GZ_GOOD.split(",")
    bad[4], bad[5], bad[13] = "-9999", "", "0"  # mag_u code, mag_g blank, stellar_mass code
    neg = GZ_GOOD.split(",")
    neg[3] = "-0.0001"
    path = write(tmp_path, "gz.csv", "\n".join([GZ_HEADER, GZ_GOOD, ",".join(bad), ",".join(neg)]) + "\n")
    ds = load_galaxyzoo(path)
    assert ds.sizes["galaxy"] == 3
    np.testing.assert_array_equal(has_flag(ds, "missing_mag").values, [False, True, False])
    np.testing.assert_array_equal(has_flag(ds, "missing_target").values, [False, True, False])
    np.testing.assert_array_equal(has_flag(ds, "negative_redshift").values, [False, False, True])
    assert np.isnan(ds["mag"].values[1, :2]).all() and np.isfinite(ds["mag"].values[1, 2:]).all()
    assert np.isnan(ds["log_mstar"].values[1]) and ds["z"].values[2] == -0.0001


def test_truncated_csv_is_an_error_naming_the_file(tmp_path):
    text = "\n".join([GZ_HEADER, GZ_GOOD, GZ_GOOD])
    path = write(tmp_path, "cut.csv", text[: len(text) - 30])  # cut mid-row, as a broken download
    with pytest.raises(CatalogError, match=r"cut\.csv.*line 3.*truncated"):
        load_galaxyzoo(path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        (GZ_HEADER.replace("stellar_mass", "mass") + "\n" + GZ_GOOD + "\n", "lacks column.*stellar_mass"),
        (GZ_HEADER + "\n" + GZ_GOOD.replace("17.6", "seventeen") + "\n", "'mag_u'.*numeric"),
    ],
)
def test_bad_galaxyzoo_files(tmp_path, text, match):
    with pytest.raises(CatalogError, match=match):
        load_galaxyzoo(write(tmp_path, "bad.csv", text))


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_gswlc(tmp_path / "nope.csv")


# --- GSWLC-2 -----------------------------------------------------------------------


def test_gswlc_real_file(sdss_dir):
    path = sdss_dir / "gswlc2_subset_1k.csv"
    ds = load_gswlc(path)
    rows = raw_rows(path)
    assert ds.sizes["galaxy"] == len(rows) == 1040
    index = np.array([int(r[""]) for r in rows])
    np.testing.assert_array_equal(ds["source_index"].values, index)
    assert len(np.unique(index)) < len(index)  # why ids are row numbers

    def value(r, c):
        return float(r[c]) if r[c].strip() else np.nan

    for col, name in (("LOGMSTAR", "log_mstar"), ("LOGSFRSED", "log_sfr"), ("Z", "z"), ("LOGSFRSEDERR", "log_sfr_err")):
        np.testing.assert_array_equal(ds[name].values, [value(r, col) for r in rows])
    missing = np.array([any(not r[c].strip() for c in ("Z", "LOGMSTARERR", "LOGSFRSEDERR")) for r in rows])
    np.testing.assert_array_equal(has_flag(ds, "missing_target").values, missing)
    np.testing.assert_array_equal(ds["ra"].values, [value(r, "RAdeg") for r in rows])


def test_gswlc_minus99_is_missing(tmp_path):
    text = (
        ",RAdeg,DEdeg,Z,LOGMSTAR,LOGMSTARERR,LOGSFRSED,LOGSFRSEDERR\n"
        "0,10,1,0.05,10.1,0.02,-0.5,0.1\n1,11,2,0.06,10.3,0.03,-99,-99\n"
    )
    ds = load_gswlc(write(tmp_path, "g.csv", text))
    assert np.isnan(ds["log_sfr"].values[1]) and np.isnan(ds["log_sfr_err"].values[1])
    assert ds["log_sfr"].values[0] == -0.5
    np.testing.assert_array_equal(has_flag(ds, "missing_target").values, [False, True])


# --- black-hole compilation --------------------------------------------------------


def test_bh_compilation_real_file(sdss_dir):
    path = sdss_dir / "bh_msigma_compilation.csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    ds = load_bh_compilation(path)
    rows = raw_rows(path)
    assert ds.sizes["galaxy"] == len(rows) == 308
    assert ds["name"].values[0] == rows[0]["NAME"]  # BOM stripped: the first column is NAME

    upper = np.array([r["UPPERLIMIT"] == "1" for r in rows])
    assert upper.sum() > 0
    np.testing.assert_array_equal(ds["mbh_upper_limit"].values, upper)  # kept, flagged
    mbh = np.array([float(r["MBH"]) for r in rows])
    dmbh = np.array([float(r["DMBH"]) for r in rows])
    np.testing.assert_array_equal(ds["log_mbh"].values[~upper], mbh[~upper])
    assert np.isnan(ds["log_mbh"].values[upper]).all()
    np.testing.assert_allclose(ds["log_mbh_limit"].values[upper], (mbh + dmbh)[upper])
    ngc3621 = [i for i, r in enumerate(rows) if r["NAME"] == "NGC3621"]
    np.testing.assert_allclose(ds["log_mbh_limit"].values[ngc3621], np.log10(3e6), atol=0.01)  # Barth+2009

    sig = np.array([float(r["SIG"]) for r in rows])
    dsig = np.array([float(r["DSIG"]) for r in rows])
    measured = sig != -1234
    assert (~measured).sum() > 0 and np.isnan(ds["sigma"].values[~measured]).all()
    np.testing.assert_allclose(ds["sigma"].values[measured], 10 ** sig[measured])
    # First-order propagation agrees with the half-width of the 1-sigma interval for small DSIG.
    small = measured & (dsig < 0.02)
    half_width = (10 ** (sig + dsig) - 10 ** (sig - dsig)) / 2
    np.testing.assert_allclose(ds["sigma_err"].values[small], half_width[small], rtol=2e-3)
    assert ds["sigma"].attrs["units"] == "km s-1"

    z = np.array([float(r["Z"]) for r in rows])
    np.testing.assert_array_equal(has_flag(ds, "negative_redshift").values, z < 0)
    assert set(ds["measurement"].values) == {r["TYPE"] for r in rows}


def test_bh_compilation_without_bom(tmp_path):
    header = "NAME,RA,DEC,MBH,DMBH,UPPERLIMIT,SIG,DSIG,TYPE,Z,DZ"
    text = f"{header}\nA,10,1,8.0,0.1,0,2.3,0.02,star,0.01,0.0\nB,-1234,-1234,0,5.0,1,-1234,-1234,GC,nan,nan\n"
    for bom in (False, True):
        ds = load_bh_compilation(write(tmp_path, "bh.csv", text, bom=bom))
        assert list(ds["name"].values) == ["A", "B"]
        assert np.isnan(ds["ra"].values[1]) and np.isnan(ds["sigma"].values[1])
        np.testing.assert_array_equal(has_flag(ds, "missing_target").values, [False, True])
        assert ds["log_mbh_limit"].values[1] == 5.0


# --- round trip ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_round_trip_through_save_and_load(tmp_path, suffix):
    header = "NAME,RA,DEC,MBH,DMBH,UPPERLIMIT,SIG,DSIG,TYPE,Z,DZ,REF"
    text = f"{header}\nNGC1,10,1,8.0,0.1,0,2.3,0.02,star,0.01,0.0,ref1\nNGC2,11,2,6,0.3,1,1.9,0.05,gas,0.02,0.0,r2\n"
    bh = load_bh_compilation(write(tmp_path, "bh.csv", text))
    gz = load_galaxyzoo(write(tmp_path, "gz.csv", f"{GZ_HEADER}\n{GZ_GOOD}\n"))
    for ds in (bh, gz):
        back = load_catalog(save_catalog(ds, tmp_path / f"{ds.attrs['loader']}{suffix}"))
        for name in ds.data_vars:
            np.testing.assert_array_equal(back[name].values, ds[name].values, err_msg=name)
            assert back[name].dtype.kind == ds[name].dtype.kind, name
        assert back.attrs["conversions"] == ds.attrs["conversions"]
        assert back.attrs["source_sha256"] == ds.attrs["source_sha256"]

