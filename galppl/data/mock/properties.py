"""Hidden physical state of mock galaxies: quenching, star formation, metallicity, velocity
dispersion, black-hole mass, dust, morphology and sizes.

Every function takes arrays (one entry per galaxy) and an ``np.random.Generator``; all are
vectorised. The relations are published ones, cited where they are used; the numbers not
fixed by a paper (scatters, morphology distributions) are tuned against the real SDSS
extracts by ``benchmarks/simulator_fidelity.py``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammainc

from galppl.physics import (
    K_HALPHA,
    MSIGMA_SCATTER,
    log_mbh_from_sigma,
    speagle14_main_sequence,
    tremonti04_mzr,
)

# Quenched fraction: logistic in log M* (mass quenching, cf. Peng et al. 2010; Baldry et al.
# 2006 red fraction at z ~ 0.1) above a mass-independent floor (environment quenching of
# satellites, Peng et al. 2010, ApJ 721, 193: ~10-20% of low-mass galaxies are red).
# SIMULATOR.md starts from 50% at 10.5, width 0.3. galppl-mock-sky 0.1 had the midpoint at
# 10.25 from a u-r red fraction, which was inflated by too-dusty star-forming discs; the
# colour distributions of dr9_galaxyzoo_5k at fixed (z, M*) (benchmarks/simulator_fidelity.py)
# want 10.5, width 0.35 and a 12% floor.
QUENCH_MASS = 10.5
QUENCH_WIDTH = 0.35
QUENCH_FLOOR = 0.12

MS_SCATTER = 0.25  # dex, Speagle et al. 2014 main-sequence scatter
# Speagle et al. 2014 extrapolated to z ~ 0.05 sits 0.13-0.36 dex above the SED-fitted ridge of
# gswlc2_subset_1k (GSWLC-2, Salim et al. 2018) in 0.5-dex mass bins from 9 to 11.5; shift it.
MS_OFFSET = -0.25
QUENCHED_LOG_SSFR = -12.0  # yr-1, MPA-JHU D4000-based SFRs of red galaxies
QUENCHED_SSFR_SCATTER = 0.4

# Scatter of O/H about the fundamental metallicity relation: ~0.05 dex (Mannucci et al. 2010;
# 0.054 in Curti et al. 2020), "compatible with the measurement uncertainties". Tremonti et
# al. 2004's +-0.10 dex is the observed scatter about the mass-metallicity relation, SFR
# dependence and measurement errors included: the mock's catalog O/H at fixed mass scatters
# ~0.09 dex with this value and its measurement errors (galppl-mock-sky 0.4 used 0.10 here as
# the scatter about the FMR, and its catalog then scattered 0.13 dex at fixed mass).
FMR_SCATTER = 0.05
FMR_SLOPE = -0.1  # dex of O/H per dex of SFR above the main sequence (Mannucci et al. 2010)

# Velocity dispersion: log sigma = 2.18 + 0.28 (log M* - 10.5) for early types
# (cf. Zahid et al. 2016 sigma-M* of SDSS quiescent galaxies), discs lower.
SIGMA_ZERO = 2.18
SIGMA_SLOPE = 0.28
SIGMA_DISC_OFFSET = -0.08
SIGMA_SCATTER = 0.07
SIGMA_MIN_RELIABLE = 70.0  # km/s, SDSS instrumental resolution
SIGMA_MAX_RELIABLE = 420.0  # km/s
SPURIOUS_SIGMA_FRACTION = 0.005

# Stellar metallicity at fixed mass scatters by a few tenths of a dex in SDSS (Gallazzi et al.
# 2005, MNRAS 362, 41: a broad distribution between their 16th and 84th percentiles, widest at
# low mass); with age at fixed metallicity it is what spreads the red sequence (Worthey 1994's
# age-metallicity degeneracy: in broad-band colours both move along one direction). 0.2 brings the
# mock's g-r and u-g spread at fixed redshift up to dr9_galaxyzoo_5k's (benchmarks/
# simulator_fidelity.py (f)); galppl-mock-sky 0.2 had none, and its red sequence was 20-30%
# narrower than the real one.
STELLAR_METALLICITY_SCATTER = 0.2
DUST_SCATTER = 0.3  # mag, around Garn & Best 2010
SIZE_SCATTER = 0.2  # dex, around Shen et al. 2003
DISC_THICKNESS = 0.15  # intrinsic axis ratio of an edge-on disc
BULGE_TO_DISC_RADIUS = 0.5  # r50_bulge / r50_disc


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def quenched_fraction(log_mstar):
    """Fraction of quenched galaxies at log M*: ``QUENCH_FLOOR`` plus a logistic (midpoint
    ``QUENCH_MASS``, width ``QUENCH_WIDTH`` dex) of the rest."""
    mass_quenched = _sigmoid((np.asarray(log_mstar) - QUENCH_MASS) / QUENCH_WIDTH)
    return QUENCH_FLOOR + (1.0 - QUENCH_FLOOR) * mass_quenched


def draw_quenched(rng: np.random.Generator, log_mstar) -> np.ndarray:
    """Boolean per galaxy: is it quenched?"""
    return rng.random(np.shape(log_mstar)) < quenched_fraction(log_mstar)


def draw_log_sfr(rng: np.random.Generator, log_mstar, quenched, age_gyr) -> np.ndarray:
    """log10 SFR [Msun/yr]: Speagle et al. 2014 main sequence (shifted by ``MS_OFFSET`` to the
    GSWLC-2 ridge; 0.25 dex scatter) for
    star-forming galaxies, log sSFR ~ -12 +- 0.4 for quenched ones."""
    ms = speagle14_main_sequence(log_mstar, age_gyr) + MS_OFFSET
    sf = ms + MS_SCATTER * rng.standard_normal(np.shape(log_mstar))
    q = log_mstar + QUENCHED_LOG_SSFR + QUENCHED_SSFR_SCATTER * rng.standard_normal(np.shape(log_mstar))
    return np.where(quenched, q, sf)


def draw_oh(rng: np.random.Generator, log_mstar, log_sfr, age_gyr) -> np.ndarray:
    """True gas-phase 12+log(O/H) on the Tremonti et al. 2004 scale, for every galaxy.

    Tremonti et al. 2004 MZR (mass clipped to its valid 8.5-11.5 range) plus the
    Mannucci et al. 2010 fundamental-metallicity term: -0.1 dex per dex of SFR above the
    Speagle main sequence (capped at +-1.5 dex of offset so quenched galaxies do not run
    away), and ``FMR_SCATTER`` (0.05 dex) about that surface.
    """
    x = np.clip(log_mstar, 8.5, 11.5)
    d_ms = np.clip(log_sfr - speagle14_main_sequence(log_mstar, age_gyr) - MS_OFFSET, -1.5, 1.5)
    return tremonti04_mzr(x) + FMR_SLOPE * d_ms + FMR_SCATTER * rng.standard_normal(np.shape(log_mstar))


def draw_stellar_metallicity_offset(rng: np.random.Generator, n: int) -> np.ndarray:
    """Stellar [Z/H] departure from the mean at the galaxy's mass [dex] (Gallazzi et al. 2005)."""
    return STELLAR_METALLICITY_SCATTER * rng.standard_normal(n)


