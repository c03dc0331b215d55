"""Published scaling relations shared by the simulator and the derived quantities.

Physics is written here once: the mock sky (``galppl.data.mock``) draws its galaxies with
these relations and the models' derived quantities (``galppl.models.derived``) invert them.
The scaling relations work on numpy arrays and on torch tensors alike (only arithmetic and
``log10``-style calls that both provide); the line-ratio, BPT and distance functions take
numpy arrays. Units are in the docstrings; citations say where each number comes from.
"""

from __future__ import annotations

import numpy as np

# Cosmology used throughout (flat LambdaCDM, H0 = 70 km/s/Mpc, Omega_m = 0.3).
H0 = 70.0
OMEGA_M = 0.3
# Mpc in cm (IAU 2015 Resolution B2: 1 pc = 3.0856775814913673e16 m).
MPC_CM = 3.0856775814913673e24
# Line fluxes are in units of 1e-17 erg s-1 cm-2 (as MPA-JHU): erg s-1 cm-2 per catalog flux unit.
LINE_FLUX_CGS = 1e-17
# Redshift nodes of the luminosity-distance interpolation (see ``luminosity_distance_cm``).
LUMINOSITY_DISTANCE_NODES = 4096
# AB absolute magnitude of the Sun in SDSS r (Blanton & Roweis 2007, AJ 133, 734).
M_SUN_R = 4.65

# McConnell & Ma 2013, ApJ 764, 184, all galaxies: log(M_BH/Msun) = 8.32 + 5.64 log10(sigma/200 km/s).
MSIGMA_ALPHA = 8.32
MSIGMA_BETA = 5.64
MSIGMA_SCATTER = 0.38  # dex, intrinsic

# Kennicutt & Evans 2012, ARA&A 50, 531 (Table 1): log SFR [Msun/yr] = log L(H-alpha) [erg/s] - 41.27.
KENNICUTT_HALPHA = 41.27

# Case B recombination, T = 1e4 K: intrinsic H-alpha/H-beta.
BALMER_INTRINSIC = 2.86
# Cardelli, Clayton & Mathis 1989 (R_V = 3.1) curve k(lambda) = A(lambda)/E(B-V) at H-alpha, H-beta, [O II].
K_HALPHA = 2.53
K_HBETA = 3.61
K_OII = 4.77  # at [O II] 3727 A


def log_mbh_from_sigma(sigma_kms):
    """McConnell & Ma 2013 M-sigma: log10(M_BH / Msun) from sigma in km/s."""
    return MSIGMA_ALPHA + MSIGMA_BETA * (np.log10(sigma_kms) - np.log10(200.0))


def kauffmann03(n2):
    """Kauffmann et al. 2003 star-forming boundary: log([OIII]/Hb) at log([NII]/Ha) = n2 (valid n2 < 0.05)."""
    return 0.61 / (n2 - 0.05) + 1.3


def kewley01(n2):
    """Kewley et al. 2001 maximum-starburst line: log([OIII]/Hb) at log([NII]/Ha) = n2 (valid n2 < 0.47)."""
    return 0.61 / (n2 - 0.47) + 1.19


# BPT classes, in this order everywhere (posterior class probabilities, labels).
BPT_CLASSES = ("star_forming", "composite", "agn")
# The outcomes of a BPT classification: the classes, then "undefined" (class -1: a line ratio
# without a logarithm), the column order of class probabilities.
BPT_OUTCOMES = (*BPT_CLASSES, "undefined")


