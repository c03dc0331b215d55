"""Are these images like the ones an image model was trained on? Per-galaxy pixel statistics.

A model trained on sky-subtracted stamps in nanomaggies turns any stamp into a confident
latent code: all zeros, a negated stamp, pure noise, 1e30 or a display-stretched 0..1 stamp
labelled as nanomaggies included. :class:`ImageRanges` records, at fit time, the range of a
few robust statistics of each training stamp (per channel, in the pixel units the
``ImageScaler`` sees) and flags the stamps whose statistics fall outside it.

numpy only: no Pyro, no torch, no xarray.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["IMAGE_STATISTICS", "RANGE_MARGIN", "ImageRanges", "border_pixels", "image_statistics"]

# Per channel, in the stamp's pixel units p:
# - log_sky_noise: log10 of 1.4826 x the median absolute deviation of the border pixels (log10 p);
# - sky_offset: median of the border pixels over that noise (sky-subtracted stamps: near 0);
# - log_centre_significance: log10 of the central square's mean above the sky, in units of the
#   noise of that mean (NaN, so flagged, where the centre is not above the sky);
# - log_peak: log10 of the brightest pixel above the sky (log10 p);
# - log_concentration: log10 of the peak over the stamp's mean, both above the sky.
IMAGE_STATISTICS = ("log_sky_noise", "sky_offset", "log_centre_significance", "log_peak", "log_concentration")
# A statistic is out of range beyond the training 0.001 and 0.999 quantiles by more than this
# share of their spread: no mock test galaxy of the tests crosses it, every corrupted stamp does.
RANGE_MARGIN = 0.5
RANGE_QUANTILES = (0.001, 0.999)
_CHUNK = 1024  # stamps at a time (bounds the float64 temporaries)


def image_statistics(images: np.ndarray, border: int = 4) -> np.ndarray:
    """(galaxy, statistic, channel) float64: :data:`IMAGE_STATISTICS` of each stamp of
    ``images`` (galaxy, channel, y, x), from its outer ``border`` pixels (the sky) and its
    central square of side/4 pixels. NaN or -inf where a stamp has no noise or no signal."""
    return np.concatenate([_statistics(images[s:s + _CHUNK].astype(np.float64), border)
                           for s in range(0, images.shape[0], _CHUNK)])


def border_pixels(images: np.ndarray, border: int) -> np.ndarray:
    """(galaxy, channel, pixel): the outer ``border`` pixels of each stamp (at most a quarter
    of its side), where the sky is."""
    n, c, h, _ = images.shape
    b = min(border, h // 4)
    return np.concatenate([images[:, :, :b, :].reshape(n, c, -1), images[:, :, -b:, :].reshape(n, c, -1),
                           images[:, :, b:-b, :b].reshape(n, c, -1), images[:, :, b:-b, -b:].reshape(n, c, -1)],
                          axis=2)


def _statistics(images: np.ndarray, border: int) -> np.ndarray:
    n, c, h, w = images.shape
    edge = border_pixels(images, border)
    sky = np.median(edge, axis=2)
    noise = 1.4826 * np.median(np.abs(edge - sky[..., None]), axis=2)
    k = max(1, h // 8)
    centre = images[:, :, h // 2 - k:h // 2 + k, w // 2 - k:w // 2 + k].mean(axis=(2, 3))
    peak = images.reshape(n, c, -1).max(axis=2) - sky
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        stats = [np.log10(noise), sky / noise, np.log10((centre - sky) / noise * 2 * k),
                 np.log10(peak), np.log10(peak / (images.mean(axis=(2, 3)) - sky))]
    return np.stack(stats, axis=1)


def _unit_stretched(images: np.ndarray) -> np.ndarray:
    """Boolean per stamp: every pixel in [0, 1] and every channel's brightest pixel exactly 1,
    a display stretch; sky-subtracted flux always has pixels below 0 (its noise)."""
    flat = images.reshape(*images.shape[:2], -1)
    return (flat.min(axis=(1, 2)) >= 0) & (flat.max(axis=2) == 1).all(axis=1)


class ImageRanges:
    """The range of :data:`IMAGE_STATISTICS` (per channel) over an image model's training stamps.

    low, high: (statistic, channel) bounds in the statistics' units; units: the stamps' pixel
    units ("nanomaggy" stamps are also checked for a 0..1 display stretch); border: the sky
    border (pixels).
    """

    def __init__(self, low, high, units: str, border: int = 4):
        self.low = np.asarray(low, dtype=np.float64).reshape(len(IMAGE_STATISTICS), -1)
        self.high = np.asarray(high, dtype=np.float64).reshape(len(IMAGE_STATISTICS), -1)
        self.units, self.border = units, int(border)

    @classmethod
    def fit(cls, images: np.ndarray, units: str, border: int = 4) -> ImageRanges:
        """Bounds from training ``images`` (galaxy, channel, y, x; finite pixels): their
        statistics' 0.001-0.999 quantile range widened by :data:`RANGE_MARGIN` of its spread.
        A statistic undefined for every training stamp (noise-free mocks) is not checked."""
        stats = image_statistics(images, border)
        stats[~np.isfinite(stats)] = np.nan
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN statistic: unchecked
            low, high = np.nanquantile(stats, RANGE_QUANTILES, axis=0)
        spread = high - low
        low, high = low - RANGE_MARGIN * spread, high + RANGE_MARGIN * spread
        unchecked = ~(np.isfinite(low) & np.isfinite(high))
        return cls(np.where(unchecked, -np.inf, low), np.where(unchecked, np.inf, high), units, border)

    def unlike_training(self, images: np.ndarray) -> np.ndarray:
        """Boolean per stamp of ``images`` (galaxy, channel, y, x; finite pixels, the fitted
        units): some statistic lies outside the training range (or is undefined: no noise,
        no signal), or a "nanomaggy" stamp holds display-stretched 0..1 values."""
        stats = image_statistics(images, self.border)
        inside = (stats >= self.low) & (stats <= self.high)  # NaN compares False: flagged
        unlike = ~inside.all(axis=(1, 2))
        if self.units == "nanomaggy":
            unlike |= _unit_stretched(images)
        return unlike

    def to_dict(self) -> dict:
        """JSON-able bounds (infinite bounds, unchecked statistics, as None)."""
        def jsonable(a):
            return [[float(v) if np.isfinite(v) else None for v in row] for row in a]
        return {"statistics": list(IMAGE_STATISTICS), "low": jsonable(self.low), "high": jsonable(self.high),
                "units": self.units, "border": self.border}

    @classmethod
    def from_dict(cls, data: dict) -> ImageRanges:
        """Inverse of :meth:`to_dict`."""
        if list(data["statistics"]) != list(IMAGE_STATISTICS):
            raise ValueError(f"image ranges record statistics {data['statistics']}, this galppl computes "
                             f"{list(IMAGE_STATISTICS)}")
        def array(rows, fill):
            return np.array([[fill if v is None else v for v in row] for row in rows], dtype=np.float64)
        return cls(array(data["low"], -np.inf), array(data["high"], np.inf), data["units"], data["border"])
