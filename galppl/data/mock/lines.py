"""Emission lines through the SDSS 3-arcsec fibre: star formation, AGN and retired-galaxy
(LINER-like) components, dust, aperture, measurement noise and detectability.

Fluxes are in units of 1e-17 erg s-1 cm-2 (as MPA-JHU). Star formation sets H-alpha
(Kennicutt & Evans 2012), metallicity sets [N II]/H-alpha (Pettini & Pagel 2004 N2 on the
Kewley & Ellison 2008 offset scale), [O III]/H-beta follows the star-forming BPT sequence
below Kauffmann et al. 2003; AGN and old stars add components above it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from galppl.data.mock.properties import sersic_enclosed
from galppl.physics import (
    BALMER_INTRINSIC,
    K_HALPHA,
    K_HBETA,
    KENNICUTT_HALPHA,
    LINE_FLUX_CGS,
    MPC_CM,
    T04_MINUS_PP04,
    bpt_class,
    bpt_ratios,
    kauffmann03,
    log_flux_from_luminosity,
    log_halpha_luminosity_from_sfr,
    n2_from_oh_pp04,
)

FIBRE_RADIUS = 1.5  # arcsec, SDSS spectroscopic fibre (3" diameter)
N2_SATURATION = -0.25  # [N II]/H-alpha saturates at high metallicity (Denicolo et al. 2002)
N2_SCATTER = 0.1  # dex
O3_BELOW_KAUFFMANN = 0.25  # dex: star-forming galaxies sit this far below Kauffmann+03
O3_SCATTER = 0.12  # dex
SN_DETECT = 3.0  # Brinchmann et al. 2004: S/N > 3 in all four BPT lines


@dataclass(frozen=True)
class LineFluxes:
    """Four fibre line fluxes, (N,) each, in 1e-17 erg s-1 cm-2."""

    halpha: np.ndarray
    hbeta: np.ndarray
    nii: np.ndarray
    oiii: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"flux_halpha": self.halpha, "flux_hbeta": self.hbeta, "flux_nii": self.nii, "flux_oiii": self.oiii}

    def as_dict_short(self) -> dict[str, np.ndarray]:
        return {"halpha": self.halpha, "hbeta": self.hbeta, "nii": self.nii, "oiii": self.oiii}


def fibre_fraction(r50_bulge, r50_disc, q_bulge, q_disc, bulge_to_total, psf_fwhm):
    """Share of the galaxy's light inside the 1.5-arcsec-radius fibre (bulge n=4 + disc n=1).

    PSF convolution is approximated by adding the PSF's half-light radius (FWHM/2 for a
    Gaussian) in quadrature to each component's circularised r50 (r50 sqrt(q)).
    Returns (total, bulge-only, disc-only) fractions.
    """
    psf_r50 = 0.5 * np.asarray(psf_fwhm)
    rb = np.sqrt(np.asarray(r50_bulge) ** 2 * q_bulge + psf_r50**2)
    rd = np.sqrt(np.asarray(r50_disc) ** 2 * q_disc + psf_r50**2)
    fb = sersic_enclosed(FIBRE_RADIUS, rb, 4.0)
    fd = sersic_enclosed(FIBRE_RADIUS, rd, 1.0)
    return bulge_to_total * fb + (1 - bulge_to_total) * fd, fb, fd


def point_source_fraction(psf_fwhm):
    """Share of a point source's light inside the fibre (Gaussian PSF)."""
    s = np.asarray(psf_fwhm) / 2.3548
    return 1.0 - np.exp(-(FIBRE_RADIUS**2) / (2 * s**2))


def halpha_flux_total(log_sfr, lum_dist_mpc):
    """Intrinsic (dust-free) total H-alpha flux [1e-17 erg s-1 cm-2] from SFR: Kennicutt &
    Evans 2012, log L(Ha) = log SFR + 41.27."""
    log_l = log_halpha_luminosity_from_sfr(np.asarray(log_sfr))
    return 10.0 ** (log_flux_from_luminosity(log_l, np.asarray(lum_dist_mpc) * MPC_CM) - np.log10(LINE_FLUX_CGS))