def draw_bulge_to_total(rng: np.random.Generator, log_mstar, quenched) -> np.ndarray:
    """Bulge-to-total r-band light ratio: Beta-distributed, bulge-dominated when quenched,
    rising with mass for both (cf. Gadotti 2009; Simard et al. 2011 decompositions)."""
    rise = _sigmoid((np.asarray(log_mstar) - 10.5) / 0.4)
    mean = np.where(quenched, 0.55 + 0.25 * rise, 0.08 + 0.22 * rise)
    k = 6.0
    return np.clip(rng.beta(k * mean, k * (1.0 - mean)), 0.0, 1.0)


def draw_log_sigma(rng: np.random.Generator, log_mstar, quenched) -> np.ndarray:
    """True log10 stellar velocity dispersion [km/s]: rises with mass, discs ~0.08 dex lower."""
    base = SIGMA_ZERO + SIGMA_SLOPE * (np.asarray(log_mstar) - 10.5)
    base = base + np.where(quenched, 0.0, SIGMA_DISC_OFFSET)
    return base + SIGMA_SCATTER * rng.standard_normal(np.shape(log_mstar))


def draw_true_log_mbh(rng: np.random.Generator, true_sigma) -> np.ndarray:
    """True black-hole mass: McConnell & Ma 2013 on the true sigma plus its 0.38 dex intrinsic scatter."""
    return log_mbh_from_sigma(true_sigma) + MSIGMA_SCATTER * rng.standard_normal(np.shape(true_sigma))


