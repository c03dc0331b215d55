"""Figures of the latent-space interpretability (:mod:`galppl.diagnostics.interpret`).

- :func:`gri_to_rgb`: gri stamps -> display RGB (i red, r green, g blue) with an arcsinh stretch;
- :func:`plot_perturbation_strip`: the paper's Figure 3, decoded images along the latents a
  parameter's regression reads;
- :func:`plot_latent_embeddings`: the paper's Figure 4, 2-d embeddings coloured by M* and M_BH.

Each returns a ``matplotlib.figure.Figure`` and takes ``**kwargs`` for ``plt.subplots``.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

__all__ = ["gri_to_rgb", "plot_latent_embeddings", "plot_perturbation_strip"]

# The white point: this percentile of the stretched pixels of everything shown together,
# so that a strip's images share one brightness scale and a brighter galaxy looks brighter.
WHITE_PERCENTILE = 99.5


def gri_to_rgb(images, softening: Sequence[float] | None = None, white: float | None = None) -> np.ndarray:
    """Display RGB in 0..1 of gri images (..., channel, y, x): red = i, green = r, blue = g.

    softening: per-channel arcsinh softening in the images' units (nanomaggies: the sky noise,
        as ``FittedVAE.scaler.softening``): pixels are shown as arcsinh(flux / softening),
        linear below the noise and logarithmic in bright cores (Lupton et al. 1999). ``None``
        or empty: the images are display images already (JPEG composites) and are not stretched.
    white: the stretched value shown as white; default the 99.5th percentile of all pixels
        given, so images passed together share one scale.

    Returns an array (..., y, x, 3).
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim < 3 or images.shape[-3] != 3:
        raise ValueError(f"images must be (..., channel=3, y, x) in g, r, i order, got shape {images.shape}")
    if softening is not None and len(softening):
        soft = np.asarray(softening, dtype=np.float64).reshape(3, 1, 1)
        images = np.arcsinh(np.clip(images, 0.0, None) / soft)
    top = np.nanpercentile(images, WHITE_PERCENTILE) if white is None else float(white)
    if not top > 0:
        raise ValueError(f"the white point must be positive, got {top} (are the images all dark?)")
    return np.clip(np.moveaxis(images[..., ::-1, :, :], -3, -1) / top, 0.0, 1.0)


def plot_perturbation_strip(strip: xr.DataArray, **kwargs) -> plt.Figure:
    """Rows: the latents of a :func:`~galppl.diagnostics.interpret.perturbation_strip`;
    columns: its steps; each panel the decoded gri image as arcsinh RGB, titled by the
    regression's predicted change of the parameter."""
    n_latent, n_step = strip.sizes["latent"], strip.sizes["step"]
    kwargs.setdefault("figsize", (1.3 * n_step + 0.6, 1.45 * n_latent + 0.5))
    fig, axes = plt.subplots(n_latent, n_step, squeeze=False, **kwargs)
    rgb = gri_to_rgb(strip.transpose("latent", "step", "channel", "y", "x").values, strip.attrs.get("softening"))
    units = strip.attrs.get("parameter_units", "")
    for i, latent in enumerate(strip["latent"].values):
        for j, step in enumerate(strip["step"].values):
            ax = axes[i, j]
            ax.imshow(rgb[i, j], origin="lower", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            shift = float(strip["predicted_shift"].values[i, j])
            ax.set_title(f"{shift:+.2g} {units}".rstrip(), fontsize=7)
            if i == n_latent - 1:
                ax.set_xlabel(f"{step:+g} sd", fontsize=7)
        axes[i, 0].set_ylabel(f"latent {latent}", fontsize=8)
    fig.suptitle(f"{strip.attrs.get('parameter', '')}: decoded along its top latents "
                 f"(base: {strip.attrs.get('base', '')})", fontsize=9)
    fig.tight_layout()
    return fig


def plot_latent_embeddings(embeddings: xr.Dataset, **kwargs) -> plt.Figure:
    """Rows: the embedding inputs (latents; latents + photometry) of
    :func:`~galppl.diagnostics.interpret.latent_embeddings`; columns: its parameters, each
    panel coloured by the parameter (grey: galaxies without a value) and titled with the
    kNN accuracy of its high/low split."""
    inputs, parameters = embeddings["inputs"].values, embeddings["parameter"].values
    kwargs.setdefault("figsize", (3.6 * len(parameters), 3.2 * len(inputs)))
    fig, axes = plt.subplots(len(inputs), len(parameters), squeeze=False, **kwargs)
    method = embeddings.attrs.get("method", "").upper()
    for i, source in enumerate(inputs):
        xy = embeddings["embedding"].sel(inputs=source).transpose("galaxy", "component").values
        for j, name in enumerate(parameters):
            ax, values = axes[i, j], embeddings[name].values
            known = np.isfinite(values)
            ax.scatter(xy[~known, 0], xy[~known, 1], s=2, c="0.8", linewidths=0)
            points = ax.scatter(xy[known, 0], xy[known, 1], s=2, c=values[known], cmap="viridis", linewidths=0)
            fig.colorbar(points, ax=ax, label=f"{name} [{embeddings[name].attrs.get('units', '')}]")
            accuracy = float(embeddings["separation"].sel(inputs=source, parameter=name))
            ax.set_title(f"{source}: high/low {name} kNN acc. {accuracy:.2f}", fontsize=8)
            ax.set_xlabel(f"{method} 1")
            ax.set_ylabel(f"{method} 2")
    fig.tight_layout()
    return fig
