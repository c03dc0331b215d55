"""Mock photometry: SED table, k-corrections, M/L, magnitudes and their errors."""

from __future__ import annotations

import numpy as np
import pytest

from galppl.data.mock import photometry as mp
from galppl.data.mock.population import DistanceTable


@pytest.fixture(scope="module")
def table():
    return mp.SEDTable.build()


# a nearly maximally young SED (youth is capped at YOUTH_MAX < 1: every galaxy keeps old stars)
BLUE = 0.9 * mp.YOUTH_MAX


def _colours(table, z, youth, ebv=0.0, log_mstar=10.5):
    n = np.size(z)
    dist = DistanceTable.build()
    ssfr = -10.5 + mp.YOUNG_SSFR_WIDTH * np.log(youth / (mp.YOUTH_MAX - youth)) - (mp.YOUNG_SSFR_MID - 10.5)
    phot = mp.galaxy_photometry(
        table, np.full(n, z), dist.distance_modulus(np.full(n, z)), np.full(n, log_mstar),
        np.full(n, ssfr), np.full(n, ebv), np.full(n, 0.5), np.zeros(n),
    )  # fmt: skip
    return phot


def test_k_corrections_grow_with_redshift_and_redness(table):
    red = [-np.diff(_colours(table, z, 0.02).mag[0])[1] for z in (0.02, 0.1, 0.2)]
    blue = [-np.diff(_colours(table, z, BLUE).mag[0])[1] for z in (0.02, 0.1, 0.2)]
    assert red[0] < red[1] < red[2] and blue[0] < blue[2]
    assert red[2] - red[0] > blue[2] - blue[0]
    # SIMULATOR.md: red galaxies at z = 0.1 have observed g-r ~ 0.95
    assert red[1] == pytest.approx(0.95, abs=0.08)


def test_rest_frame_colours_and_mass_to_light(table):
    red = _colours(table, 0.05, 0.02)
    blue = _colours(table, 0.05, BLUE, ebv=0.1)
    ur_red = red.rest_mag[0, 0] - red.rest_mag[0, 2]
    ur_blue = blue.rest_mag[0, 0] - blue.rest_mag[0, 2]
    assert 2.2 < ur_red < 2.9 and 1.1 < ur_blue < 1.9
    assert red.log_ml_r[0] > blue.log_ml_r[0]
    # M_r follows from mass and M/L
    np.testing.assert_allclose(red.rest_mag[0, 2], mp.M_SUN_R - 2.5 * (10.5 - red.log_ml_r[0]))


def test_milky_way_extinction_applied(table):
    dist = DistanceTable.build()
    args = (table, np.array([0.1, 0.1]), dist.distance_modulus(np.array([0.1, 0.1])), np.full(2, 10.5),
            np.full(2, -10.0), np.full(2, 0.1), np.full(2, 0.3))  # fmt: skip
    phot = mp.galaxy_photometry(*args, np.array([0.0, 0.1]))
    np.testing.assert_allclose(phot.mag[1] - phot.mag[0], [0.4239, 0.3303, 0.2285, 0.1698, 0.1263], atol=1e-9)
    np.testing.assert_allclose(phot.extinction[1], phot.mag[1] - phot.mag[0], atol=1e-9)


def test_asinh_magnitudes_match_pogson_when_bright():
    mag = np.array([[15.0, 16.0, 17.0, 18.0, 19.0]])
    idx = np.arange(5)[None, :]
    # Lupton et al. 1999: the two agree to < 1e-3 mag when the flux is >> the softening b.
    np.testing.assert_allclose(mp.asinh_mag(mp.nanomaggies(mag), idx), mag, atol=1e-3)
    assert np.isfinite(mp.asinh_mag(np.array([[-1.0, 0.0, 0.1, 1.0, 2.0]]), idx)).all()


def test_magnitude_errors_follow_depths():
    rng = np.random.default_rng(0)
    mag = np.tile([19.0, 17.5, 17.0, 16.7, 16.5], (4000, 1))
    noisy, err = mp.observe_magnitudes(rng, mag, np.full(4000, 0.5), np.full(4000, 1.4))
    assert (err >= 0.01 - 1e-12).all()
    np.testing.assert_allclose(np.std(noisy - mag, axis=0), np.median(err, axis=0), rtol=0.1)
    assert np.median(err[:, 0]) > np.median(err[:, 2])  # u is the noisiest


def test_split_youth_is_exact():
    w = np.linspace(0, 0.9, 10)
    bt = np.linspace(0, 1, 10)
    wb, wd = mp.split_youth(w, bt)
    np.testing.assert_allclose(bt * wb + (1 - bt) * wd, w)
    assert (wb <= w + 1e-12).all() and (wd >= w - 1e-12).all() and (wb >= 0).all() and (wd <= 1).all()


def test_emission_lines_land_in_the_right_band():
    # H-alpha (6563 A) is in r at z = 0.02 and in i at z = 0.1; 1e-14 erg/s/cm2 in i is
    # F lambda / c / integral(R / lambda) ~ 1e-14 * 7220 / 3e18 / ln(8250 / 6850) ~ 3.6 nanomaggies
    lines = {k: np.array([0.0, 0.0]) for k in ("hbeta", "nii", "oiii")}
    lines["halpha"] = np.array([1000.0, 1000.0])
    f = mp.line_band_fluxes(np.array([0.02, 0.1]), lines, np.zeros(2))
    assert f[0].argmax() == 2 and f[1].argmax() == 3
    assert 2.0 < f[0, 2] < 5.0 and 2.0 < f[1, 3] < 5.0
    assert f[:, [0, 1, 4]].max() < 1e-3 * f.max()


