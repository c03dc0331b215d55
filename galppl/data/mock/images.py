"""Pixel rendering of mock SDSS gri stamps: bulge + disc + clumps + PSF + pixel + noise.

Every light source in a stamp (bulge and disc as Hogg & Lang 2013 mixtures, knots,
neighbours, the double-Gaussian SDSS PSF; see ``galppl.data.mock.stamp_scene``) is a
mixture of 2-d Gaussians, so a stamp is rendered exactly (no sampling of pixel centres, no
oversampling) in Fourier space:

- the Fourier transform of a Gaussian is analytic, convolution is a product, the pixel
  box is the transfer function sinc(kx) sinc(ky), a position is a phase; the
  frequencies a 0.396" pixel cannot represent are folded back (aliased) explicitly, so
  the pixel values are the integrals of the PSF-convolved profile over each pixel.

One inverse real FFT per stamp and band then gives the image. The only approximations
are controlled: alias copies are folded until what is left is < 1e-3 of the peak pixel
(none are needed for PSF FWHM >~ 1.05"), and each galaxy's FFT grid is padded until the
light that wraps around the periodic grid into the stamp comes from beyond 3 sigma of
its widest Gaussian. A brute-force real-space renderer (``render_stamps_reference``)
checks both in the tests.

Noise (``galppl.data.mock.stamp_noise``) is added after rendering; the brute-force
reference renderer is ``galppl.data.mock.stamp_reference``.
"""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import torch
from scipy.special import erfc

from galppl.data.mock.stamp_noise import add_noise, check_depth
from galppl.data.mock.stamp_scene import (
    CLUMP_COUNT,
    DEV_AMP,
    DEV_VAR,
    EXP_AMP,
    EXP_VAR,
    PSF_AMP,
    SDSS_PIXEL_SCALE,
    StampExtras,
    StampParams,
    check_render_args,
    draw_extras,
    ellipse_cov,
    psf_sigmas,
)

# Worst pixel error left by unfolded aliases, relative to the peak pixel: far below the
# noise of any SDSS galaxy (peak S/N ~ 1000 would be needed to see it).
_TARGET_ALIAS_ERROR = 1e-3
_MAX_ALIAS = 4
# FFT grid side: at least the stamp + _MIN_PAD, more for galaxies whose outer light would
# otherwise wrap around into the stamp (see _fft_size), at most _MAX_PAD x the stamp.
_MIN_PAD = 8
_MAX_PAD = 4
_WRAP_SIGMAS = 3.0
_CHUNK_BYTES = 256 * 2**20  # the Fourier work of one chunk stays within about this


def _alias_order(psf_fwhm: np.ndarray, pixel_scale: float) -> np.ndarray:
    """How many alias copies (each side) the Fourier rendering of each galaxy must fold back.

    A Gaussian of width s pixels has a fraction ~ erfc(sqrt(2) pi s (m + 1/2)) of its
    spectrum beyond |k| = m + 1/2 along an axis; relative to the peak pixel, leaving it
    out costs at most ~2 erfc(...) (two axes; the pixel sinc makes it smaller still). The narrowest light is the PSF core (galaxy light only widens it), so
    the sharpest of a galaxy's three PSFs sets its order. Shape (N,), integers.
    """
    s = np.min(psf_sigmas(psf_fwhm)[..., 0], axis=-1) / pixel_scale
    order = np.full(s.shape, _MAX_ALIAS)
    for m in range(_MAX_ALIAS, -1, -1):
        order[2.0 * erfc(math.sqrt(2.0) * math.pi * s * (m + 0.5)) < _TARGET_ALIAS_ERROR] = m
    return order


def _nice_fft_size(n: int) -> int:
    """The smallest even 2^a 3^b 5^c >= n (sizes pocketfft transforms fastest)."""
    size = n + (n % 2)
    while True:
        rest = size
        for f in (2, 3, 5):
            while rest % f == 0:
                rest //= f
        if rest == 1:
            return size
        size += 2