def n2_from_oh(oh_t04):
    """log([NII]6584/Ha) from a Tremonti-scale 12+log(O/H): shift to the PP04 N2 scale
    (-0.2 dex, Kewley & Ellison 2008), invert PP04 N2 and saturate smoothly near -0.25."""
    n2 = n2_from_oh_pp04(np.asarray(oh_t04) - T04_MINUS_PP04)
    width = 0.08
    # soft minimum of (n2, -0.25): equal to n2 well below saturation
    return N2_SATURATION - width * np.logaddexp(0.0, (N2_SATURATION - n2) / width)


def agn_probability(log_mstar, bulge_to_total):
    """Fraction of galaxies hosting an optical AGN (Seyfert or LINER): rises with mass and
    bulge (Kauffmann et al. 2003b; Kewley et al. 2006)."""
    x = (np.asarray(log_mstar) - 10.6) / 0.3
    return 0.45 / (1 + np.exp(-x)) * (0.3 + 0.7 * np.asarray(bulge_to_total))


def draw_agn_type(rng: np.random.Generator, log_mstar, bulge_to_total) -> np.ndarray:
    """0 none, 1 Seyfert, 2 LINER (int8); a third of AGN are Seyferts (Kewley et al. 2006)."""
    n = np.shape(log_mstar)
    has = rng.random(n) < agn_probability(log_mstar, bulge_to_total)
    seyfert = rng.random(n) < 1.0 / 3.0
    return np.where(has, np.where(seyfert, 1, 2), 0).astype(np.int8)


def true_line_fluxes(
    rng: np.random.Generator,
    *,
    log_sfr,
    log_mstar,
    oh,
    a_halpha,
    lum_dist_mpc,
    fibre_total,
    fibre_bulge,
    fibre_point,
    agn_type,
    quenched,
    total: bool = False,
):
    """Noiseless fibre fluxes of H-alpha, H-beta, [N II] 6584 and [O III] 5007.

    Star formation: Kennicutt & Evans 2012 H-alpha x fibre fraction; N2 from O/H; [O III]/H-beta
    0.25 dex below Kauffmann et al. 2003 at that N2, with scatter. AGN (nuclear, point-source
    aperture): Seyferts at log [OIII]/Hb ~ 0.8, LINERs ~ 0.0, both at N2 ~ 0 (above Kewley
    et al. 2001). Quenched galaxies add weak, extended LINER-like emission from evolved stars
    (Cid Fernandes et al. 2011 "retired" galaxies, EW(Ha) ~ 1 A). All components are reddened
    by A(Ha) with case-B H-alpha/H-beta = 2.86 (Cardelli et al. 1989 k values).

    Returns the fibre ``LineFluxes``; with ``total=True``, ``(fibre, whole_galaxy)``: the same
    lines (same random draws) summed over the whole galaxy (aperture fractions set to 1), which
    is what the broadband photometry sees.
    """
    n = np.shape(log_sfr)
    ha_sf = halpha_flux_total(log_sfr, lum_dist_mpc) * fibre_total
    n2_sf = n2_from_oh(oh) + N2_SCATTER * rng.standard_normal(n)
    o3_sf = kauffmann03(np.minimum(n2_sf, -0.05)) - O3_BELOW_KAUFFMANN + O3_SCATTER * rng.standard_normal(n)

    # AGN: H-alpha luminosity rising with mass (Kauffmann et al. 2003b [OIII] luminosities)
    log_l_agn = 39.7 + 0.6 * (np.asarray(log_mstar) - 10.8) + np.where(agn_type == 1, 1.0, 0.0)
    log_l_agn = log_l_agn + 0.4 * rng.standard_normal(n)
    ha_agn = np.where(agn_type > 0, halpha_flux_total(log_l_agn - KENNICUTT_HALPHA, lum_dist_mpc), 0.0) * fibre_point
    n2_agn = np.where(agn_type == 1, 0.0, 0.12) + 0.15 * rng.standard_normal(n)
    o3_agn = np.where(agn_type == 1, 0.8, 0.0) + 0.2 * rng.standard_normal(n)

    # retired (evolved-star) emission of quenched galaxies, following the bulge light
    log_l_ret = 39.9 + 1.0 * (np.asarray(log_mstar) - 11.0) + 0.3 * rng.standard_normal(n)
    ha_ret = np.where(quenched, halpha_flux_total(log_l_ret - KENNICUTT_HALPHA, lum_dist_mpc), 0.0) * fibre_bulge
    n2_ret = 0.1 + 0.12 * rng.standard_normal(n)
    o3_ret = -0.05 + 0.15 * rng.standard_normal(n)

    dust_ha = 10.0 ** (-0.4 * np.asarray(a_halpha))
    dust_hb = 10.0 ** (-0.4 * np.asarray(a_halpha) * K_HBETA / K_HALPHA)

    def combine(comps):
        ha = sum(c[0] for c in comps)
        hb = sum(c[0] / BALMER_INTRINSIC for c in comps)
        nii = sum(c[0] * 10.0 ** c[1] for c in comps)
        oiii = sum(c[0] / BALMER_INTRINSIC * 10.0 ** c[2] for c in comps)
        return LineFluxes(halpha=ha * dust_ha, hbeta=hb * dust_hb, nii=nii * dust_ha, oiii=oiii * dust_hb)

    fibre = combine(((ha_sf, n2_sf, o3_sf), (ha_agn, n2_agn, o3_agn), (ha_ret, n2_ret, o3_ret)))
    if not total:
        return fibre
    with np.errstate(divide="ignore", invalid="ignore"):
        whole = combine(
            (
                (np.where(fibre_total > 0, ha_sf / fibre_total, 0.0), n2_sf, o3_sf),
                (np.where(fibre_point > 0, ha_agn / fibre_point, 0.0), n2_agn, o3_agn),
                (np.where(fibre_bulge > 0, ha_ret / fibre_bulge, 0.0), n2_ret, o3_ret),
            )
        )
    return fibre, whole


