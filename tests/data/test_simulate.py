"""``galppl.data.simulate`` (galppl/data/mock/sky.py): the mock SDSS sky follows the data model,
is reproducible, recovers its own relations, applies the Main Galaxy Sample selection and caches on disk."""

from __future__ import annotations


import numpy as np
import pytest
import xarray as xr

from galppl.data.mock.population import DistanceTable
from galppl.data.schema import has_flag, validate
from galppl.data.mock.sky import SimulationError, cache_path, simulate
from galppl.physics import (
    BALMER_INTRINSIC,
    K_HALPHA,
    K_HBETA,
    KENNICUTT_HALPHA,
    MSIGMA_SCATTER,
    log_mbh_from_sigma,
    speagle14_main_sequence,
    tremonti04_mzr,
)

N = 3000


@pytest.fixture(scope="module")
def cat():
    return simulate(N, seed=11, image_size=None, cache=False)


def test_follows_the_data_model(cat):
    validate(cat)
    assert cat.sizes["galaxy"] == N
    np.testing.assert_array_equal(cat["galaxy"].values, np.arange(N))
    assert cat["galaxy"].dtype == np.int64
    assert cat.attrs["source"] == "galppl.simulate" and cat.attrs["seed"] == 11 and cat.attrs["n"] == N
    assert "FlatLambdaCDM" in cat.attrs["cosmology"] and "Baldry" in cat.attrs["citations"]
    for name, var in cat.data_vars.items():
        assert "units" in var.attrs and var.attrs.get("description"), name
        assert var.dims[0] == "galaxy", name
    for name in ("true_log_mstar", "true_log_sfr", "true_sigma", "true_oh", "true_log_mbh", "true_flux_halpha",
                 "quenched", "agn_type", "bulge_to_total", "r50_bulge", "r50_disc", "axis_ratio", "position_angle",
                 "a_halpha", "ebv", "fibre_fraction", "psf_fwhm", "sigma_err", "oh_err", "flux_nii_err"):  # fmt: skip
        assert name in cat, name
    assert cat["psf_fwhm"].dims == ("galaxy", "channel")
    assert cat["quenched"].dtype == np.int8 and cat["agn_type"].dtype == np.int8
    assert set(np.unique(cat["agn_type"].values)) <= {0, 1, 2}
    assert np.isfinite(cat["true_oh"].values).all()
    assert "image" not in cat


def test_reproducible_and_seed_dependent():
    a = simulate(200, seed=5, image_size=None, cache=False)
    b = simulate(200, seed=5, image_size=None, cache=False)
    c = simulate(200, seed=6, image_size=None, cache=False)
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a["true_log_mstar"].values, c["true_log_mstar"].values)


def test_main_galaxy_sample_selection(cat):
    assert (cat["mag_petro_r"].values < 17.77).all()
    assert (cat["mu50_r"].values < 24.5).all()
    # the noisy observed r is close to the selection magnitude (model vs Petrosian, extinction)
    r = cat["mag"].sel(band="r").values - cat["extinction"].sel(band="r").values
    assert np.median(np.abs(r - cat["mag_petro_r"].values)) < 0.25


def test_redshift_distribution_peaks_near_0_1(cat):
    hist, edges = np.histogram(cat["z"].values, bins=np.arange(0.0, 0.31, 0.02))
    peak = edges[np.argmax(hist)] + 0.01
    assert 0.05 <= peak <= 0.12
    assert (cat["true_z"].values > 0.005).all() and (cat["true_z"].values < 0.3).all()


def test_mass_metallicity_relation_recovered(cat):
    m, oh = cat["true_log_mstar"].values, cat["true_oh"].values
    sf = (cat["quenched"].values == 0) & (m > 9.0) & (m < 11.3)
    coef = np.polyfit(m[sf], oh[sf], 2)
    grid = np.array([9.5, 10.0, 10.5, 11.0])
    np.testing.assert_allclose(np.polyval(coef, grid), tremonti04_mzr(grid), atol=0.05)
    resid = oh[sf] - np.polyval(coef, m[sf])
    assert 0.045 < resid.std() < 0.08  # 0.05 dex about the FMR (Mannucci et al. 2010) + its SFR term


def test_catalog_mass_metallicity_scatter_is_tremontis(cat):
    """Tremonti et al. 2004 see +-0.10 dex about the MZR in the catalog values (measurement
    errors and the SFR dependence included), not on top of them."""
    det = cat["oh_detected"].values == 1
    m, oh = cat["log_mstar"].values[det], cat["oh"].values[det]
    keep = (m > 9.0) & (m < 11.3)
    resid = oh[keep] - np.polyval(np.polyfit(m[keep], oh[keep], 2), m[keep])
    assert 0.07 < resid.std() < 0.12


