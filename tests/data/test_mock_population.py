"""Mock population: distances, the mass function and the proposal above the completeness mass."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.cosmology import FlatLambdaCDM

from galppl.data.mock import population as mpop


def test_distance_table_matches_astropy():
    table = mpop.DistanceTable.build()
    cosmo = FlatLambdaCDM(H0=70, Om0=0.3)
    z = np.array([0.005, 0.0731, 0.15, 0.2999])
    np.testing.assert_allclose(table.luminosity_distance(z), cosmo.luminosity_distance(z).value, rtol=1e-5)
    np.testing.assert_allclose(table.angular_diameter_distance(z), cosmo.angular_diameter_distance(z).value, rtol=1e-5)
    np.testing.assert_allclose(table.distance_modulus(z), cosmo.distmod(z).value, atol=1e-4)
    np.testing.assert_allclose(table.age_gyr(z), cosmo.age(z).value, rtol=1e-5)
    np.testing.assert_allclose(table.kpc_per_arcsec(z), 1 / cosmo.arcsec_per_kpc_proper(z).value, rtol=1e-5)


def test_baldry_mass_function():
    # at the knee (x = 1 on the GAMA scale): ln10 e^-1 (phi1 + phi2)
    knee = mpop.BALDRY12["log_mstar_knee"] + mpop.MASS_SCALE_OFFSET
    expected = np.log(10) * np.exp(-1) * (3.96e-3 + 0.79e-3)
    assert mpop.baldry12_phi(knee) == pytest.approx(expected, rel=1e-12)
    assert mpop.baldry12_phi(9.0) > mpop.baldry12_phi(10.0) > mpop.baldry12_phi(11.5)


def test_proposal_respects_completeness_mass():
    table = mpop.DistanceTable.build()
    grid = mpop.PopulationGrid.build(table)
    z, m = grid.draw(np.random.default_rng(0), 20000)
    assert (z >= mpop.Z_MIN).all() and (z <= mpop.Z_MAX).all()
    cell = (grid.m_edges[1] - grid.m_edges[0])
    assert (m >= mpop.completeness_mass(z, table) - 2 * cell).all()
    assert np.median(z) > 0.05  # most of the volume is at high z


def test_selection_cut():
    sel = mpop.mgs_selected(np.array([17.0, 17.8, 17.0]), np.array([22.0, 22.0, 24.6]))
    np.testing.assert_array_equal(sel, [True, False, False])
