"""Catalog SFRs of quenched mock galaxies from the 4000 A break (galppl/data/mock/d4000.py), as
MPA-JHU's (Brinchmann et al. 2004): a function of the measured spectrum, with an honest error."""

from __future__ import annotations

import numpy as np
import pytest

from galppl.data.mock import photometry as mp
from galppl.data.mock.d4000 import BreakEstimator
from galppl.data.mock.sky import _tables, simulate


@pytest.fixture(scope="module")
def tables():
    return _tables()


@pytest.fixture(scope="module")
def cat():
    return simulate(3000, seed=12, image_size=None, cache=False)


def test_break_colour_reddens_with_age_and_metallicity(tables):
    log_ssfr = np.array([-9.5, -10.5, -11.5, -12.5])
    colour = mp.break_colour(tables.sed, log_ssfr, np.full(4, 0.3), np.full(4, 10.5))
    assert np.all(np.diff(colour) > 0)
    metal_rich = mp.break_colour(tables.sed, log_ssfr, np.full(4, 0.3), np.full(4, 10.5), np.full(4, 0.2))
    assert np.all(metal_rich > colour)


def test_the_estimator_is_one_fixed_table_falling_with_the_break(tables):
    again = BreakEstimator.build(tables.grid, tables.dist, tables.sed)
    np.testing.assert_array_equal(again.log_ssfr, tables.break_estimator.log_ssfr)
    est = tables.break_estimator
    assert np.all(np.diff(est.colour) > 0)
    assert est.log_ssfr[0] > -10.0 and est.log_ssfr[-1] < -11.8  # star-forming to passive
    assert np.all(np.diff(est.log_ssfr) < 0.05)  # falls with the break, up to the bins' noise
    assert np.all((est.error > 0.1) & (est.error < 0.6))
    log_ssfr, error = est(np.array([0.0, 5.0]))  # beyond the reference: the outermost bins
    np.testing.assert_allclose(log_ssfr, est.log_ssfr[[0, -1]])


def test_quenched_catalog_sfrs_follow_the_spectrum_with_an_honest_error(cat, tables):
    q = cat["quenched"].values.astype(bool)
    true_ssfr = cat["true_log_sfr"].values - cat["true_log_mstar"].values
    colour = mp.break_colour(tables.sed, true_ssfr, cat["bulge_to_total"].values, cat["true_log_mstar"].values,
                             cat["stellar_metallicity_offset"].values)
    catalog_ssfr = cat["log_sfr"].values - cat["log_mstar"].values  # per catalog mass, as MPA-JHU's
    expected = tables.break_estimator(colour)[0]
    # The estimator at the noiselessly recomputed break, up to the break's measurement noise;
    # quenched galaxies' true sSFR scatters ~0.35 dex about it.
    assert np.sqrt(np.mean((catalog_ssfr[q] - expected[q]) ** 2)) < 0.12
    assert np.sqrt(np.mean((true_ssfr[q] - expected[q]) ** 2)) > 0.25
    miss = cat["log_sfr"].values - cat["true_log_sfr"].values
    error = cat["log_sfr_err"].values
    assert 0.6 < np.mean(np.abs(miss[q]) < error[q]) < 0.76  # the quoted error is the miss's size
    assert abs(np.mean(miss[q])) < 0.05
    assert 0.6 < np.mean(np.abs(miss[~q]) < error[~q]) < 0.76  # star-forming: truth + the error