def test_fundamental_metallicity_relation_term(cat):
    m, oh, sfr = cat["true_log_mstar"].values, cat["true_oh"].values, cat["true_log_sfr"].values
    sf = cat["quenched"].values == 0
    x = np.column_stack([np.ones(sf.sum()), m[sf], m[sf] ** 2, sfr[sf]])
    beta = np.linalg.lstsq(x, oh[sf], rcond=None)[0]
    assert -0.16 < beta[3] < -0.04  # Mannucci et al. 2010: ~ -0.1 dex per dex of SFR


def test_main_sequence_slope(cat):
    m, sfr, z = cat["true_log_mstar"].values, cat["true_log_sfr"].values, cat["true_z"].values
    sf = (cat["quenched"].values == 0) & (np.abs(z - 0.1) < 0.04) & (m > 9.5) & (m < 11.2)
    slope = np.polyfit(m[sf], sfr[sf], 1)[0]
    t = DistanceTable.build().age_gyr(0.1)
    expected = speagle14_main_sequence(1.0, t) - speagle14_main_sequence(0.0, t)
    assert abs(slope - expected) < 0.1
    quenched = cat["quenched"].values == 1
    assert np.median(sfr[quenched] - m[quenched]) == pytest.approx(-12.0, abs=0.15)


def test_m_sigma_exact_on_measured_sigma(cat):
    sigma, mbh = cat["sigma"].values, cat["log_mbh"].values
    ok = np.isfinite(sigma)
    np.testing.assert_allclose(mbh[ok], log_mbh_from_sigma(sigma[ok]), rtol=0, atol=1e-12)
    x = np.log10(sigma[ok] / 200.0)
    slope, intercept = np.polyfit(x, mbh[ok], 1)
    assert slope == pytest.approx(5.64, abs=1e-6) and intercept == pytest.approx(8.32, abs=1e-6)
    resid = cat["true_log_mbh"].values - log_mbh_from_sigma(cat["true_sigma"].values)
    assert resid.std() == pytest.approx(MSIGMA_SCATTER, abs=0.03)


def test_missing_sigma_is_nan_and_flagged(cat):
    sigma = cat["sigma"].values
    missing = np.isnan(sigma)
    assert 0.0 < missing.mean() < 0.3
    assert np.isnan(cat["log_mbh"].values[missing]).all() and np.isnan(cat["sigma_err"].values[missing]).all()
    np.testing.assert_array_equal(has_flag(cat, "spurious_sigma").values, missing)
    ok = sigma[~missing]
    assert (ok >= 70).all() and (ok <= 420).all()
    # measured sigma follows the truth within the 5-10% noise, except the few glitches
    good = ~missing & (cat["sigma_spurious"].values == 0)
    rel = sigma[good] / cat["true_sigma"].values[good] - 1
    assert 0.04 < rel.std() < 0.1


def test_kennicutt_halpha_from_true_sfr(cat):
    """Pure star-forming galaxies: noiseless fibre H-alpha = Kennicutt & Evans 2012 flux x dust x aperture."""
    pure = (cat["agn_type"].values == 0) & (cat["quenched"].values == 0)
    dl = DistanceTable.build().luminosity_distance(cat["true_z"].values[pure]) * 3.0856775814913673e24
    lum = 10.0 ** (cat["true_log_sfr"].values[pure] + KENNICUTT_HALPHA)
    expected = lum / (4 * np.pi * dl**2) / 1e-17 * 10 ** (-0.4 * cat["a_halpha"].values[pure])
    expected *= cat["fibre_fraction"].values[pure]
    np.testing.assert_allclose(cat["true_flux_halpha"].values[pure], expected, rtol=1e-6)
    # Balmer decrement of the noiseless lines gives back A(H-alpha) (case B, Cardelli)
    ratio = cat["true_flux_halpha"].values[pure] / cat["true_flux_hbeta"].values[pure]
    a = 2.5 * K_HALPHA / (K_HBETA - K_HALPHA) * np.log10(ratio / BALMER_INTRINSIC)
    np.testing.assert_allclose(a, cat["a_halpha"].values[pure], atol=1e-8)


def test_metallicity_detection(cat):
    det = cat["oh_detected"].values == 1
    oh = cat["oh"].values
    np.testing.assert_array_equal(np.isfinite(oh), det)
    np.testing.assert_array_equal(np.isfinite(cat["oh_err"].values), det)
    assert 0.15 < det.mean() < 0.8
    assert np.mean(cat["quenched"].values[det]) < 0.1
    assert np.std(oh[det] - cat["true_oh"].values[det]) < 0.1
    # detected: S/N > 3 in all four lines
    for line in ("halpha", "hbeta", "nii", "oiii"):
        f, e = cat[f"flux_{line}"].values[det], cat[f"flux_{line}_err"].values[det]
        assert (f > 3 * e).all()
    # some measured fluxes are negative, as in MPA-JHU
    assert (cat["flux_oiii"].values < 0).any()


