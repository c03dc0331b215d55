"""Pixel rendering of mock SDSS gri stamps: bulge + disc + clumps + PSF + pixel + noise.

Every light source in a stamp is a mixture of 2-d Gaussians, so a stamp is rendered
exactly (no sampling of pixel centres, no oversampling) in Fourier space:

- the n = 1 (exponential) disc and n = 4 (de Vaucouleurs) bulge are the mixtures of
  Hogg & Lang 2013 (PASP 125, 719; Table 1, the six-component "lux" and eight-component
  "luv" fits to the softened, truncated SDSS *Photo* profiles), with each component
  variance v_k r50^2 sheared by the axis ratio and rotated by the position angle;
- the PSF is the SDSS *Photo* double Gaussian (Stoughton et al. 2002, AJ 123, 485): a core
  plus a wing of twice its width carrying 10% of the flux, its FWHM set per galaxy and band;
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

Noise is Gaussian: a background (sky + read noise) set so that the 5-sigma point-source
depth equals SDSS's for the stamp's PSF, plus the source's own Poisson noise through the
SDSS gain and flux calibration.

Coordinates: a stamp is ``image[channel, y, x]``; the nominal galaxy centre is pixel
``(S/2, S/2)`` (pixel centres at integer coordinates), shifted by a sub-pixel jitter.
Position angles are degrees east of north with north = +y and east = -x (the
astronomical convention for an image shown with ``origin="lower"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.special import erf, erfc

CHANNELS = ("g", "r", "i")

# Hogg & Lang 2013, Table 1: amplitudes and variances (units of r50^2) of the Gaussian
# mixtures for the SDSS exponential ("lux", K = 6) and de Vaucouleurs ("luv", K = 8)
# profiles, as distributed with The Tractor (mixture_profiles.py).
_EXP_AMP = np.array([2.34853813e-03, 3.07995260e-02, 2.23364214e-01, 1.17949102e00, 4.33873750e00, 5.99820770e00])
_EXP_VAR = np.array([1.20078965e-03, 8.84526493e-03, 3.91463084e-02, 1.39976817e-01, 4.60962500e-01, 1.50159566e00])
_DEV_AMP = np.array(
    [4.26347652e-02, 2.40127183e-01, 6.85907632e-01, 1.51937350e00, 2.83627243e00, 4.46467501e00, 5.72440830e00, 5.60989349e00]
)
_DEV_VAR = np.array(
    [2.23759216e-04, 1.00220099e-03, 4.18731126e-03, 1.69432589e-02, 6.84850479e-02, 2.87207080e-01, 1.33320254e00, 8.40215071e00]
)


def _half_light_radius(amp: np.ndarray, var: np.ndarray) -> float:
    """Half-light radius of a round, centred Gaussian mixture (same units as sqrt(var))."""
    amp = amp / amp.sum()
    return brentq(lambda r: float(np.sum(amp * -np.expm1(-(r**2) / (2 * var)))) - 0.5, 1e-4, 100.0)


def _normalised_mixture(amp: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Amplitudes summing to 1 and variances rescaled so the half-light radius is exactly 1.

    The Photo profiles are truncated (exp at 4 r50, deV at 8 r50), which pulls their
    half-light radius in to 0.986 (exp) and 0.915 (deV) of the nominal one; the rescaling
    makes ``r50`` mean what it says: half the flux falls inside the ellipse of that radius.
    """
    r50 = _half_light_radius(amp, var)
    return amp / amp.sum(), var / r50**2


EXP_AMP, EXP_VAR = _normalised_mixture(_EXP_AMP, _EXP_VAR)
DEV_AMP, DEV_VAR = _normalised_mixture(_DEV_AMP, _DEV_VAR)

# SDSS PSF as a double Gaussian (Stoughton et al. 2002): wing of twice the core width with
# 10% of the flux. FWHM / sigma_core of that profile, found once numerically (2.387,
# against 2.355 for a single Gaussian).
PSF_WING_FRACTION = 0.1
PSF_WING_WIDTH = 2.0
PSF_AMP = np.array([1.0 - PSF_WING_FRACTION, PSF_WING_FRACTION])
PSF_SIGMA_RATIO = np.array([1.0, PSF_WING_WIDTH])


def _fwhm_per_core_sigma() -> float:
    peak = np.sum(PSF_AMP / PSF_SIGMA_RATIO**2)
    half = brentq(
        lambda r: float(np.sum(PSF_AMP / PSF_SIGMA_RATIO**2 * np.exp(-(r**2) / (2 * PSF_SIGMA_RATIO**2)))) - 0.5 * peak,
        1e-3,
        10.0,
    )
    return 2.0 * half


PSF_FWHM_PER_SIGMA = _fwhm_per_core_sigma()

