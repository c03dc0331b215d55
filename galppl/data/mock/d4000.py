"""Catalog SFRs of passive galaxies as MPA-JHU makes them: from the 4000 A break.

Brinchmann et al. 2004 (MNRAS 351, 1151) give galaxies whose emission lines cannot measure
star formation (passive ones) the SFR that the break strength D4000 implies: the specific SFR
of star-forming galaxies at the same D4000 defines P(sSFR | D4000); the catalog value is its
median times the galaxy's stellar mass, and the quoted error its width. So the catalog value
is a function of the measured spectrum (D4000 is measured to a few per cent), not the truth
plus an error of the quoted size: the large quoted error is the spread of the true sSFR at
fixed D4000, which photometry of the same spectrum cannot see either. (galppl-mock-sky 0.3
drew truth + N(0, 0.35-0.7 dex), so its passive galaxies' SFRs were noise to a photometric
model, and the mock's SFR much harder to read than the real sky's.)

The mock's break is its stellar populations' dust-free rest-frame u - r
(:func:`~galppl.data.mock.photometry.break_colour`), measured with :data:`BREAK_NOISE`.
P(sSFR | break) is tabulated once, from a fixed reference population drawn from the
simulator's own population model, so that a catalog's values do not depend on its size or
seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from galppl.data.mock import photometry as mp
from galppl.data.mock import properties as mprop

# Measurement noise of the break in u - r magnitudes: SDSS Main Galaxy Sample spectra measure
# Dn4000 to ~0.03 (Kauffmann et al. 2003), over a range (1.1-2.0) that u - r spans in ~2 mag.
BREAK_NOISE = 0.05
# The reference population: size, its own seed, and the quantile bins of the break.
BREAK_REFERENCE = 100_000
BREAK_REFERENCE_SEED = 4000
BREAK_BINS = 50


@dataclass(frozen=True)
class BreakEstimator:
    """P(log sSFR | break) of the reference population, per quantile bin of the break: its
    median break colour, median log sSFR and half its 16-84 percentile range."""

    colour: np.ndarray
    log_ssfr: np.ndarray
    error: np.ndarray

    @classmethod
    def build(cls, grid, dist, sed: mp.SEDTable) -> BreakEstimator:
        """From :data:`BREAK_REFERENCE` galaxies of the proposal population (``grid``), drawn with
        :data:`BREAK_REFERENCE_SEED`, through the same relations as the catalog's galaxies."""
        rng = np.random.default_rng(BREAK_REFERENCE_SEED)
        z, log_m = grid.draw(rng, BREAK_REFERENCE)
        quenched = mprop.draw_quenched(rng, log_m)
        log_ssfr = mprop.draw_log_sfr(rng, log_m, quenched, dist.age_gyr(z)) - log_m
        bulge_to_total = mprop.draw_bulge_to_total(rng, log_m, quenched)
        metallicity = mprop.draw_stellar_metallicity_offset(rng, BREAK_REFERENCE)
        colour = mp.break_colour(sed, log_ssfr, bulge_to_total, log_m, metallicity)
        colour = colour + BREAK_NOISE * rng.standard_normal(BREAK_REFERENCE)
        bins = np.array_split(np.argsort(colour), BREAK_BINS)
        p16, p50, p84 = np.array([np.percentile(log_ssfr[b], [16, 50, 84]) for b in bins]).T
        return cls(colour=np.array([np.median(colour[b]) for b in bins]), log_ssfr=p50, error=(p84 - p16) / 2)

    def __call__(self, colour) -> tuple[np.ndarray, np.ndarray]:
        """The catalog log sSFR [yr-1] and its quoted error [dex] at measured break colours
        (beyond the reference's bins, the outermost bin's: the relation saturates there)."""
        return np.interp(colour, self.colour, self.log_ssfr), np.interp(colour, self.colour, self.error)
