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
# # 05 A whole catalog through `predict_catalog` with Dask
#
# `GalaxyPosterior.predict` keeps every draw in memory: fine for thousands of galaxies, not for
# a survey. `galppl.predict_catalog` reads a catalog file a chunk of rows at a time, runs each
# chunk as a Dask task, and writes per-galaxy summaries (mean, sd, 2.5/16/50/84/97.5%
# quantiles, detection and BPT probabilities, quality and out-of-distribution flags) into one
# zarr store. Memory is bounded by the chunk size, and a killed run resumes where it stopped.
# `GALPPL_QUICK=1` runs a small version.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np

import galppl
from galppl.data import save_catalog

QUICK = os.environ.get("GALPPL_QUICK") == "1"
n_train, n_catalog = (3000, 4000) if QUICK else (20000, 100000)
folder = Path(tempfile.mkdtemp(prefix="galppl_catalog_"))

# A photometry-only props model (no images, so the catalog needs no cutouts).
training = galppl.simulate(n_train, seed=0, image_size=None)
posterior = galppl.fit("props", training, inputs="photometry", max_epochs=5 if QUICK else 300,
                       num_couplings=4 if QUICK else 12, progress=not QUICK)

# The "survey": another mock catalog written to disk as zarr (netCDF, FITS tables and parquet
# are read the same way).
survey = galppl.simulate(n_catalog, seed=1, image_size=None)
source = save_catalog(survey, folder / "survey.zarr")
source

# %% [markdown]
# ## Predict, chunk by chunk
# Without a `client` the chunks run on Dask's local threads; pass a
# `dask.distributed.Client` (several worker processes) to spread them over cores or machines.

# %%
out = folder / "posteriors.zarr"
summaries = galppl.predict_catalog(posterior, source, out, num_samples=200 if QUICK else 1000,
                                   chunk_size=1000, progress=not QUICK)
print(summaries)

# %% [markdown]
# ## Read the summaries
# Lazily from zarr: each continuous variable is (galaxy, summary) with summary = mean, sd and
# the quantiles q0.025 ... q0.975; select what you need before loading it.

# %%
summaries["log_mstar"].isel(galaxy=slice(0, 5)).load().to_pandas()

# %%
mass = summaries["log_mstar"].load()
truth = survey["log_mstar"].values
estimate = mass.sel(summary="mean").values
ok = np.isfinite(truth) & np.isfinite(estimate)
r2 = 1 - np.mean((estimate[ok] - truth[ok]) ** 2) / np.var(truth[ok])
inside = (mass.sel(summary="q0.16").values < truth) & (truth < mass.sel(summary="q0.84").values)
print(f"log M*: R^2 {r2:.3f}, 68% interval coverage {inside[ok].mean():.3f} over {ok.sum()} galaxies")

# %% [markdown]
# ## Resuming
# Calling again with the same model, catalog and settings computes only the chunks not yet
# done (here: none), so a killed run is restarted with the same call. Different settings on
# the same store are refused with the difference named.

# %%
again = galppl.predict_catalog(posterior, source, out, num_samples=200 if QUICK else 1000,
                               chunk_size=1000, progress=False)
assert np.array_equal(again["log_mstar"].values, summaries["log_mstar"].values, equal_nan=True)
try:
    galppl.predict_catalog(posterior, source, out, num_samples=50, chunk_size=1000, progress=False)
except ValueError as error:
    print(error)
