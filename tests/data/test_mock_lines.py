"""Mock emission lines: N2 from O/H, BPT placement, noise and detectability."""

from __future__ import annotations

import numpy as np

from galppl.data.mock import lines as ml
from galppl.physics import bpt_class, kauffmann03, n2_from_oh_pp04


def test_n2_follows_pp04_then_saturates():
    oh = np.array([8.3, 8.6, 9.2, 9.6])
    n2 = ml.n2_from_oh(oh)
    np.testing.assert_allclose(n2[:2], n2_from_oh_pp04(oh[:2] - 0.2), atol=0.01)
    assert (n2 < -0.25).all() and n2[-1] > -0.32
    assert (np.diff(n2) > 0).all()


def _lines(agn, quenched, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    kw = dict(
        log_sfr=np.full(n, 0.3) if not quenched else np.full(n, -1.5), log_mstar=np.full(n, 10.7),
        oh=np.full(n, 9.0), a_halpha=np.full(n, 1.0), lum_dist_mpc=np.full(n, 300.0),
        fibre_total=np.full(n, 0.3), fibre_bulge=np.full(n, 0.5), fibre_point=np.full(n, 0.95),
        agn_type=np.full(n, agn, dtype=np.int8), quenched=np.full(n, quenched),
    )  # fmt: skip
    return ml.true_line_fluxes(rng, **kw)


def _bpt(f):
    return bpt_class(np.log10(f.nii / f.halpha), np.log10(f.oiii / f.hbeta))


def test_star_forming_below_kauffmann_and_agn_above():
    sf = _lines(0, False)
    n2 = np.log10(sf.nii / sf.halpha)
    o3 = np.log10(sf.oiii / sf.hbeta)
    assert np.median(kauffmann03(n2) - o3) > 0.15
    assert np.mean(_bpt(sf) == 0) > 0.85
    assert np.mean(_bpt(_lines(1, False)) == 2) > 0.5  # Seyferts dominate their hosts' lines
    assert np.mean(_bpt(_lines(0, True)) != 0) > 0.7  # retired galaxies: LINER-like


def test_noise_and_detectability():
    rng = np.random.default_rng(1)
    true = _lines(0, False, n=2000)
    err = ml.line_errors(rng, true)
    assert (err.halpha >= 2.0).all() and (err.hbeta >= 2.6).all()
    meas = ml.measure_lines(rng, true, err)
    np.testing.assert_allclose(np.std((meas.halpha - true.halpha) / err.halpha), 1.0, atol=0.05)
    det = ml.metallicity_detectable(meas, err)
    assert det.mean() > 0.5
    faint = ml.LineFluxes(*(getattr(true, k) * 1e-3 for k in ("halpha", "hbeta", "nii", "oiii")))
    assert not ml.metallicity_detectable(ml.measure_lines(rng, faint, err), err).any()
    oh, oh_err = ml.measure_oh(rng, np.full(2000, 9.0), meas, err, det)
    np.testing.assert_array_equal(np.isfinite(oh), det)
    assert (oh_err[det] >= 0.03).all()


def test_fibre_fraction_behaves():
    tot, fb, fd = ml.fibre_fraction(np.array([0.3, 3.0]), np.array([0.6, 6.0]), 1.0, 1.0, 0.5, 1.4)
    assert (tot > 0).all() and (tot < 1).all() and tot[0] > tot[1]
    assert 0.9 < ml.point_source_fraction(1.4) < 1.0