def bpt_class(n2, o3):
    """BPT class index (0 star-forming, 1 composite, 2 AGN) from log [NII]/Ha and log [OIII]/Hb.

    Star-forming lies below Kauffmann et al. 2003 (and left of its asymptote at 0.05), AGN
    above Kewley et al. 2001 (or right of its asymptote at 0.47), composite in between.
    NaN ratios give class -1.
    """
    n2 = np.asarray(n2, dtype=float)
    o3 = np.asarray(o3, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        below_k03 = (n2 < 0.05) & (o3 < kauffmann03(n2))
        below_k01 = (n2 < 0.47) & (o3 < kewley01(n2))
    cls = np.where(below_k03, 0, np.where(below_k01, 1, 2))
    return np.where(np.isfinite(n2) & np.isfinite(o3), cls, -1)


def bpt_ratios(halpha, hbeta, nii, oiii) -> tuple[np.ndarray, np.ndarray]:
    """log10([N II]/H-alpha) and log10([O III]/H-beta) (dimensionless) from four line fluxes.

    Fluxes in any common unit (numpy arrays). NaN where a ratio is undefined: a flux that is
    NaN or <= 0 (a noise-dominated measurement or draw) has no logarithm, and a ratio of such
    fluxes says nothing about the ionising source.
    """
    halpha, hbeta, nii, oiii = (np.asarray(f, dtype=np.float64) for f in (halpha, hbeta, nii, oiii))
    defined = (halpha > 0) & (hbeta > 0) & (nii > 0) & (oiii > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        n2 = np.where(defined, np.log10(nii / halpha), np.nan)
        o3 = np.where(defined, np.log10(oiii / hbeta), np.nan)
    return n2, o3


def bpt_class_of_fluxes(halpha, hbeta, nii, oiii) -> np.ndarray:
    """BPT class per element (int8): 0 star-forming, 1 composite, 2 AGN, -1 undefined.

    Classes as :func:`bpt_class` (below Kauffmann et al. 2003: star-forming; above Kewley et
    al. 2001: AGN; between: composite). -1 where any of the four fluxes is NaN or <= 0,
    since then a line ratio has no logarithm.
    """
    return bpt_class(*bpt_ratios(halpha, hbeta, nii, oiii)).astype(np.int8)


def a_halpha_from_balmer(ratio):
    """Dust attenuation A(H-alpha) in mag from the observed H-alpha/H-beta ratio (Cardelli 1989, case B).

    A(Ha) = 2.5 k(Ha) / (k(Hb) - k(Ha)) log10(ratio / 2.86); negative values mean a ratio below
    case B (noise), and are returned as they are so that posteriors stay unbiased.
    """
    return 2.5 * K_HALPHA / (K_HBETA - K_HALPHA) * np.log10(ratio / BALMER_INTRINSIC)


def log_halpha_luminosity_from_sfr(log_sfr):
    """Kennicutt & Evans 2012 (Kroupa IMF): log10 L(H-alpha) [erg/s] of a log10 SFR [Msun/yr]."""
    return log_sfr + KENNICUTT_HALPHA


def log_sfr_from_halpha_luminosity(log_l_halpha):
    """Kennicutt & Evans 2012 (Kroupa IMF): log10 SFR [Msun/yr] of a log10 L(H-alpha) [erg/s]."""
    return log_l_halpha - KENNICUTT_HALPHA


def log_flux_from_luminosity(log_luminosity, distance_cm):
    """log10 F [erg s-1 cm-2] of an isotropic source of log10 L [erg/s] at luminosity distance
    ``distance_cm`` [cm]: F = L / (4 pi d_L^2)."""
    return log_luminosity - np.log10(4 * np.pi) - 2 * np.log10(distance_cm)


def log_luminosity_from_flux(flux_cgs, distance_cm):
    """log10 L [erg/s] of a flux ``flux_cgs`` [erg s-1 cm-2] at luminosity distance
    ``distance_cm`` [cm]: L = 4 pi d_L^2 F (the inverse of ``log_flux_from_luminosity``)."""
    return np.log10(4 * np.pi) + 2 * np.log10(distance_cm) + np.log10(flux_cgs)


def luminosity_distance_cm(z) -> np.ndarray:
    """Luminosity distance in cm for redshift(s) z in flat LambdaCDM (``H0``, ``OMEGA_M``).

    NaN where z is NaN or <= 0 (a line luminosity needs a distance). Posterior z draws are
    millions of distinct values, too many for astropy's per-value integral (tens of seconds),
    so astropy evaluates d_L on a grid of ``LUMINOSITY_DISTANCE_NODES`` redshifts, log-spaced
    over the range of z, and log d_L is interpolated linearly in log z: log d_L is nearly
    linear in log z, and the interpolation error is below 1e-6 relative (tested against
    astropy). The mock sky uses its own fixed-range table (``galppl.data.mock.population.
    DistanceTable``) of the same cosmology, built once per simulation.
    """
    from astropy.cosmology import FlatLambdaCDM

    z = np.asarray(z, dtype=np.float64)
    out = np.full(z.shape, np.nan)
    ok = np.isfinite(z) & (z > 0)
    if not ok.any():
        return out
    cosmology = FlatLambdaCDM(H0=H0, Om0=OMEGA_M)
    values = z[ok]
    low, high = values.min(), values.max()
    if values.size <= LUMINOSITY_DISTANCE_NODES or low == high:
        out[ok] = cosmology.luminosity_distance(values).to_value("Mpc") * MPC_CM
        return out
    grid = np.geomspace(low, high, LUMINOSITY_DISTANCE_NODES)
    log_d = np.log(cosmology.luminosity_distance(grid).to_value("Mpc") * MPC_CM)
    out[ok] = np.exp(np.interp(np.log(values), np.log(grid), log_d))
    return out


def log_sfr_from_halpha(flux_halpha, a_halpha, z) -> np.ndarray:
    """Kennicutt & Evans 2012 SFR, log10(Msun/yr), from an H-alpha flux in 1e-17 erg s-1 cm-2.

    L = 4 pi d_L(z)^2 F 10^(0.4 A(H-alpha)) [erg/s], A(H-alpha) in mag; log SFR = log10 L -
    41.27 (Kroupa IMF). For a fibre flux this is the SFR inside the fibre, not the galaxy's
    total. NaN where the flux is <= 0 or NaN, A(H-alpha) is NaN, or z is NaN or <= 0.
    """
    flux = np.asarray(flux_halpha, dtype=np.float64)
    a_halpha = np.asarray(a_halpha, dtype=np.float64)
    d_l = luminosity_distance_cm(z)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_l = log_luminosity_from_flux(np.where(flux > 0, flux, np.nan) * LINE_FLUX_CGS, d_l) + 0.4 * a_halpha
    return log_sfr_from_halpha_luminosity(log_l)


def oh_pp04_n2(n2):
    """Pettini & Pagel 2004 N2 calibration: 12+log(O/H) = 8.90 + 0.57 N2 (valid -2.5 < N2 < -0.3)."""
    return 8.90 + 0.57 * n2


def n2_from_oh_pp04(oh):
    """Inverse of ``oh_pp04_n2``: N2 = log([NII]6584/Ha) for a PP04 N2-scale 12+log(O/H)."""
    return (oh - 8.90) / 0.57


# Kewley & Ellison 2008: the Tremonti et al. 2004 (T04) scale sits ~0.2 dex above PP04 N2.
T04_MINUS_PP04 = 0.2


def tremonti04_mzr(log_mstar):
    """Tremonti et al. 2004 mass-metallicity relation, 12+log(O/H), valid 8.5 < log M* < 11.5."""
    x = log_mstar
    return -1.492 + 1.847 * x - 0.08026 * x**2


def speagle14_main_sequence(log_mstar, t_gyr):
    """Speagle et al. 2014 star-forming main sequence: log SFR [Msun/yr] at cosmic time t (Gyr)."""
    return (0.84 - 0.026 * t_gyr) * log_mstar - (6.51 - 0.11 * t_gyr)