# 5-sigma point-source depths (AB mag), as quoted for SDSS imaging (York et al. 2000;
# Abazajian et al. 2009, DR7); SIMULATOR.md section 4.
SDSS_DEPTH_5SIGMA = {"u": 22.0, "g": 22.2, "r": 22.2, "i": 21.3, "z": 20.5}
# Photon noise of the source itself: SDSS CCD gain (e-/DN; ~4.7 in r, used for all three
# bands) and the flux calibration, DN per nanomaggy = 1 / NMGY (the NMGY keyword of
# SDSS-III frame files; typical values ~0.0038 g, ~0.0052 r, ~0.0070 i nanomaggy/DN).
SDSS_GAIN = 4.7
SDSS_COUNTS_PER_NMGY = {"g": 1 / 0.0038, "r": 1 / 0.0052, "i": 1 / 0.0070}
SDSS_PIXEL_SCALE = 0.396  # arcsec / pixel

# Clumps and spiral arms (star-forming knots): CLUMP_MAX_FRACTION x clumpiness of the
# r-band disc flux moves into CLUMP_COUNT small knots strung along a two-armed logarithmic
# spiral between CLUMP_RADII (units of the disc r50), so that bright, clumpy discs show arms;
# knots are bluer than the disc they come from (g-r about 0.5 mag bluer).
CLUMP_COUNT = 24
CLUMP_MAX_FRACTION = 0.2
CLUMP_COLOUR = np.array([1.4, 1.0, 0.8])  # fraction moved in (g, r, i) relative to r
CLUMP_PITCH_DEG = 20.0  # pitch angle of the spiral arms (typical Sb-Sc, Kennicutt 1981)
CLUMP_RADII = (0.3, 2.5)
CLUMP_ARM_SCATTER = 0.15  # radians around the arm
CLUMP_SIZE = 0.12  # knot Gaussian sigma, units of the disc r50

# Neighbours: probability a stamp holds a faint unrelated star or galaxy near its edge.
NEIGHBOUR_PROBABILITY = 0.04
NEIGHBOUR_STAR_FRACTION = 0.4

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


class StampParamsError(ValueError):
    """A stamp parameter has the wrong shape or a value outside its valid range."""