def test_red_sequence_and_blue_cloud(cat):
    rest = cat["rest_abs_mag"].values
    ur = rest[:, 0] - rest[:, 2]
    q = cat["quenched"].values == 1
    assert 2.2 < np.median(ur[q]) < 2.8
    assert 1.2 < np.median(ur[~q]) < 1.9


def test_bulge_plus_disc_equals_total_flux(cat):
    total = cat["bulge_flux"].values + cat["disc_flux"].values
    expected = 10.0 ** (-0.4 * (cat["true_mag"].values[:, 1:4] - 22.5))
    np.testing.assert_allclose(total, expected, rtol=1e-9)
    # bulges are redder than discs (g/i flux ratio lower) wherever both carry light
    both = (cat["bulge_to_total"].values > 0.1) & (cat["bulge_to_total"].values < 0.9)
    b, d = cat["bulge_flux"].values[both], cat["disc_flux"].values[both]
    assert np.mean(b[:, 0] / b[:, 2] <= d[:, 0] / d[:, 2] + 1e-12) > 0.99


def test_cache_hit_is_identical_and_does_not_simulate(tmp_path, monkeypatch):
    a = simulate(400, seed=2, image_size=None, cache_dir=tmp_path)
    path = cache_path(400, 2, None, tmp_path)
    assert path.exists() and path.name.startswith("simulate-") and path.suffix == ".nc"
    assert not list(tmp_path.glob(".simulate-*"))  # no temporary file left behind
    import galppl.data.mock.sky as simulate_module

    def no_simulation(*args, **kwargs):
        raise AssertionError("a cache hit must not simulate")

    monkeypatch.setattr(simulate_module, "draw_batch", no_simulation)
    b = simulate(400, seed=2, image_size=None, cache_dir=tmp_path)
    xr.testing.assert_identical(a, b)
    assert cache_path(400, 2, 0, tmp_path) == path
    assert cache_path(400, 3, 0, tmp_path) != path


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GALPPL_CACHE", str(tmp_path / "env"))
    simulate(50, seed=1, image_size=None)
    assert len(list((tmp_path / "env").glob("simulate-*.nc"))) == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "n must be a positive"),
        ({"n": -3}, "n must be a positive"),
        ({"n": 2.5}, "n must be a positive"),
        ({"n": 10, "image_size": 60}, "multiple of 8"),
        ({"n": 10, "image_size": -8}, "multiple of 8"),
        ({"n": 10, "seed": -1}, "seed"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(SimulationError, match=match):
        simulate(cache=False, **kwargs)


def test_images_match_catalog_photometry():
    pytest.importorskip("torch")
    from galppl.data.mock.images import render_stamps
    from galppl.data.mock.sky import stamp_params

    cat = simulate(120, seed=4, image_size=32, cache=False)
    validate(cat, require=("image",))
    assert cat["image"].shape == (120, 3, 32, 32) and cat["image"].dtype == np.float32
    assert cat.attrs["image_size"] == 32
    assert np.isfinite(cat["image"].values).all()
    # noiseless stamps of compact galaxies hold the catalog's noiseless gri flux
    compact = (cat["r50"].values < 2.0) & (cat["bulge_to_total"].values < 0.5)
    clean = render_stamps(stamp_params(cat.isel(galaxy=compact)), 64, 0, noise=False, neighbours=False)
    flux = clean.sum(axis=(2, 3))
    expected = 10.0 ** (-0.4 * (cat["true_mag"].values[compact, 1:4] - 22.5))
    np.testing.assert_allclose(np.median(flux / expected, axis=0), 1.0, atol=0.03)
    assert np.all(np.abs(flux / expected - 1) < 0.1)
    # the noisy stamps carry the same light on average
    noisy = cat["image"].values[compact].sum(axis=(2, 3))
    assert np.median(noisy[:, 1] / expected[:, 1]) == pytest.approx(1.0, abs=0.1)


def test_simulate_is_the_function_at_galppl_data_and_galppl():
    import galppl
    import galppl.data as gd

    assert gd.simulate is galppl.simulate is simulate
    xr.testing.assert_identical(gd.simulate(30, seed=0, image_size=None, cache=False),
                                simulate(30, seed=0, image_size=None, cache=False))