def line_errors(rng: np.random.Generator, true: LineFluxes) -> LineFluxes:
    """Per-line 1-sigma errors: a 2-4e-17 erg s-1 cm-2 floor (continuum noise, per galaxy)
    plus 4% of the flux (calibration, stellar-absorption correction); H-beta and [O III]
    sit in the noisier blue arm (x1.3)."""
    n = np.shape(true.halpha)
    base = rng.uniform(2.0, 4.0, n)
    frac = 0.04

    def err(f, blue):
        return np.sqrt((base * (1.3 if blue else 1.0)) ** 2 + (frac * np.abs(f)) ** 2)

    return LineFluxes(
        halpha=err(true.halpha, False), hbeta=err(true.hbeta, True), nii=err(true.nii, False), oiii=err(true.oiii, True)
    )


def measure_lines(rng: np.random.Generator, true: LineFluxes, errors: LineFluxes) -> LineFluxes:
    """Measured fluxes: truth plus Gaussian noise of the quoted errors (can be negative)."""
    n = np.shape(true.halpha)
    return LineFluxes(
        **{
            k: getattr(true, k) + getattr(errors, k) * rng.standard_normal(n)
            for k in ("halpha", "hbeta", "nii", "oiii")
        }
    )


def metallicity_detectable(measured: LineFluxes, errors: LineFluxes) -> np.ndarray:
    """Brinchmann et al. 2004: O/H is measurable for BPT star-forming galaxies (below
    Kauffmann et al. 2003) with S/N > 3 in all four lines."""
    sn_ok = np.ones(np.shape(measured.halpha), dtype=bool)
    for k in ("halpha", "hbeta", "nii", "oiii"):
        sn_ok &= getattr(measured, k) > SN_DETECT * getattr(errors, k)
    n2, o3 = bpt_ratios(measured.halpha, measured.hbeta, measured.nii, measured.oiii)
    return sn_ok & (bpt_class(np.where(sn_ok, n2, np.nan), np.where(sn_ok, o3, np.nan)) == 0)


def measure_oh(rng: np.random.Generator, true_oh, measured: LineFluxes, errors: LineFluxes, detected):
    """Catalog 12+log(O/H) and its error where detected (NaN elsewhere): the error shrinks with
    the weakest line's S/N (0.03 dex floor, ~0.13 dex at S/N = 3, as MPA-JHU p16-p84)."""
    sn = np.min(
        [getattr(measured, k) / getattr(errors, k) for k in ("halpha", "hbeta", "nii", "oiii")], axis=0
    )
    err = np.sqrt(0.03**2 + (0.4 / np.maximum(sn, 1.0)) ** 2)
    oh = true_oh + err * rng.standard_normal(np.shape(true_oh))
    return np.where(detected, oh, np.nan), np.where(detected, err, np.nan)