def test_stellar_metallicity_offset_reddens_like_the_mass_tilt_and_raises_m_over_l(table):
    """A galaxy 0.3 dex more metal rich than the mean at its mass has the spectrum of the mean
    galaxy one dex (STELLAR_MZR_SLOPE = 0.3) more massive: the same colours, hence the same
    colour-based M/L, so its g-r rises by METALLICITY_TILT's g - r per dex."""
    dist = DistanceTable.build()
    n = 3
    z = np.full(n, 0.1)
    args = (table, z, dist.distance_modulus(z))
    rest = (np.full(n, -11.0), np.full(n, 0.05), np.full(n, 0.3), np.zeros(n))
    mean = mp.galaxy_photometry(*args, np.full(n, 10.5), *rest)
    rich = mp.galaxy_photometry(*args, np.full(n, 10.5), *rest, None, np.array([mp.STELLAR_MZR_SLOPE, 0.0, -0.2]))
    massive = mp.galaxy_photometry(*args, np.full(n, 11.5), *rest)
    rest_gr = lambda p: p.rest_mag[:, 1] - p.rest_mag[:, 2]  # noqa: E731
    np.testing.assert_allclose(rest_gr(rich)[0], rest_gr(massive)[0], atol=1e-12)
    np.testing.assert_allclose(rich.log_ml_r[0], massive.log_ml_r[0], atol=1e-12)
    tilt_gr = mp.METALLICITY_TILT[1] - mp.METALLICITY_TILT[2]
    np.testing.assert_allclose(rest_gr(rich) - rest_gr(mean), [tilt_gr, 0.0, -0.2 / mp.STELLAR_MZR_SLOPE * tilt_gr], atol=1e-12)
    assert rich.log_ml_r[0] > mean.log_ml_r[0] > rich.log_ml_r[2]


def test_simulated_stellar_metallicity_offsets_have_the_declared_scatter_and_show_in_colours():
    from galppl.data import simulate
    from galppl.data.mock import properties as mprop

    drawn = mprop.draw_stellar_metallicity_offset(np.random.default_rng(0), 20_000)
    assert abs(drawn.mean()) < 0.005
    assert drawn.std() == pytest.approx(mprop.STELLAR_METALLICITY_SCATTER, rel=0.02)
    cat = simulate(3000, seed=1, image_size=None, cache=False)
    offset = cat["stellar_metallicity_offset"].values
    assert cat["stellar_metallicity_offset"].attrs["units"] == "dex"
    # the flux limit keeps the bluer, brighter metal-poor galaxies a little more often
    assert -0.06 < offset.mean() < 0.0
    assert offset.std() == pytest.approx(mprop.STELLAR_METALLICITY_SCATTER, rel=0.08)
    # it is visible in the photometry: at fixed true mass and youth the richer galaxies are redder
    red = (cat["quenched"].values == 1) & (np.abs(cat["true_log_mstar"].values - 10.9) < 0.3)
    g_r = cat["rest_abs_mag"].values[red, 1] - cat["rest_abs_mag"].values[red, 2]
    assert np.corrcoef(offset[red], g_r)[0, 1] > 0.5


def test_sed_variety_moves_observed_bands_of_young_galaxies_only(table):
    """A galaxy's own departure from the SED family shifts each observed band by exactly its
    magnitudes, on bulge and disc alike, and leaves the rest-frame family and the M/L alone; it
    scales with youth, so the red sequence stays tight."""
    normals = np.random.default_rng(0).standard_normal((20_000, 5))
    young = mp.sed_variety(np.full(20_000, -9.0), normals)
    old = mp.sed_variety(np.full(20_000, -12.5), normals)
    youth = mp.young_fraction(-9.0) / mp.YOUTH_MAX
    np.testing.assert_allclose(young.std(0), mp.SED_VARIETY_MAG * youth, rtol=0.03)
    assert youth > 0.95 and old.std() < 0.05 * young.std()

    dist = DistanceTable.build()
    z = np.full(3, 0.1)
    args = (table, z, dist.distance_modulus(z), np.full(3, 10.3), np.full(3, -9.8), np.full(3, 0.1),
            np.full(3, 0.3), np.full(3, 0.02))  # fmt: skip
    offset = np.array([[0.03, -0.02, 0.0, 0.01, -0.04], [0.0] * 5, [-0.05, 0.05, 0.02, -0.01, 0.0]])
    plain = mp.galaxy_photometry(*args)
    varied = mp.galaxy_photometry(*args, sed_offset=offset)
    np.testing.assert_allclose(varied.mag - plain.mag, offset, atol=1e-12)
    np.testing.assert_allclose(varied.bulge_flux / plain.bulge_flux, varied.disc_flux / plain.disc_flux, rtol=1e-12)
    np.testing.assert_array_equal(varied.rest_mag, plain.rest_mag)
    np.testing.assert_array_equal(varied.log_ml_r, plain.log_ml_r)


def test_simulated_sed_offsets_are_recorded_and_widen_the_blue_cloud_only():
    from galppl.data import simulate

    cat = simulate(3000, seed=1, image_size=None, cache=False)
    offset = cat["sed_offset"]
    assert offset.dims == ("galaxy", "band") and offset.attrs["units"] == "mag"
    quenched = cat["quenched"].values == 1
    star_forming_sd = offset.values[~quenched].std()
    assert 0.6 * mp.SED_VARIETY_MAG < star_forming_sd < mp.SED_VARIETY_MAG
    assert offset.values[quenched].std() < 0.3 * star_forming_sd