def measure_sigma(rng: np.random.Generator, true_sigma):
    """SDSS-like measured sigma: 5-10% noise, ~0.5% spurious high values, and values outside
    the reliable 70-420 km/s range marked missing.

    Returns (sigma, sigma_err, spurious, missing): ``sigma``/``sigma_err`` are NaN where
    ``missing``; ``spurious`` marks the galaxies whose value is a catalog glitch.
    """
    shape = np.shape(true_sigma)
    frac = rng.uniform(0.05, 0.10, shape)
    sigma = true_sigma * (1.0 + frac * rng.standard_normal(shape))
    spurious = rng.random(shape) < SPURIOUS_SIGMA_FRACTION
    # spurious values: log-uniform 250-900 km/s, unrelated to the galaxy
    sigma = np.where(spurious, 10.0 ** rng.uniform(np.log10(250.0), np.log10(900.0), shape), sigma)
    err = frac * sigma
    missing = (sigma < SIGMA_MIN_RELIABLE) | (sigma > SIGMA_MAX_RELIABLE)
    return np.where(missing, np.nan, sigma), np.where(missing, np.nan, err), spurious, missing


def draw_a_halpha(rng: np.random.Generator, log_mstar) -> np.ndarray:
    """Dust attenuation at H-alpha [mag]: Garn & Best 2010 polynomial in X = log(M*/1e10),
    0.3 mag scatter, never negative. (Mass clipped to 8.5-11.5 where the fit holds.)"""
    x = np.clip(np.asarray(log_mstar), 8.5, 11.5) - 10.0
    a = 0.91 + 0.77 * x + 0.11 * x**2 - 0.09 * x**3
    return np.clip(a + DUST_SCATTER * rng.standard_normal(np.shape(log_mstar)), 0.0, None)


# Calzetti et al. 2000 have E(B-V)_star = 0.44 E(B-V)_gas for starbursts; here one E(B-V)
# reddens the whole SED, old stars included, which sit outside the birth clouds (Charlot &
# Fall 2000) and see less dust: Wild et al. 2011 (MNRAS 417, 1760) find the continuum/gas ratio
# falls to ~0.3 at the sSFR of SDSS discs. 0.3 puts massive star-forming discs at the real
# g-r (~0.7 at z = 0.1) instead of on the red sequence.
CONTINUUM_TO_GAS_EBV = 0.3
QUENCHED_CONTINUUM_DUST = 0.1  # early types hold little diffuse dust (cf. Kauffmann et al. 2003a)


def ebv_stellar_from_a_halpha(a_halpha, quenched):
    """Stellar-continuum E(B-V) [mag]: gas E(B-V) = A(Ha)/k(Ha) (Cardelli 1989), times
    ``CONTINUUM_TO_GAS_EBV`` for the continuum (Calzetti et al. 2000; Wild et al. 2011);
    quenched galaxies' diffuse dust scaled down."""
    ebv = CONTINUUM_TO_GAS_EBV * np.asarray(a_halpha) / K_HALPHA
    return np.where(quenched, QUENCHED_CONTINUUM_DUST * ebv, ebv)


