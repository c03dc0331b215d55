"""Published scaling relations shared by the simulator and the derived quantities.

Each function works on numpy arrays and on torch tensors alike (only arithmetic and
``log10``-style calls that both provide), so the same relation serves the mock sky and
posterior draws. Units are in the docstrings; citations say where each number comes from.
"""

from __future__ import annotations

import numpy as np

# Cosmology used throughout (flat LambdaCDM, H0 = 70 km/s/Mpc, Omega_m = 0.3).
H0 = 70.0
OMEGA_M = 0.3

# McConnell & Ma 2013, ApJ 764, 184, all galaxies: log(M_BH/Msun) = 8.32 + 5.64 log10(sigma/200 km/s).
MSIGMA_ALPHA = 8.32
MSIGMA_BETA = 5.64
MSIGMA_SCATTER = 0.38  # dex, intrinsic

# Kennicutt & Evans 2012, ARA&A 50, 531 (Table 1): log SFR [Msun/yr] = log L(H-alpha) [erg/s] - 41.27.
KENNICUTT_HALPHA = 41.27

# Case B recombination, T = 1e4 K: intrinsic H-alpha/H-beta.
BALMER_INTRINSIC = 2.86
# Cardelli, Clayton & Mathis 1989 (R_V = 3.1) curve at H-alpha and H-beta.
K_HALPHA = 2.53
K_HBETA = 3.61


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


def a_halpha_from_balmer(ratio):
    """Dust attenuation A(H-alpha) in mag from the observed H-alpha/H-beta ratio (Cardelli 1989, case B).

    A(Ha) = 2.5 k(Ha) / (k(Hb) - k(Ha)) log10(ratio / 2.86); negative values mean a ratio below
    case B (noise), and are returned as they are so that posteriors stay unbiased.
    """
    return 2.5 * K_HALPHA / (K_HBETA - K_HALPHA) * np.log10(ratio / BALMER_INTRINSIC)


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
