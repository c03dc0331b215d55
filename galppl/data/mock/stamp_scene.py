"""What a mock SDSS gri stamp shows: the galaxy's parameters, its light profiles, the PSF
and the random extras (centre jitter, star-forming knots, neighbours).

Every light source in a stamp is a mixture of 2-d Gaussians (so that the renderers can draw
it exactly, see ``galppl.data.mock.images``):

- the n = 1 (exponential) disc and n = 4 (de Vaucouleurs) bulge are the mixtures of
  Hogg & Lang 2013 (PASP 125, 719; Table 1, the six-component "lux" and eight-component
  "luv" fits to the softened, truncated SDSS *Photo* profiles), with each component
  variance v_k r50^2 sheared by the axis ratio and rotated by the position angle;
- the PSF is the SDSS *Photo* double Gaussian (Stoughton et al. 2002, AJ 123, 485): a core
  plus a wing of twice its width carrying 10% of the flux, its FWHM set per galaxy and band.

Coordinates: a stamp is ``image[channel, y, x]``; the nominal galaxy centre is pixel
``(S/2, S/2)`` (pixel centres at integer coordinates), shifted by a sub-pixel jitter.
Position angles are degrees east of north with north = +y and east = -x (the
astronomical convention for an image shown with ``origin="lower"``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.optimize import brentq

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


def psf_sigmas(psf_fwhm: np.ndarray) -> np.ndarray:
    """Widths of the double-Gaussian PSF components, same units as ``psf_fwhm``.

    Returns an array of shape ``psf_fwhm.shape + (2,)``: (core, wing) standard deviations;
    their flux fractions are ``PSF_AMP``.
    """
    return np.asarray(psf_fwhm)[..., None] / PSF_FWHM_PER_SIGMA * PSF_SIGMA_RATIO




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


def ellipse_cov(r: np.ndarray, q: np.ndarray, pa_deg: np.ndarray) -> np.ndarray:
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
    neighbour_cov = ellipse_cov(size, rng.uniform(0.4, 1.0, size=n), rng.uniform(0, 180, size=n))
    return StampExtras(
        jitter, clump_offset, clump_weight, clump_sigma, clump_fraction, has, neighbour_offset, neighbour_flux, neighbour_cov
    )



def check_render_args(image_size, seed, pixel_scale, chunk) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 16 or image_size % 8:
        raise ValueError(f"image_size must be an integer >= 16 divisible by 8 (e.g. 64 or 160); got {image_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    if not (np.isfinite(pixel_scale) and pixel_scale > 0):
        raise ValueError(f"pixel_scale must be a positive number of arcsec per pixel; got {pixel_scale!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer (galaxies rendered at once); got {chunk!r}")