@dataclass(frozen=True)
class StampParams:
    """What a stamp shows: one row per galaxy; channel order (g, r, i).

    Attributes
    ----------
    flux_bulge, flux_disc : (N, 3) total flux of the bulge / disc in each channel,
        nanomaggies, Milky Way extinction already applied; >= 0.
    r50_bulge, r50_disc : (N,) half-light radius along the major axis, arcsec; > 0.
        The bulge is a de Vaucouleurs (Sersic n = 4), the disc an exponential (n = 1).
    q_bulge, q_disc : (N,) axis ratio b/a in (0, 1].
    position_angle : (N,) degrees east of north of the major axis (both components).
    psf_fwhm : (N, 3) PSF full width at half maximum per channel, arcsec; > 0.
    clumpiness : (N,) 0..1 strength of the star-forming clumps / spiral structure.
    """

    flux_bulge: np.ndarray
    flux_disc: np.ndarray
    r50_bulge: np.ndarray
    r50_disc: np.ndarray
    q_bulge: np.ndarray
    q_disc: np.ndarray
    position_angle: np.ndarray
    psf_fwhm: np.ndarray
    clumpiness: np.ndarray

    def __post_init__(self) -> None:
        arrays = {f.name: np.asarray(getattr(self, f.name), dtype=np.float64) for f in fields(self)}
        n = arrays["r50_disc"].shape[0] if arrays["r50_disc"].ndim >= 1 else None
        for name, value in arrays.items():
            want = (n, 3) if name in ("flux_bulge", "flux_disc", "psf_fwhm") else (n,)
            if n is None or value.shape != want:
                raise StampParamsError(
                    f"StampParams.{name} has shape {value.shape}; expected {want if n is not None else '(N,)'} "
                    "(N galaxies, channels g, r, i)"
                )
            bad = ~np.isfinite(value)
            if bad.any():
                index = tuple(int(i) for i in np.argwhere(bad)[0])
                raise StampParamsError(
                    f"StampParams.{name} is not finite at {_where(index)} (value {float(value[index])}); "
                    "all stamp parameters must be finite numbers"
                )
            object.__setattr__(self, name, value)
        ranges = {
            "flux_bulge": (0.0, None, "nanomaggies >= 0"),
            "flux_disc": (0.0, None, "nanomaggies >= 0"),
            "r50_bulge": (0.0, None, "arcsec > 0"),
            "r50_disc": (0.0, None, "arcsec > 0"),
            "q_bulge": (0.0, 1.0, "0 < q <= 1"),
            "q_disc": (0.0, 1.0, "0 < q <= 1"),
            "psf_fwhm": (0.0, None, "arcsec > 0"),
            "clumpiness": (0.0, 1.0, "0 <= clumpiness <= 1"),
        }
        for name, (low, high, what) in ranges.items():
            value = arrays[name]
            inclusive_low = name.startswith("flux") or name == "clumpiness"
            bad = (value < low) if inclusive_low else (value <= low)
            if high is not None:
                bad |= value > high
            if bad.any():
                index = tuple(int(i) for i in np.argwhere(bad)[0])
                raise StampParamsError(
                    f"StampParams.{name} = {float(value[index])} at {_where(index)}; must be {what}"
                )

    def __len__(self) -> int:
        return self.r50_disc.shape[0]

    def subset(self, index) -> StampParams:
        """The parameters of the galaxies selected by ``index`` (a slice or index array)."""
        return StampParams(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def _where(index: tuple[int, ...]) -> str:
    """'galaxy 3' or 'galaxy 3, channel r' for an error message."""
    text = f"galaxy {index[0]}"
    return text + f", channel {CHANNELS[index[1]]}" if len(index) > 1 else text


# ---------------------------------------------------------------------------- PSF & noise


def psf_sigmas(psf_fwhm: np.ndarray) -> np.ndarray:
    """Widths of the double-Gaussian PSF components, same units as ``psf_fwhm``.

    Returns an array of shape ``psf_fwhm.shape + (2,)``: (core, wing) standard deviations;
    their flux fractions are ``PSF_AMP``.
    """
    return np.asarray(psf_fwhm)[..., None] / PSF_FWHM_PER_SIGMA * PSF_SIGMA_RATIO


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
    depth = _check_depth(depth_5sigma)
    f5 = 10.0 ** ((22.5 - np.array([depth[c] for c in CHANNELS])) / 2.5)
    return f5 / (5.0 * np.sqrt(noise_equivalent_area(psf_fwhm, pixel_scale)))


def _check_depth(depth_5sigma: dict | None) -> dict:
    depth = SDSS_DEPTH_5SIGMA if depth_5sigma is None else depth_5sigma
    for c in CHANNELS:
        value = depth.get(c) if hasattr(depth, "get") else None
        if value is None or not np.isfinite(value):
            raise ValueError(f"depth_5sigma must map each of {CHANNELS} to a finite AB magnitude; got {depth_5sigma!r}")
    return depth


# ---------------------------------------------------------------------------- random extras


@dataclass(frozen=True)
class StampExtras:
    """The random parts of each stamp, drawn from the seed (positions in pixels).

    jitter (N, 2): centre offset (dx, dy) from pixel (S/2, S/2), uniform in +-0.5.
    clump_offset (N, J, 2), clump_weight (N, J) (rows sum to 1), clump_sigma (N,),
    clump_fraction (N, 3): share of the disc flux moved into the knots, per channel.
    neighbour (N,) bool, neighbour_offset (N, 2) from the galaxy centre, neighbour_flux
    (N, 3) nanomaggies, neighbour_cov (N, 2, 2) intrinsic covariance (zero for a star).
    """

    jitter: np.ndarray
    clump_offset: np.ndarray
    clump_weight: np.ndarray
    clump_sigma: np.ndarray
    clump_fraction: np.ndarray
    neighbour: np.ndarray
    neighbour_offset: np.ndarray
    neighbour_flux: np.ndarray
    neighbour_cov: np.ndarray


def _ellipse_cov(r: np.ndarray, q: np.ndarray, pa_deg: np.ndarray) -> np.ndarray:
    """Covariance shape r^2 (u u^T + q^2 w w^T) of an ellipse, (..., 2, 2) in (x, y).

    The major axis u points east of north by ``pa_deg``: north = +y, east = -x.
    """
    pa = np.deg2rad(pa_deg)
    u = np.stack([-np.sin(pa), np.cos(pa)], axis=-1)
    w = np.stack([np.cos(pa), np.sin(pa)], axis=-1)
    return (r**2)[..., None, None] * (
        u[..., :, None] * u[..., None, :] + (q**2)[..., None, None] * w[..., :, None] * w[..., None, :]
    )


def draw_extras(
    params: StampParams, image_size: int, seed: int, *, pixel_scale: float = SDSS_PIXEL_SCALE, neighbours: bool = True
) -> StampExtras:
    """Draw centre jitter, clumps and neighbours for every galaxy (vectorised, from ``seed``).

    Everything is drawn for all N galaxies at once, so the result does not depend on how
    the rendering is chunked. ``render_stamps`` calls this with the same arguments.
    """
    n = len(params)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    jitter = rng.uniform(-0.5, 0.5, size=(n, 2))

    # Knots on a two-armed logarithmic spiral in the disc plane, radii following the
    # exponential disc light (r ~ Gamma(2, h), h = r50 / 1.678) within CLUMP_RADII, drawn
    # by inverting the Gamma(2) distribution function F(x) = 1 - (1 + x) exp(-x).
    h = params.r50_disc / 1.678 / pixel_scale
    x_table = np.linspace(0.0, 1.678 * CLUMP_RADII[1], 512)
    f_table = 1.0 - (1.0 + x_table) * np.exp(-x_table)
    f_lo = np.interp(1.678 * CLUMP_RADII[0], x_table, f_table)
    u = rng.uniform(f_lo, f_table[-1], size=(n, CLUMP_COUNT))
    radius = np.interp(u, f_table, x_table) * h[:, None]
    arm = rng.integers(0, 2, size=(n, CLUMP_COUNT))
    phase0 = rng.uniform(0, 2 * np.pi, size=(n, 1))
    theta = (
        phase0
        + np.pi * arm
        + np.log(radius / h[:, None]) / np.tan(np.deg2rad(CLUMP_PITCH_DEG))
        + rng.normal(0.0, CLUMP_ARM_SCATTER, size=(n, CLUMP_COUNT))
    )
    major, minor = radius * np.cos(theta), params.q_disc[:, None] * radius * np.sin(theta)
    pa = np.deg2rad(params.position_angle)[:, None]
    clump_offset = np.stack(
        [-np.sin(pa) * major + np.cos(pa) * minor, np.cos(pa) * major + np.sin(pa) * minor], axis=-1
    )
    clump_weight = rng.dirichlet(np.full(CLUMP_COUNT, 2.0), size=n)
    clump_sigma = CLUMP_SIZE * params.r50_disc / pixel_scale
    clump_fraction = CLUMP_MAX_FRACTION * params.clumpiness[:, None] * CLUMP_COLOUR[None, :]

    # Faint neighbours near the stamp edge: a star (point source) or a small Gaussian galaxy.
    u = rng.uniform(size=(n, 8))
    has = (u[:, 0] < NEIGHBOUR_PROBABILITY) & neighbours
    is_star = u[:, 1] < NEIGHBOUR_STAR_FRACTION
    dist = (0.30 + 0.15 * u[:, 2]) * image_size
    ang = 2 * np.pi * u[:, 3]
    neighbour_offset = np.stack([dist * np.cos(ang), dist * np.sin(ang)], axis=-1) - jitter
    primary_r = params.flux_bulge[:, 1] + params.flux_disc[:, 1]
    flux_r = primary_r * 10 ** (-0.4 * (0.75 + 2.25 * u[:, 4]))
    g_r = np.where(is_star, 0.3 + 1.1 * u[:, 5], 0.4 + 0.6 * u[:, 5])
    r_i = np.where(is_star, 0.1 + 0.4 * u[:, 6], 0.2 + 0.25 * u[:, 6])
    neighbour_flux = flux_r[:, None] * np.stack([10 ** (-0.4 * g_r), np.ones(n), 10 ** (0.4 * r_i)], axis=-1)
    neighbour_flux *= has[:, None]
    size = np.where(is_star, 0.0, (0.4 + 0.8 * u[:, 7]) / pixel_scale)
    neighbour_cov = _ellipse_cov(size, rng.uniform(0.4, 1.0, size=n), rng.uniform(0, 180, size=n))
    return StampExtras(
        jitter, clump_offset, clump_weight, clump_sigma, clump_fraction, has, neighbour_offset, neighbour_flux, neighbour_cov
    )


# ---------------------------------------------------------------------------- rendering


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
        e = _ellipse_cov(r50 / pixel_scale, q, pa)
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


def _check_render_args(image_size, seed, pixel_scale, chunk) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 16 or image_size % 8:
        raise ValueError(f"image_size must be an integer >= 16 divisible by 8 (e.g. 64 or 160); got {image_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    if not (np.isfinite(pixel_scale) and pixel_scale > 0):
        raise ValueError(f"pixel_scale must be a positive number of arcsec per pixel; got {pixel_scale!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer (galaxies rendered at once); got {chunk!r}")


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
    _check_render_args(image_size, seed, pixel_scale, chunk)
    depth = _check_depth(depth_5sigma)
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
        _add_noise(out, params.psf_fwhm, depth, pixel_scale, seed)
    return out


def _subset_extras(extras: StampExtras, index) -> StampExtras:
    return StampExtras(**{f.name: getattr(extras, f.name)[index] for f in fields(extras)})


def _add_noise(images: np.ndarray, psf_fwhm: np.ndarray, depth: dict, pixel_scale: float, seed: int) -> None:
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


# ---------------------------------------------------------------------------- reference


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
    _check_render_args(image_size, seed, pixel_scale, 1)
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
            e = _ellipse_cov(np.array(r50 / pixel_scale), np.array(q), np.array(params.position_angle[i]))
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