def shen03_r50_kpc(log_mstar, early):
    """Shen et al. 2003 r-band half-light radius [kpc] from stellar mass.

    Late type: 0.10 M^0.14 (1 + M/3.98e10)^0.25 kpc; early type: 2.88e-6 M^0.56 kpc.
    """
    m = 10.0 ** np.asarray(log_mstar, dtype=float)
    late = 0.10 * m**0.14 * (1.0 + m / 3.98e10) ** 0.25
    return np.where(early, 2.88e-6 * m**0.56, late)


def draw_r50_kpc(rng: np.random.Generator, log_mstar, early) -> np.ndarray:
    """Half-light radius [kpc]: Shen et al. 2003 with 0.2 dex log-normal scatter."""
    return shen03_r50_kpc(log_mstar, early) * 10.0 ** (SIZE_SCATTER * rng.standard_normal(np.shape(log_mstar)))


def sersic_b(n):
    """Sersic b_n (Ciotti & Bertin 1999 expansion), so r50 encloses half the light."""
    n = np.asarray(n, dtype=float)
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n**2)


def sersic_enclosed(r, r50, n):
    """Fraction of a circular Sersic profile's light inside radius r (same units as r50)."""
    x = np.asarray(r) / np.asarray(r50)
    return gammainc(2.0 * np.asarray(n, dtype=float), sersic_b(n) * x ** (1.0 / np.asarray(n, dtype=float)))


def _composite_r50_table(rho: float, n_grid: int = 201):
    """Half-light radius of bulge (n=4, r50 = rho) + disc (n=1, r50 = 1) vs bulge-to-total."""
    bt = np.linspace(0.0, 1.0, n_grid)
    lo = np.full(n_grid, 1e-3)
    hi = np.full(n_grid, 50.0)
    for _ in range(60):  # bisection, vectorised over the grid
        mid = np.sqrt(lo * hi)
        frac = bt * sersic_enclosed(mid, rho, 4.0) + (1 - bt) * sersic_enclosed(mid, 1.0, 1.0)
        lo = np.where(frac < 0.5, mid, lo)
        hi = np.where(frac < 0.5, hi, mid)
    return bt, np.sqrt(lo * hi)


def split_radii(r50, bulge_to_total, rho: float = BULGE_TO_DISC_RADIUS):
    """Bulge and disc half-light radii whose light-weighted sum has half-light radius ``r50``.

    The bulge is ``rho`` times the disc's size; returns (r50_bulge, r50_disc) in r50's units.
    """
    bt_grid, h = _composite_r50_table(rho)
    r50_disc = np.asarray(r50) / np.interp(bulge_to_total, bt_grid, h)
    return rho * r50_disc, r50_disc


def draw_axis_ratios(rng: np.random.Generator, n: int):
    """Disc axis ratio from an isotropic inclination with a 0.15 thickness floor
    (q^2 = cos^2 i (1 - q0^2) + q0^2, Hubble 1926), bulge axis ratio uniform 0.6-1,
    position angle uniform in degrees."""
    cos_i = rng.random(n)
    q_disc = np.sqrt(cos_i**2 * (1.0 - DISC_THICKNESS**2) + DISC_THICKNESS**2)
    q_bulge = rng.uniform(0.6, 1.0, n)
    pa = rng.uniform(0.0, 180.0, n)
    return q_disc, q_bulge, pa


def clumpiness(log_ssfr, bulge_to_total):
    """0..1 strength of star-forming clumps / spiral arms: rises with sSFR, lives in the disc."""
    return np.clip((np.asarray(log_ssfr) + 11.5) / 2.0, 0.0, 1.0) * (1.0 - np.asarray(bulge_to_total))
