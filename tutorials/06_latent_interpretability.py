# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 What the VAE's latents know: latent-space interpretability
#
# The paper's section "Latent Space Interpretability" (its Figures 3 and 4), with
# `galppl.diagnostics`:
#
# 1. a linear regression from the 32 latent means to each physical parameter: how much of
#    each parameter the image encoding holds linearly, and which latents carry it;
# 2. perturbational decoding: move the three latents with the largest standardised
#    coefficients for redshift and for SFR, hold the rest, and decode: what those
#    directions look like as images;
# 3. 2-d UMAP embeddings of the latents alone and of latents + photometry, coloured by
#    stellar and black-hole mass, with a number for how much the photometry separates high
#    from low mass (kNN accuracy of the median split in the embedding).
#
# The VAE is fitted on 70% of the galaxies; everything below is measured on the other 30%,
# which it never saw. `GALPPL_QUICK=1` runs a small version (32 px, a few epochs, PCA instead
# of UMAP); the full one (5,000 galaxies, 64 px, a VAE fit of about four minutes on two CPU
# cores) prints the numbers in the README, and with `GALPPL_FIGURES=docs/figures` writes its
# figures there.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import galppl
from galppl import diagnostics

QUICK = os.environ.get("GALPPL_QUICK") == "1"
figures = Path(os.environ.get("GALPPL_FIGURES", "runs/tutorial_06"))
figures.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(min(2, os.cpu_count() or 1))
n, size = (1200, 32) if QUICK else (5000, 64)
catalog = galppl.simulate(n, seed=0, image_size=size)
order = np.random.default_rng(0).permutation(n)
fit_ids = np.sort(catalog["galaxy"].values[order[: int(0.7 * n)]])
held_out = np.sort(catalog["galaxy"].values[order[int(0.7 * n):]])
vae = galppl.fit_vae(catalog.sel(galaxy=fit_ids), max_epochs=3 if QUICK else 40, max_seconds=None if QUICK else 240,
                     progress=not QUICK)
vae

# %%
test = catalog.sel(galaxy=held_out)
encoding = vae.encode(test)
regression = diagnostics.latent_regression(encoding, test)
print(regression[["r2", "r2_in_sample", "count"]].to_dataframe().to_string())
print(regression["top_latent"].to_pandas())

# %% [markdown]
# `r2` is the cross-validated R^2 of a *linear* map from the latents to the parameter (held-out
# folds); the chain's nonlinear representation plus photometry does much better (tutorial 01).
# `standardized_coefficient` is the change of the parameter, in its standard deviations, per
# standard deviation of a latent:

# %%
fig, ax = plt.subplots(figsize=(9, 2.6))
image = ax.imshow(regression["standardized_coefficient"].values, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
ax.set_yticks(range(regression.sizes["parameter"]), regression["parameter"].values)
ax.set_xlabel("latent")
fig.colorbar(image, ax=ax, label="standardised coefficient")
fig.tight_layout()

# %% [markdown]
# ## Perturbational decoding (the paper's Figure 3)
# Each row moves one of the three latents with the largest |standardised coefficient|, from
# -2.5 to +2.5 of its standard deviations over the galaxies, in the direction in which the
# regression predicts the parameter to rise (titles: the predicted change); the other 31
# latents stay at those of a typical held-out galaxy (the one nearest the mean latent).

# %%
latents = encoding["latent_mean"]
typical = latents.isel(galaxy=int(np.nanargmin(((latents - regression["latent_center"]) ** 2).sum("latent").values)))
for parameter, name in (("z", "z"), ("log_sfr", "sfr")):
    strip = diagnostics.perturbation_strip(vae, regression, parameter, base=typical)
    fig = diagnostics.plot_perturbation_strip(strip)
    fig.savefig(figures / f"interpret_strip_{name}.png", dpi=90)

# %% [markdown]
# ## Embeddings coloured by stellar and black-hole mass (the paper's Figure 4)

# %%
embeddings = diagnostics.latent_embeddings(encoding, test, method="pca" if QUICK else "auto")
print(f"embedding: {embeddings.attrs['method']}")
print(embeddings["separation"].to_pandas().round(3))
gain = embeddings["separation"].sel(inputs="latents+photometry") - embeddings["separation"].sel(inputs="latents")
print("kNN accuracy gained by adding the photometry:", gain.to_series().round(3).to_dict())
fig = diagnostics.plot_latent_embeddings(embeddings)
fig.savefig(figures / "interpret_embeddings.png", dpi=90)
plt.close("all")
