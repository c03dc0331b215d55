"""Feature preparation: image checks and scaling, photometric features, standardisation.

The statistics every transform learns (``ImageScaler``, ``Standardizer``) are fitted on
the training set only and serialise to JSON-able dicts, so they travel with a fitted
model and the same transform is applied at prediction time.

This module knows nothing of Pyro or torch: numpy and xarray in, numpy and xarray out.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from galppl.data.image_checks import ImageRanges, border_pixels
from galppl.data.schema import BANDS, CHANNELS, COLOURS, CatalogError, has_flag

__all__ = [
    "IMAGE_UNITS",
    "ImageError",
    "ImageScaler",
    "Standardizer",
    "check_images",
    "image_quality",
    "image_stack",
    "image_units",
    "photometry_features",
]

# Pixel units galppl's images come in: calibrated flux ("nanomaggy", from FITS cutouts and
# the simulator) or display-stretched 0..1 colour composites ("relative", from JPEGs).
IMAGE_UNITS = ("nanomaggy", "relative")

_CHUNK = 1024  # images transformed at a time (bounds float64 temporaries)
_NOISE_SAMPLE = 2000  # stamps used to estimate the sky noise


class ImageError(ValueError):
    """Images that galppl's image models cannot use; the message names the problem."""


def _indices(bad: np.ndarray, limit: int = 5) -> str:
    idx = np.flatnonzero(bad)
    shown = ", ".join(str(i) for i in idx[:limit])
    return shown + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def check_images(images, channels: int = 3, *, finite: bool = True) -> np.ndarray:
    """Check an image stack (galaxy, channel, y, x) and return it as a numpy array.

    Raises ``ImageError`` for: an input that is not 4-d, no images, a channel count other
    than ``channels`` (gri: 3), non-square stamps, a side not divisible by 8 (the encoder
    halves it three times), and NaN/inf pixels (naming the galaxy indices; in a catalog,
    flag such galaxies ``bad_image`` instead and use :func:`image_quality`).
    """
    if isinstance(images, xr.DataArray):
        images = images.values
    images = np.asarray(images)
    if not (np.issubdtype(images.dtype, np.floating) or np.issubdtype(images.dtype, np.integer)):
        raise ImageError(f"images must be numeric, got dtype {images.dtype}")
    if images.ndim != 4:
        raise ImageError(
            f"images must be 4-d (galaxy, channel, y, x), got {images.ndim}-d with shape {images.shape}"
            + ("; add a leading galaxy axis for a single image" if images.ndim == 3 else "")
        )
    n, c, h, w = images.shape
    if n == 0:
        raise ImageError("no images: the stack has 0 galaxies")
    if c != channels:
        raise ImageError(f"images must have {channels} channels (g, r, i), got {c} (shape {images.shape})")
    if h != w:
        raise ImageError(f"images must be square, got {h} x {w} pixels")
    if h % 8 or h == 0:
        raise ImageError(f"the image side must be a positive multiple of 8 (e.g. 64 or 160), got {h}")
    if not finite:
        return images
    ok = np.isfinite(images).reshape(n, -1).all(axis=1)
    if not ok.all():
        raise ImageError(
            f"images hold NaN or infinite pixels for galaxies at indices {_indices(~ok)}; "
            "drop them, or keep them in a catalog flagged 'bad_image'"
        )
    return images


def image_units(ds: xr.Dataset) -> str:
    """The pixel units of a catalog's ``image`` (one of ``IMAGE_UNITS``)."""
    if "image" not in ds:
        raise CatalogError(f"catalog has no 'image' variable (has: {', '.join(ds.data_vars)})")
    units = ds["image"].attrs.get("units")
    if units not in IMAGE_UNITS:
        raise CatalogError(f"catalog 'image' has units {units!r}; galppl understands {IMAGE_UNITS}")
    return units


def image_quality(ds: xr.Dataset) -> xr.DataArray:
    """Boolean per galaxy: is its image usable?

    False where the ``bad_image`` quality bit is set or any pixel is NaN/inf. Flags, never
    raises, so catalogs keep their bad rows.
    """
    if "image" not in ds:
        raise CatalogError(f"catalog has no 'image' variable (has: {', '.join(ds.data_vars)})")
    image = ds["image"]
    finite = np.isfinite(image.values).reshape(image.shape[0], -1).all(axis=1)
    usable = finite & ~has_flag(ds, "bad_image").values
    return xr.DataArray(usable, coords={"galaxy": ds["galaxy"]}, dims="galaxy", name="image_usable")