def _fft_size(params: StampParams, extras: StampExtras, image_size: int, pixel_scale: float) -> np.ndarray:
    """FFT grid side per galaxy, so that light wrapping around into the stamp is negligible.

    A Fourier-rendered image is periodic with period P: a source at offset d from the
    stamp centre re-enters the stamp from the other side at distance P - S/2 - |d| (per
    axis). P is the smallest FFT-friendly size that keeps every source (galaxy, knots,
    neighbour) _WRAP_SIGMAS x its widest Gaussian (PSF wing included) away, at least
    S + 8 and at most _MAX_PAD S (galaxies that large fill the stamp anyway).
    """
    s = image_size
    wing = np.max(psf_sigmas(params.psf_fwhm)[..., 1], axis=-1) / pixel_scale
    widest = np.sqrt(
        np.maximum(DEV_VAR.max() * params.r50_bulge**2, EXP_VAR.max() * params.r50_disc**2) / pixel_scale**2 + wing**2
    )
    reach = _WRAP_SIGMAS * widest
    knots = np.abs(extras.clump_offset).max(axis=(1, 2)) + _WRAP_SIGMAS * np.hypot(extras.clump_sigma, wing)
    reach = np.where(extras.clump_fraction[:, 1] > 0, np.maximum(reach, knots), reach)
    n_sigma = np.sqrt(np.maximum(extras.neighbour_cov[:, 0, 0], extras.neighbour_cov[:, 1, 1]) + wing**2)
    near = np.abs(extras.neighbour_offset).max(axis=1) + _WRAP_SIGMAS * n_sigma
    reach = np.where(extras.neighbour, np.maximum(reach, near), reach)
    need = np.clip(np.ceil(s / 2 + reach), s + _MIN_PAD, _MAX_PAD * s)
    sizes = {int(v): _nice_fft_size(int(v)) for v in np.unique(need)}
    return np.array([sizes[int(v)] for v in need])


