"""Noise of mock SDSS stamps: the background (sky + read) set by the survey depth for the
stamp's PSF, and the source's own Poisson noise through the SDSS gain and flux calibration.

The noise is Gaussian: a background set so that the 5-sigma point-source depth equals SDSS's
for the stamp's PSF (through the exact noise-equivalent area of the pixelised double-Gaussian
PSF), plus the source's Poisson noise.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from galppl.data.mock.photometry import DEPTH_5SIGMA
from galppl.data.mock.stamp_scene import CHANNELS, PSF_AMP, SDSS_PIXEL_SCALE, psf_sigmas

# Photon noise of the source itself: SDSS CCD gain (e-/DN; ~4.7 in r, used for all three
# bands) and the flux calibration, DN per nanomaggy = 1 / NMGY (the NMGY keyword of
# SDSS-III frame files; typical values ~0.0038 g, ~0.0052 r, ~0.0070 i nanomaggy/DN).
SDSS_GAIN = 4.7
SDSS_COUNTS_PER_NMGY = {"g": 1 / 0.0038, "r": 1 / 0.0052, "i": 1 / 0.0070}


def _box_gaussian_overlap(var: np.ndarray) -> np.ndarray:
    """I(S) = integral over k of exp(-2 pi^2 S k^2) sinc^2(k) dk, S in pixels^2 (closed form).

    By Parseval this is the integral of a Gaussian of variance S/2 against the triangle
    (1 - |x|)_+: erf(1/sqrt(2S)) - sqrt(2S/pi) (1 - exp(-1/(2S))).
    """
    var = np.asarray(var, dtype=np.float64)
    return erf(1.0 / np.sqrt(2.0 * var)) - np.sqrt(2.0 * var / np.pi) * -np.expm1(-1.0 / (2.0 * var))


def noise_equivalent_area(psf_fwhm: np.ndarray, pixel_scale: float = SDSS_PIXEL_SCALE) -> np.ndarray:
    """Noise-equivalent area 1 / sum_pixels(PSF_pixel^2) of the pixelised PSF, in pixels.

    For a single Gaussian (and pixels much smaller than it) this is 4 pi sigma^2. Here it is
    exact for the double Gaussian *and* the pixel box, averaged over sub-pixel centres:
    the average of sum_i P_i^2 is the integral of the squared pixel-convolved PSF, which by
    Parseval is sum_jl a_j a_l I(s_j^2 + s_l^2)^2 (see ``_box_gaussian_overlap``).
    Same shape as ``psf_fwhm``.
    """
    sig = psf_sigmas(psf_fwhm) / pixel_scale  # (..., 2) pixels
    total = np.zeros(np.shape(psf_fwhm))
    for j in range(2):
        for k in range(2):
            overlap = _box_gaussian_overlap(sig[..., j] ** 2 + sig[..., k] ** 2)
            total += PSF_AMP[j] * PSF_AMP[k] * overlap**2
    return 1.0 / total


def background_sigma(
    psf_fwhm: np.ndarray, depth_5sigma: dict | None = None, pixel_scale: float = SDSS_PIXEL_SCALE
) -> np.ndarray:
    """Per-pixel background (sky + read) noise, nanomaggies, for each galaxy and channel.

    A PSF-fitted point source of flux f has error sigma_pix sqrt(NEA); setting f / error
    = 5 at the depth m5 (f = 10^((22.5 - m5)/2.5) nanomaggies) gives sigma_pix. Shape
    of ``psf_fwhm`` (N, 3), channels g, r, i.
    """
    depth = check_depth(depth_5sigma)
    f5 = 10.0 ** ((22.5 - np.array([depth[c] for c in CHANNELS])) / 2.5)
    return f5 / (5.0 * np.sqrt(noise_equivalent_area(psf_fwhm, pixel_scale)))


def check_depth(depth_5sigma: dict | None) -> dict:
    depth = DEPTH_5SIGMA if depth_5sigma is None else depth_5sigma
    for c in CHANNELS:
        value = depth.get(c) if hasattr(depth, "get") else None
        if value is None or not np.isfinite(value):
            raise ValueError(f"depth_5sigma must map each of {CHANNELS} to a finite AB magnitude; got {depth_5sigma!r}")
    return depth



def add_noise(images: np.ndarray, psf_fwhm: np.ndarray, depth: dict, pixel_scale: float, seed: int) -> None:
    """Add Gaussian sky + read + source Poisson noise in place.

    One generator draws the deviates galaxy after galaxy, so the noise is the same however
    the galaxies were chunked for rendering.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    bg_var = background_sigma(psf_fwhm, depth, pixel_scale) ** 2  # (N, 3)
    # electrons per nanomaggy: DN per nanomaggy x e- per DN; var(f) = f / that
    per_nmgy = np.array([SDSS_COUNTS_PER_NMGY[c] for c in CHANNELS]) * SDSS_GAIN
    inv_e = (1.0 / per_nmgy).astype(np.float32)[:, None, None]
    block = 256
    for lo in range(0, images.shape[0], block):
        img = images[lo : lo + block]
        var = np.maximum(img, 0.0) * inv_e + bg_var[lo : lo + block, :, None, None].astype(np.float32)
        img += np.sqrt(var) * rng.standard_normal(img.shape, dtype=np.float32)


