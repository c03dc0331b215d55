"""The input vector of the posterior models: VAE latents and photometry per galaxy.

The paper's representation MLP reads [latent means, latent stds (here their logarithms),
colours u-g, g-r, r-i, i-z, magnitudes]; the ``inputs`` variant chooses which parts are used.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from galppl.data.prepare import photometry_features

INPUTS = ("image+photometry", "photometry", "image")


def uses_images(inputs: str) -> bool:
    """Whether an input variant needs the VAE encoding of the images."""
    check_inputs(inputs)
    return inputs != "photometry"


def check_inputs(inputs: str) -> str:
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {INPUTS}, got {inputs!r}")
    return inputs


def build_features(ds: xr.Dataset, encoding: xr.Dataset | None, inputs: str) -> xr.DataArray:
    """Features (galaxy, feature) for an input variant.

    ``encoding`` is the VAE encoding of ``ds`` (variables ``latent_mean`` and ``latent_std``,
    dims galaxy, latent), needed unless ``inputs == "photometry"``. Features are NaN where
    an input is missing; :func:`usable` says which galaxies can be modelled.
    """
    parts = []
    if uses_images(inputs):
        if encoding is None:
            raise ValueError(f"inputs {inputs!r} need the VAE encoding of the images, got none")
        # Standard deviations enter as logarithms: they are scales, spread over decades, and
        # their logs are close to Gaussian, with no far tails for the MLP to extrapolate into.
        for name, values in (("latent_mean", encoding["latent_mean"]), ("latent_log_std", np.log(encoding["latent_std"]))):
            part = values.transpose("galaxy", "latent")
            parts.append(
                xr.DataArray(
                    part.values.astype(np.float64),
                    dims=("galaxy", "feature"),
                    coords={"galaxy": ds["galaxy"].values, "feature": [f"{name}_{i}" for i in range(part.sizes["latent"])]},
                )
            )
    if inputs != "image":
        phot = photometry_features(ds)
        parts.append(xr.DataArray(phot.values, dims=("galaxy", "feature"), coords={"galaxy": ds["galaxy"].values, "feature": phot["feature"].values}))
    features = xr.concat(parts, dim="feature")
    features.attrs = {"inputs": inputs, "description": "model inputs per galaxy"}
    return features


def usable(features: xr.DataArray) -> np.ndarray:
    """Boolean per galaxy: every feature finite (others are carried with NaN posteriors)."""
    return np.isfinite(features.values).all(axis=1)