def image_stack(data) -> tuple[np.ndarray, np.ndarray, str, xr.Dataset | None]:
    """(images, usable mask, pixel units, catalog or None) from a catalog or an image array.

    A catalog (Dataset with ``image``) may carry bad images: ``image_quality`` marks them
    in the mask and only shape errors raise. An array or DataArray (galaxy, channel, y, x)
    must be clean (``check_images`` raises on NaN/inf pixels) and is taken to be in
    nanomaggies; its mask is all True.
    """
    if isinstance(data, xr.Dataset):
        units = image_units(data)
        images = data["image"].transpose("galaxy", "channel", "y", "x").values
        check_images(images, finite=False)  # shape errors always; bad pixels are flagged, not fatal
        return images, image_quality(data).values, units, data
    if isinstance(data, xr.DataArray):
        data = data.values
    images = check_images(data)
    return images, np.ones(images.shape[0], dtype=bool), "nanomaggy", None

class ImageScaler:
    """Arcsinh stretch then per-channel standardisation of image stacks.

    ``x -> (arcsinh(x / softening_c) - mean_c) / std_c`` for channel c. The arcsinh
    stretch (Lupton, Gunn & Szalay 1999) is linear below the sky noise and logarithmic
    for bright cores, so faint outskirts and bright bulges both reach the network. The
    softening defaults to the sky noise of each channel, estimated robustly (1.4826 x the
    median absolute deviation) from the outer ``border`` pixels of the training stamps.

    Images in "relative" units (JPEG colour composites) were already stretched for
    display (Lupton et al. 2004), so by default (``stretch="auto"``) they are only
    standardised. The scaler records the units it was fitted on; transforming images in
    other units raises ``ImageError``.
    """

    def __init__(self, softening=None, stretch: str = "auto", border: int = 4):
        if stretch not in ("auto", "arcsinh", "none"):
            raise ValueError(f"stretch must be 'auto', 'arcsinh' or 'none', got {stretch!r}")
        if not isinstance(border, int) or border < 1:
            raise ValueError(f"border must be an integer >= 1 (pixels), got {border!r}")
        if softening is not None:
            softening = np.broadcast_to(np.asarray(softening, dtype=float), (len(CHANNELS),)).copy()
        self.softening = softening
        if softening is not None and not (np.isfinite(softening).all() and (softening > 0).all()):
            raise ValueError(f"softening must be positive and finite per channel, got {softening.tolist()}")
        self.stretch = stretch
        self.border = border
        self.units: str | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.ranges: ImageRanges | None = None  # the training stamps' statistics (None: saved before them)

    # -- fitting -----------------------------------------------------------------------
    def _uses_arcsinh(self, units: str) -> bool:
        return self.stretch == "arcsinh" or (self.stretch == "auto" and units == "nanomaggy")

    def fit(self, images, units: str = "nanomaggy") -> ImageScaler:
        """Learn softening (if not given), mean and std per channel from ``images``."""
        if units not in IMAGE_UNITS:
            raise ValueError(f"units must be one of {IMAGE_UNITS}, got {units!r}")
        images = check_images(images)
        self.units = units
        self.ranges = ImageRanges.fit(images, units, self.border)
        if self._uses_arcsinh(units) and self.softening is None:
            # Up to _NOISE_SAMPLE evenly spaced stamps pin the sky noise down well enough.
            step = max(1, images.shape[0] // _NOISE_SAMPLE)
            self.softening = self._sky_noise(images[::step].astype(np.float64))
        if not self._uses_arcsinh(units):
            self.softening = None
        # Accumulate in float64 chunks so that large catalogs never need a float64 copy;
        # sums of (x - shift), shift ~ the mean, avoid cancellation in E[x^2] - E[x]^2.
        shift = self._stretch(images[:1].astype(np.float64)).mean(axis=(0, 2, 3))[None, :, None, None]
        total = np.zeros(images.shape[1])
        total_sq = np.zeros(images.shape[1])
        for start in range(0, images.shape[0], _CHUNK):
            centred = self._stretch(images[start : start + _CHUNK].astype(np.float64)) - shift
            total += centred.sum(axis=(0, 2, 3))
            total_sq += (centred**2).sum(axis=(0, 2, 3))
        count = images.shape[0] * images.shape[2] * images.shape[3]
        self.mean = shift.ravel() + total / count
        self.std = np.sqrt(np.maximum(total_sq / count - (total / count) ** 2, 0.0))
        # Rounding leaves a constant channel with a tiny non-zero std, not exactly 0.
        constant = ~(self.std > 1e-6 * np.maximum(1.0, np.abs(self.mean)))
        if constant.any():
            flat = np.flatnonzero(constant).tolist()
            raise ImageError(f"channel(s) {flat} are constant over the training images; cannot standardise")
        return self

    def _sky_noise(self, images: np.ndarray) -> np.ndarray:
        edge = border_pixels(images, self.border)
        edge = np.moveaxis(edge, 1, 0).reshape(images.shape[1], -1)
        noise = 1.4826 * np.median(np.abs(edge - np.median(edge, axis=1, keepdims=True)), axis=1)
        # Noise-free stamps (e.g. idealised mocks) have zero MAD: fall back to the spread.
        fallback = edge.std(axis=1)
        noise = np.where(noise > 0, noise, fallback)
        if not (noise > 0).all():
            raise ImageError(
                "cannot estimate the sky noise: the stamp borders are constant in some channel; "
                "pass ImageScaler(softening=...) in the images' units"
            )
        return noise

    # -- transforms --------------------------------------------------------------------
    def _stretch(self, images: np.ndarray) -> np.ndarray:
        if self.softening is None:
            return images
        return np.arcsinh(images / self.softening[None, :, None, None])

    def _check_fitted(self, units: str | None) -> None:
        if self.mean is None:
            raise RuntimeError("ImageScaler is not fitted; call fit(images) first")
        if units is not None and units != self.units:
            raise ImageError(
                f"this scaler was fitted on images in {self.units!r} units and cannot transform "
                f"images in {units!r} units; fit a scaler (and model) on {units!r} images"
            )

    def transform(self, images, units: str | None = None) -> np.ndarray:
        """Stretched, standardised images as float32; ``units`` (if given) must match the fit."""
        self._check_fitted(units)
        images = check_images(images)
        out = np.empty(images.shape, dtype=np.float32)
        mean, std = self.mean[None, :, None, None], self.std[None, :, None, None]
        for start in range(0, images.shape[0], _CHUNK):
            chunk = images[start : start + _CHUNK].astype(np.float64)
            out[start : start + _CHUNK] = (self._stretch(chunk) - mean) / std
        return out

    def unlike_training(self, images) -> np.ndarray:
        """Boolean per stamp of ``images`` (finite pixels, the fitted units): its pixel
        statistics are unlike the training stamps' (see :class:`~galppl.data.image_checks.ImageRanges`);
        all False for a scaler saved before they were recorded."""
        self._check_fitted(None)
        images = check_images(images)
        if self.ranges is None:
            return np.zeros(images.shape[0], dtype=bool)
        return self.ranges.unlike_training(images)

    def inverse_transform(self, scaled) -> np.ndarray:
        """Back to the fitted pixel units (float32): the inverse of :meth:`transform`."""
        self._check_fitted(None)
        scaled = np.asarray(scaled, dtype=np.float64)
        stretched = scaled * self.std[None, :, None, None] + self.mean[None, :, None, None]
        if self.softening is not None:
            stretched = np.sinh(stretched) * self.softening[None, :, None, None]
        return stretched.astype(np.float32)

    # -- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-able statistics (softening in the fitted pixel units)."""
        self._check_fitted(None)
        return {
            "units": self.units,
            "stretch": self.stretch,
            "border": self.border,
            "softening": None if self.softening is None else self.softening.tolist(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "ranges": None if self.ranges is None else self.ranges.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ImageScaler:
        """Inverse of :meth:`to_dict`."""
        scaler = cls(softening=data["softening"], stretch=data["stretch"], border=data["border"])
        scaler.units = data["units"]
        scaler.mean = np.asarray(data["mean"], dtype=np.float64)
        scaler.std = np.asarray(data["std"], dtype=np.float64)
        scaler.ranges = None if data.get("ranges") is None else ImageRanges.from_dict(data["ranges"])
        return scaler


def photometry_features(ds: xr.Dataset) -> xr.DataArray:
    """Colours and magnitudes per galaxy, corrected for Milky Way extinction (AB mag).

    Returns a DataArray (galaxy, feature) with features ``u_g, g_r, r_i, i_z`` (colours of
    the corrected magnitudes) and ``mag_u ... mag_z`` (corrected magnitudes), where the
    corrected magnitude is ``mag - extinction``. Without an ``extinction`` variable the
    magnitudes are used as they are and ``attrs["extinction_corrected"]`` is False.
    Missing inputs give NaN features (never filled), and so does every feature of a galaxy
    whose ``missing_mag`` quality bit is set (a loader's sentinel, or the user's own mark),
    whatever numbers its ``mag`` holds.
    """
    if "mag" not in ds:
        raise CatalogError(f"catalog has no 'mag' variable (has: {', '.join(ds.data_vars)})")
    mag = ds["mag"].transpose("galaxy", "band").sel(band=list(BANDS))
    corrected = "extinction" in ds
    if corrected:
        mag = mag - ds["extinction"].transpose("galaxy", "band").sel(band=list(BANDS))
    values = mag.values.astype(np.float64)
    values[has_flag(ds, "missing_mag").values] = np.nan
    colours = values[:, :-1] - values[:, 1:]
    features = np.concatenate([colours, values], axis=1)
    names = list(COLOURS) + [f"mag_{b}" for b in BANDS]
    return xr.DataArray(
        features,
        dims=("galaxy", "feature"),
        coords={**{k: c for k, c in ds.coords.items() if c.dims == ("galaxy",)}, "feature": names},
        name="photometry",
        attrs={
            "units": "mag",
            "description": "colours and AB magnitudes"
            + (", corrected for Milky Way extinction" if corrected else ", NOT extinction-corrected"),
            "extinction_corrected": int(corrected),
        },
    )


class Standardizer:
    """Per-feature standardisation ``(x - mean) / std`` with NaN-aware statistics.

    Works on arrays (n, features) or DataArrays (galaxy, feature); NaN stays NaN. The
    statistics ignore non-finite values (missing measurements); ``std`` is the sample
    standard deviation (ddof=1). Fitting a feature with fewer than two finite values or
    zero variance raises ``ValueError`` naming it. galppl's chain model standardises its
    features and targets with it.
    """

    def __init__(self):
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.features: list[str] | None = None

    @staticmethod
    def _values(x) -> tuple[np.ndarray, list[str] | None]:
        if isinstance(x, xr.DataArray):
            if x.ndim != 2:
                raise ValueError(f"expected a 2-d DataArray (galaxy, feature), got dims {x.dims}")
            names = [str(v) for v in x[x.dims[1]].values] if x.dims[1] in x.coords else None
            return np.asarray(x.values, dtype=np.float64), names
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"expected a 2-d array (n, features), got shape {x.shape}")
        return x, None

    def fit(self, x, names=None) -> Standardizer:
        """Learn the mean and standard deviation of every feature, ignoring non-finite values.

        ``names`` label the features in messages and :meth:`to_dict` (default: a
        DataArray's feature coordinate, else the column indices).
        """
        values, coordinate = self._values(x)
        if values.shape[0] == 0:
            raise ValueError("cannot fit a Standardizer on 0 rows")
        names = names if names is not None else coordinate
        self.features = [str(n) for n in names] if names is not None else [str(i) for i in range(values.shape[1])]
        if len(self.features) != values.shape[1]:
            raise ValueError(f"{len(self.features)} names {self.features} for {values.shape[1]} features")
        finite = np.where(np.isfinite(values), values, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # columns with < 2 finite values: reported below
            mean, std = np.nanmean(finite, axis=0), np.nanstd(finite, axis=0, ddof=1)
        # A constant column's std comes out as rounding error (1e-16 of its values), not 0: it
        # would blow rounding noise up to unit-variance "features". Count it as constant.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            largest = np.nanmax(np.abs(finite), axis=0)
        bad = ~(np.isfinite(std) & (std > 0) & (std > 1e-12 * largest))
        if bad.any():
            which = ", ".join(self.features[i] for i in np.flatnonzero(bad))
            raise ValueError(
                f"feature(s) {which} have zero variance or fewer than 2 finite values; cannot standardise"
            )
        self.mean, self.std = mean, std
        return self

    def _check(self, names, n_features: int) -> None:
        if self.mean is None:
            raise RuntimeError("Standardizer is not fitted; call fit(x) first")
        if n_features != len(self.mean):
            raise ValueError(f"expected {len(self.mean)} features {self.features}, got {n_features}")
        if names is not None and names != self.features:
            raise ValueError(f"features {names} differ from the fitted ones {self.features}")

    def _apply(self, x, fn):
        values, names = self._values(x)
        self._check(names, values.shape[1])
        out = fn(values)
        return x.copy(data=out) if isinstance(x, xr.DataArray) else out

    def transform(self, x):
        """Standardised copy of ``x`` (same type)."""
        return self._apply(x, lambda v: (v - self.mean) / self.std)

    def inverse_transform(self, x):
        """Inverse of :meth:`transform`."""
        return self._apply(x, lambda v: v * self.std + self.mean)

    def to_dict(self) -> dict:
        """JSON-able statistics."""
        self._check(None, len(self.mean) if self.mean is not None else 0)
        return {"features": self.features, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Standardizer:
        """Inverse of :meth:`to_dict`."""
        out = cls()
        out.features = list(data["features"])
        out.mean = np.asarray(data["mean"], dtype=np.float64)
        out.std = np.asarray(data["std"], dtype=np.float64)
        return out
