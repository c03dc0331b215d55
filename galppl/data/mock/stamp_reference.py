"""The slow brute-force renderer of mock stamps, against which the Fourier renderer
(``galppl.data.mock.images.render_stamps``) is tested and benchmarked."""

from __future__ import annotations

import numpy as np

from galppl.data.mock.stamp_scene import (
    CLUMP_COUNT,
    DEV_AMP,
    DEV_VAR,
    EXP_AMP,
    EXP_VAR,
    PSF_AMP,
    SDSS_PIXEL_SCALE,
    StampParams,
    check_render_args,
    draw_extras,
    ellipse_cov,
    psf_sigmas,
)


def render_stamps_reference(
    params: StampParams,
    image_size: int,
    seed: int,
    *,
    pixel_scale: float = SDSS_PIXEL_SCALE,
    oversample: int = 10,
    neighbours: bool = True,
) -> np.ndarray:
    """Slow brute-force renderer of the same noiseless scenes, for tests and benchmarks.

    Evaluates every PSF-convolved Gaussian component in real space at ``oversample`` x
    ``oversample`` points per pixel (float64) and averages them; no Fourier transform, no
    wrap-around. Same extras (jitter, clumps, neighbours) as :func:`render_stamps`.
    """
    check_render_args(image_size, seed, pixel_scale, 1)
    s = int(image_size)
    ex = draw_extras(params, s, seed, pixel_scale=pixel_scale, neighbours=neighbours)
    sub = (np.arange(oversample) + 0.5) / oversample - 0.5
    coords = (np.arange(s)[:, None] + sub[None, :]).ravel() - s / 2  # relative to nominal centre
    out = np.zeros((len(params), 3, s, s))
    psf_sig = psf_sigmas(params.psf_fwhm) / pixel_scale  # (N, 3, 2)
    for i in range(len(params)):
        comps = []  # (amp (3,), mean (2,), cov (2, 2)) relative to the nominal centre
        for amp, var, flux, r50, q in (
            (DEV_AMP, DEV_VAR, params.flux_bulge[i], params.r50_bulge[i], params.q_bulge[i]),
            (EXP_AMP, EXP_VAR, params.flux_disc[i] * (1 - ex.clump_fraction[i]), params.r50_disc[i], params.q_disc[i]),
        ):
            e = ellipse_cov(np.array(r50 / pixel_scale), np.array(q), np.array(params.position_angle[i]))
            comps += [(a * flux, ex.jitter[i], v * e) for a, v in zip(amp, var)]
        for j in range(CLUMP_COUNT):
            comps.append(
                (
                    ex.clump_weight[i, j] * ex.clump_fraction[i] * params.flux_disc[i],
                    ex.jitter[i] + ex.clump_offset[i, j],
                    ex.clump_sigma[i] ** 2 * np.eye(2),
                )
            )
        if ex.neighbour[i]:
            comps.append((ex.neighbour_flux[i], ex.jitter[i] + ex.neighbour_offset[i], ex.neighbour_cov[i]))
        for b in range(3):
            fine = np.zeros((coords.size, coords.size))
            for amp, mean, cov in comps:
                for pa, ps in zip(PSF_AMP, psf_sig[i, b]):
                    c = cov + ps**2 * np.eye(2)
                    ic = np.linalg.inv(c)
                    dx = coords[None, :] - mean[0]
                    dy = coords[:, None] - mean[1]
                    quad = ic[0, 0] * dx**2 + 2 * ic[0, 1] * dx * dy + ic[1, 1] * dy**2
                    fine += amp[b] * pa / (2 * np.pi * np.sqrt(np.linalg.det(c))) * np.exp(-0.5 * quad)
            out[i, b] = fine.reshape(s, oversample, s, oversample).mean(axis=(1, 3))
    return out
