"""Noise augmentation with a catalog's magnitude errors (training only).

A model trained on one set of photometry learns how much its inputs can be trusted from
that set alone; real galaxies are fainter, noisier or differently calibrated, and a model
that never saw its inputs move is over-confident on them. Each training minibatch, the
magnitudes of every galaxy with errors are moved by ``scale x N(0, mag_err^2)`` per band,
independently, before the features are read: the magnitudes by the draw, the colours by the
differences of their bands' draws (the features are linear in the magnitudes, so this is
exact, and an image feature is untouched). A galaxy without an error in a band (NaN) is not
moved in that band: nothing is invented for it. The model is evaluated (validation, early
stopping, calibration, prediction) on the catalog's own inputs.

``galppl.fit(..., mag_noise=1.0)`` turns it on (:class:`galppl.config.ChainConfig`).
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from galppl.data.schema import BANDS, COLOURS


def band_to_feature_map(feature_names) -> torch.Tensor:
    """(band, feature) float32 matrix: how a change of each band's magnitude (mag) moves each
    feature (``mag_<b>``: +1 for its band; colour ``<a>_<b>``: +1 for a, -1 for b; others 0)."""
    names = list(feature_names)
    matrix = torch.zeros(len(BANDS), len(names))
    for column, name in enumerate(names):
        if name.startswith("mag_") and name[4:] in BANDS:
            matrix[BANDS.index(name[4:]), column] = 1.0
        elif name in COLOURS:
            first, second = name.split("_")
            matrix[BANDS.index(first), column] = 1.0
            matrix[BANDS.index(second), column] = -1.0
    if not matrix.any():
        raise ValueError(f"magnitude noise moves photometric features (mag_u..., u_g...), and none of "
                         f"{names[:6]}... is one: fit with inputs 'photometry' or 'image+photometry'")
    return matrix


def check_magnitude_errors(data: xr.Dataset) -> None:
    """A ValueError when the catalog has no ``mag_err`` (a real file may give none: augmenting
    with invented errors would be worse than saying so)."""
    if "mag_err" not in data:
        raise ValueError("mag_noise needs the catalog's magnitude errors ('mag_err', galaxy x band), and this "
                         "catalog has none: set mag_noise=0, or give a catalog with errors")


def magnitude_errors(data: xr.Dataset, galaxies) -> torch.Tensor:
    """The catalog's ``mag_err`` (galaxy, band) of these galaxy ids, float32, NaN -> 0 (not
    moved); a ValueError without ``mag_err`` (:func:`check_magnitude_errors`) or with a negative one."""
    check_magnitude_errors(data)
    errors = data["mag_err"].sel(galaxy=np.asarray(galaxies)).transpose("galaxy", "band").sel(band=list(BANDS)).values
    if (errors < 0).any():
        raise ValueError(f"mag_err must be >= 0 mag, got {np.nanmin(errors):g}")
    return torch.as_tensor(np.nan_to_num(errors, nan=0.0), dtype=torch.float32)


def with_magnitude_noise(loss_fn, module: torch.nn.Module, band_to_feature: torch.Tensor, scale: float):
    """``loss_fn(features, ..., mag_err=...)`` wrapped: while ``module`` is training, the
    features are moved by ``scale x N(0, mag_err^2)`` per band (mag_err (galaxy, band), mag)
    mapped through ``band_to_feature`` (:func:`band_to_feature_map`); in eval mode they are
    used as they are. Draws come from torch's global generator, which the training loop seeds."""
    if not scale > 0:
        raise ValueError(f"the magnitude noise scale must be > 0, got {scale!r}")

    def loss(features, mag_err, **batch):
        if module.training:
            features = features + (scale * mag_err * torch.randn_like(mag_err)) @ band_to_feature
        return loss_fn(features, **batch)

    return loss