def _render_chunk(
    params: StampParams, extras: StampExtras, image_size: int, pixel_scale: float, alias: int, p: int
) -> torch.Tensor:
    """Noiseless stamps (n, 3, S, S) of one chunk on a p x p FFT grid, float32, exact."""
    n, s = len(params), image_size
    m = np.arange(-alias, alias + 1, dtype=np.float64)
    # Frequencies (cycles / pixel) of the rfft grid, each bin with its alias copies, flat.
    ky = (np.fft.fftfreq(p)[None, :] + m[:, None]).ravel()  # (My * p,)
    kx = (np.fft.rfftfreq(p)[None, :] + m[:, None]).ravel()  # (Mx * (p // 2 + 1),)
    centre = p / 2 + extras.jitter  # (n, 2) galaxy centre in the padded grid

    f32, c64 = torch.float32, torch.complex64
    tkx, tky = torch.as_tensor(kx, dtype=f32), torch.as_tensor(ky, dtype=f32)

    def cmat(a):
        return torch.as_tensor(np.asarray(a), dtype=f32)

    def profile(amp, var, r50, q, pa):
        # sum_k a_k exp(-2 pi^2 k^T C_k k) with C_k = var_k (r50 / pixel)^2 E(q, pa)
        e = ellipse_cov(r50 / pixel_scale, q, pa)
        quad = (
            cmat(e[:, 0, 0])[:, None, None] * (tkx**2)[None, None, :]
            + cmat(2 * e[:, 0, 1])[:, None, None] * (tky[:, None] * tkx[None, :])[None]
            + cmat(e[:, 1, 1])[:, None, None] * (tky**2)[None, :, None]
        )
        quad.mul_(-2.0 * math.pi**2)
        total = torch.zeros_like(quad)
        for a, v in zip(amp, var):
            # clamped so far-out frequencies give exp(-80) ~ 2e-35 rather than slow denormals
            total.add_(torch.exp((quad * float(v)).clamp_(min=-80.0)), alpha=float(a))
        return total

    bulge = profile(DEV_AMP, DEV_VAR, params.r50_bulge, params.q_bulge, params.position_angle)
    disc = profile(EXP_AMP, EXP_VAR, params.r50_disc, params.q_disc, params.position_angle)
    # Centred light (bulge, smooth disc) is real in Fourier space until the centre phase.
    flux_disc_smooth = params.flux_disc * (1.0 - extras.clump_fraction)
    scene = cmat(params.flux_bulge)[:, :, None, None] * bulge[:, None]
    scene.add_(cmat(flux_disc_smooth)[:, :, None, None] * disc[:, None])
    del bulge, disc

    def shifted_round(offset, sigma):
        # separable factors (n, J, ky) and (n, J, kx) of a round Gaussian at offset (pixels)
        ox = torch.as_tensor(offset[..., 0], dtype=torch.float64)[..., None]
        oy = torch.as_tensor(offset[..., 1], dtype=torch.float64)[..., None]
        sg = torch.as_tensor(sigma, dtype=torch.float64)[..., None]
        kx64, ky64 = torch.as_tensor(kx), torch.as_tensor(ky)
        fx = torch.exp(-2 * math.pi**2 * sg**2 * kx64**2 - 2j * math.pi * ox * kx64)
        fy = torch.exp(-2 * math.pi**2 * sg**2 * ky64**2 - 2j * math.pi * oy * ky64)
        return fy.to(c64), fx.to(c64)

    # Off-centre light (knots, neighbour) carries its own phase: complex, for those galaxies only.
    clumpy = extras.clump_fraction[:, 1] > 0
    off = np.flatnonzero(clumpy | extras.neighbour)
    if off.size:
        offcentre = torch.zeros((off.size, 3, tky.numel(), tkx.numel()), dtype=c64)
        rows = np.flatnonzero(clumpy[off])
        if rows.size:
            gal = off[rows]
            fy, fx = shifted_round(extras.clump_offset[gal], np.repeat(extras.clump_sigma[gal, None], CLUMP_COUNT, 1))
            fy = fy * torch.as_tensor(extras.clump_weight[gal], dtype=f32)[:, :, None]
            knots = torch.bmm(fy.transpose(1, 2), fx)  # (rows, ky, kx)
            flux = cmat(params.flux_disc[gal] * extras.clump_fraction[gal])
            offcentre[rows] += flux[:, :, None, None] * knots[:, None]
            del knots
        rows = np.flatnonzero(extras.neighbour[off])
        if rows.size:
            gal = off[rows]
            cov = extras.neighbour_cov[gal]
            quad = (
                cmat(cov[:, 0, 0])[:, None, None] * (tkx**2)[None, None, :]
                + cmat(2 * cov[:, 0, 1])[:, None, None] * (tky[:, None] * tkx[None, :])[None]
                + cmat(cov[:, 1, 1])[:, None, None] * (tky**2)[None, :, None]
            )
            fy, fx = shifted_round(extras.neighbour_offset[gal][:, None, :], np.zeros((gal.size, 1)))
            light = torch.exp((-2.0 * math.pi**2 * quad).clamp_(min=-80.0)) * torch.bmm(fy.transpose(1, 2), fx)
            offcentre[rows] += cmat(extras.neighbour_flux[gal])[:, :, None, None] * light[:, None]

    # PSF x pixel box x centre phase: separable per PSF component -> a rank-2 product.
    sig = psf_sigmas(params.psf_fwhm) / pixel_scale  # (n, 3, 2)
    kx64, ky64 = torch.as_tensor(kx), torch.as_tensor(ky)
    sig64 = torch.as_tensor(sig)[..., None]  # (n, 3, 2, 1)
    cx = torch.as_tensor(centre[:, 0])[:, None, None, None]
    cy = torch.as_tensor(centre[:, 1])[:, None, None, None]
    amp = torch.as_tensor(PSF_AMP)[None, None, :, None]
    hx = amp * torch.sinc(kx64) * torch.exp(-2 * math.pi**2 * sig64**2 * kx64**2 - 2j * math.pi * cx * kx64)
    hy = torch.sinc(ky64) * torch.exp(-2 * math.pi**2 * sig64**2 * ky64**2 - 2j * math.pi * cy * ky64)
    image_ft = torch.matmul(hy.to(c64).transpose(-1, -2), hx.to(c64))  # kernel (n, 3, ky, kx)
    if off.size:
        offcentre.mul_(image_ft[off])
    # kernel x real scene, as real arithmetic on the (re, im) pairs (no complex promotion)
    torch.view_as_real(image_ft).mul_(scene.unsqueeze(-1))
    del scene
    if off.size:
        image_ft[off] += offcentre
        del offcentre

    if alias:  # fold the alias copies of each frequency bin onto it
        ma = 2 * alias + 1
        image_ft = image_ft.reshape(n, 3, ma, p, ma, p // 2 + 1).sum(dim=(2, 4))
    image = torch.fft.irfft2(image_ft, s=(p, p))
    lo = p // 2 - s // 2
    return image[:, :, lo : lo + s, lo : lo + s]


def _chunk_size(chunk: int, p: int, alias: int) -> int:
    """``chunk`` capped so one chunk's Fourier arrays (p x p grid) stay within ~_CHUNK_BYTES."""
    grid = (2 * alias + 1) ** 2 * p * (p // 2 + 1)
    per_galaxy = grid * 8 * 3 * 3  # complex64 scene + kernel + temporaries, 3 channels
    return max(1, min(int(chunk), _CHUNK_BYTES // per_galaxy))



def render_stamps(
    params: StampParams,
    image_size: int,
    seed: int,
    *,
    noise: bool = True,
    pixel_scale: float = SDSS_PIXEL_SCALE,
    depth_5sigma: dict | None = None,
    chunk: int = 512,
    neighbours: bool = True,
) -> np.ndarray:
    """Render mock SDSS gri stamps, nanomaggies per pixel, shape (N, 3, S, S) float32.

    Parameters
    ----------
    params : the galaxies (see :class:`StampParams`).
    image_size : stamp side S in pixels; >= 16 and divisible by 8 (64 default in galppl,
        160 as in the paper).
    seed : seeds the centre jitter, clumps, neighbours and noise; the same seed gives the
        same stamps whatever ``chunk`` is.
    noise : add background (sky + read) and source Poisson noise.
    pixel_scale : arcsec per pixel (SDSS: 0.396).
    depth_5sigma : 5-sigma point-source depth per channel, AB mag ({"g", "r", "i"} keys;
        default SDSS 22.2, 22.2, 21.3) that sets the background noise.
    chunk : at most this many galaxies are rendered at once (bounds memory; capped further
        so one chunk's Fourier arrays stay near 256 MB). Uses torch's thread setting.
    neighbours : allow the occasional faint neighbour star/galaxy (4% of stamps).
    """
    if not isinstance(params, StampParams):
        raise TypeError(f"params must be a StampParams; got {type(params).__name__}")
    check_render_args(image_size, seed, pixel_scale, chunk)
    depth = check_depth(depth_5sigma)
    n, s = len(params), int(image_size)
    extras = draw_extras(params, s, seed, pixel_scale=pixel_scale, neighbours=neighbours)
    out = np.empty((n, 3, s, s), dtype=np.float32)
    if n == 0:
        return out
    # Each galaxy is rendered with its own alias order (set by its sharpest PSF) and FFT
    # size (set by its size), so its pixels do not depend on which others share its chunk.
    order = _alias_order(params.psf_fwhm, pixel_scale)
    fft_size = _fft_size(params, extras, s, pixel_scale)
    groups = sorted(set(zip(order.tolist(), fft_size.tolist())))
    with torch.no_grad():
        for alias, p in groups:
            members = np.flatnonzero((order == alias) & (fft_size == p))
            step = _chunk_size(chunk, p, alias)
            for lo in range(0, members.size, step):
                idx = members[lo : lo + step]
                sub = _subset_extras(extras, idx)
                out[idx] = _render_chunk(params.subset(idx), sub, s, pixel_scale, alias, p).numpy()
    if noise:
        add_noise(out, params.psf_fwhm, depth, pixel_scale, seed)
    return out


def _subset_extras(extras: StampExtras, index) -> StampExtras:
    return StampExtras(**{f.name: getattr(extras, f.name)[index] for f in fields(extras)})


