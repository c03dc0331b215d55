"""The shared physics (galppl.physics) against astropy and the relations the mock sky draws with."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM

from galppl import physics
from galppl.data.mock import lines as mock_lines
from galppl.data.mock.population import DistanceTable
from galppl.physics import LUMINOSITY_DISTANCE_NODES, luminosity_distance_cm

ASTROPY = FlatLambdaCDM(H0=70, Om0=0.3)


@pytest.mark.parametrize("size", [5, 3 * LUMINOSITY_DISTANCE_NODES])
def test_luminosity_distance_matches_astropy_exact_or_interpolated(size):
    z = np.random.default_rng(size).uniform(0.001, 0.4, size)
    z[:3] = [0.0, -0.01, np.nan]
    d_l = luminosity_distance_cm(z)
    assert np.isnan(d_l[:3]).all()
    exact = ASTROPY.luminosity_distance(z[3:]).to_value(u.cm)
    np.testing.assert_allclose(d_l[3:], exact, rtol=1e-6)


def test_mpc_in_cm_and_the_cosmology_are_astropys():
    assert physics.MPC_CM == pytest.approx((1 * u.Mpc).to_value(u.cm), rel=1e-15)
    assert (physics.H0, physics.OMEGA_M) == (ASTROPY.H0.value, ASTROPY.Om0)
    # the mock's distance table and the derived quantities' distances are one cosmology
    z = np.array([0.01, 0.1, 0.3])
    np.testing.assert_allclose(DistanceTable.build().luminosity_distance(z) * physics.MPC_CM,
                               luminosity_distance_cm(z), rtol=1e-6)


def test_flux_and_luminosity_are_inverse_and_match_astropy():
    z = np.array([0.02, 0.15])
    d_l = luminosity_distance_cm(z)
    log_l = np.array([40.0, 42.5])
    log_f = physics.log_flux_from_luminosity(log_l, d_l)
    expected = (10**log_l * u.erg / u.s / (4 * np.pi * ASTROPY.luminosity_distance(z) ** 2)).to_value(u.erg / u.s / u.cm**2)
    np.testing.assert_allclose(10**log_f, expected, rtol=1e-6)
    np.testing.assert_allclose(physics.log_luminosity_from_flux(10**log_f, d_l), log_l, rtol=1e-12)


def test_kennicutt_conversion_round_trips_through_the_mock_and_the_derived_sfr():
    log_sfr = np.array([-1.0, 0.0, 1.3])
    assert physics.log_halpha_luminosity_from_sfr(0.0) == physics.KENNICUTT_HALPHA == 41.27
    np.testing.assert_allclose(physics.log_sfr_from_halpha_luminosity(physics.log_halpha_luminosity_from_sfr(log_sfr)),
                               log_sfr, atol=1e-12)
    # the mock's dust-free H-alpha flux of an SFR gives that SFR back through the derived SFR
    z = np.array([0.05, 0.1, 0.2])
    flux = mock_lines.halpha_flux_total(log_sfr, luminosity_distance_cm(z) / physics.MPC_CM)
    np.testing.assert_allclose(physics.log_sfr_from_halpha(flux, np.zeros(3), z), log_sfr, atol=1e-9)
    # one magnitude of attenuation raises the inferred SFR by 0.4 dex
    np.testing.assert_allclose(physics.log_sfr_from_halpha(flux, np.ones(3), z), log_sfr + 0.4, atol=1e-9)
    assert np.isnan(physics.log_sfr_from_halpha(np.array([0.0, -1.0, 5.0]), np.zeros(3), [0.1, 0.1, 0.0])).all()


def test_balmer_attenuation_inverts_the_mock_reddening():
    # the mock reddens H-beta by A(Ha) k(Hb)/k(Ha): the decrement of A(Ha) gives A(Ha) back
    a_halpha = np.array([0.0, 0.5, 2.0])
    decrement = physics.BALMER_INTRINSIC * 10.0 ** (-0.4 * a_halpha) / 10.0 ** (-0.4 * a_halpha * physics.K_HBETA / physics.K_HALPHA)
    np.testing.assert_allclose(physics.a_halpha_from_balmer(decrement), a_halpha, atol=1e-12)


def test_bpt_ratios_are_undefined_without_positive_fluxes():
    n2, o3 = physics.bpt_ratios([100.0, 100.0, np.nan], [40.0, 40.0, 40.0], [10.0, -1.0, 10.0], [40.0, 40.0, 40.0])
    np.testing.assert_allclose(n2[0], -1.0)
    np.testing.assert_allclose(o3[0], 0.0)
    assert np.isnan(n2[1:]).all() and np.isnan(o3[1:]).all()
    assert physics.BPT_OUTCOMES == (*physics.BPT_CLASSES, "undefined")
