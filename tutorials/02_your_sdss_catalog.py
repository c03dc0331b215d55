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
# # 02 Your own SDSS catalog and cutouts
#
# Load a real catalog and real cutouts into galppl's data model, fit a photometry-only
# posterior of stellar mass and redshift, predict held-out galaxies and compare with the
# catalog values and a k-nearest-neighbour baseline.
#
# Where the project's small real SDSS extracts are present (`galppl.data.sdss_data_dir()`,
# or the folder named by `GALPPL_SDSS_DATA`), this reads SDSS DR9 + Galaxy Zoo (5,000
# galaxies: ugriz magnitudes, spectroscopic redshifts, DR9 stellar masses) and 400 gri JPEG
# cutouts with MPA-JHU metallicities (Wu & Boada 2019). Elsewhere it writes small files in the
# same formats from the mock sky, so you can see exactly what your own files need to look like.
# `GALPPL_QUICK=1` runs a small version.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image
from sklearn.neighbors import KNeighborsRegressor

import galppl
from galppl import diagnostics
from galppl.data import load_galaxyzoo, load_jpeg_cutouts, load_sdss_table, sdss_data_dir
from galppl.data.prepare import photometry_features
from galppl.models import Block

QUICK = os.environ.get("GALPPL_QUICK") == "1"
real = sdss_data_dir()
print("real SDSS extracts:", real or "absent: writing small mock files instead")

# %% [markdown]
# ## The catalog
# Real: `load_galaxyzoo` reads the file as published (its -9999 and 0 missing-value codes become
# NaN with a quality bit). Your own CasJobs / MPA-JHU table (CSV, FITS or an astropy Table) goes
# through `load_sdss_table`, which matches columns such as `modelMag_r`, `extinction_r`, `z`,
# `lgm_tot_p50` case-insensitively; the mock stand-in below is written in that format.

# %%
files = Path("runs/tutorial_02")
files.mkdir(parents=True, exist_ok=True)
if real is not None:
    catalog = load_galaxyzoo(real / "dr9_galaxyzoo_5k.csv")
else:
    mock = galppl.simulate(1000 if QUICK else 5000, seed=0, image_size=None)
    table = {"objID": mock["galaxy"].values, "ra": mock["ra"].values, "dec": mock["dec"].values,
             "z": mock["z"].values, "lgm_tot_p50": mock["log_mstar"].values}
    for band in "ugriz":
        table[f"modelMag_{band}"] = mock["mag"].sel(band=band).values
        table[f"modelMagErr_{band}"] = mock["mag_err"].sel(band=band).values
        table[f"extinction_{band}"] = mock["extinction"].sel(band=band).values
    pd.DataFrame(table).to_csv(files / "my_catalog.csv", index=False)
    catalog = load_sdss_table(files / "my_catalog.csv")
print(catalog.attrs.get("source_file", ""), catalog.sizes["galaxy"], "galaxies;",
      int((catalog["quality"] > 0).sum()), "with a quality flag")
catalog[["mag", "z", "log_mstar", "quality"]]

# %% [markdown]
# ## Targets outside their physical support
# Every modelled variable has a physical support (`galppl.data.schema`: z in (0, 0.4), ...) that
# no posterior draw can leave, and a fit refuses training values outside it rather than clip
# them. The DR9 file holds one redshift of -1.4e-5, flagged `negative_redshift` by the loader:
# `unphysical_as_missing` sets every label outside its support missing (the galaxy still trains
# the mass; its `missing_target` bit says so) and returns which, so the choice is visible here.

# %%
from galppl.data.schema import unphysical_as_missing

catalog, changed = unphysical_as_missing(catalog)
for name, ids in changed.items():
    print(f"{name}: {len(ids)} value(s) outside its support set missing (galaxy ids {ids[:5]})")

# %% [markdown]
# ## Fit, photometry only
# The catalog has stellar mass and redshift, so the chain is one block: a conditional RealNVP
# over (log M*, z). Galaxies with a missing magnitude are carried with NaN posteriors.
# From the shell, the same fit (its minibatch sized to the catalog, 256 for these ~3,500
# training galaxies): `galppl fit dr9_galaxyzoo_5k.csv --out model --inputs photometry
# --variables z,log_mstar --unphysical-as-missing` (the last option sets the negative redshift
# missing and names it, as the cell above does).

# %%
core = Block("core", ("log_mstar", "z"), "realnvp")
posterior = galppl.fit([core], catalog, inputs="photometry", max_epochs=5 if QUICK else 200,
                       num_couplings=4 if QUICK else 12, progress=not QUICK)
test = catalog.sel(galaxy=posterior.split["test"])
idata = posterior.predict(test, num_samples=200 if QUICK else 1000)
accuracy = diagnostics.accuracy(idata, var_names=["log_mstar", "z"])
print(accuracy[["r2", "rmse", "nmad", "outlier_fraction"]].to_dataframe().to_string())
print(diagnostics.coverage(idata, var_names=["log_mstar", "z"], levels=[0.68, 0.95])["coverage"].to_series())

# %% [markdown]
# ## Real data is messy: inputs outside the training range
# A real catalog holds a few galaxies with broken photometry (a colour of -8 mag, say) that pass
# the missing-value checks. The flows extrapolate wildly there, and one such galaxy can pull R^2
# far down. The fitted featurizer records the range of every input over the training galaxies:
# flag the test galaxies with an input outside the 0.1-99.9% range and look at both sets.

# %%
ranges = posterior.featurizer.input_ranges
inputs = posterior.features(test)
inside = ((inputs >= ranges.sel(quantile=0.001)) & (inputs <= ranges.sel(quantile=0.999))).all("feature").values
print(f"{int((~inside).sum())} of {len(inside)} test galaxies have an input outside the training range")
accuracy = diagnostics.accuracy(idata.isel(galaxy=np.flatnonzero(inside)), var_names=["log_mstar", "z"])
print(accuracy[["r2", "rmse", "nmad", "outlier_fraction"]].to_dataframe().to_string())

# %% [markdown]
# ## Compare with a k-nearest-neighbour baseline on the same colours and magnitudes
# On the in-range test galaxies (galppl's R^2 from the table above).

# %%
features = photometry_features(catalog)
usable = np.isfinite(features.values).all(axis=1)
train_ids = [g for g in posterior.split["train"] if usable[catalog.indexes["galaxy"].get_loc(g)]]
test_ids = test["galaxy"].values[inside]  # the in-range test galaxies, as above
for name in ("log_mstar", "z"):
    knn = KNeighborsRegressor(10).fit(features.sel(galaxy=train_ids).values, catalog[name].sel(galaxy=train_ids).values)
    truth = catalog[name].sel(galaxy=test_ids).values
    known = np.isfinite(truth)
    predicted = knn.predict(features.sel(galaxy=test_ids).values)
    r2 = 1 - np.sum((predicted - truth)[known] ** 2) / np.sum((truth[known] - truth[known].mean()) ** 2)
    print(f"{name}: galppl R^2 {float(accuracy['r2'].sel(parameter=name)):.3f}, kNN (k=10) R^2 {r2:.3f}")
fig = diagnostics.plot_pred_vs_true(idata, ["log_mstar", "z"])

# %% [markdown]
# ## Your cutouts
# `load_jpeg_cutouts` reads a folder of `<objID>.jpg` gri composites and a `labels.csv`
# (MPA-JHU column names such as `oh_p50`); `load_fits_cutouts` reads FITS stamps in nanomaggies.
# JPEGs are display images (units "relative"), which the VAE can be fitted on
# (`galppl.fit_vae`, see tutorial 06) like the mock's nanomaggy stamps.

# %%
if real is not None:
    cutout_folder = real / "wu_boada_cutouts"
else:
    stamps = galppl.simulate(24, seed=1, image_size=64)
    cutout_folder = files / "cutouts"
    (cutout_folder / "images").mkdir(parents=True, exist_ok=True)
    rgb = diagnostics.gri_to_rgb(stamps["image"].values, softening=[0.02, 0.02, 0.03])
    for gid, picture in zip(stamps["galaxy"].values, rgb, strict=True):
        Image.fromarray((255 * picture[::-1]).astype(np.uint8)).save(cutout_folder / "images" / f"{gid}.jpg")
    pd.DataFrame({"objID": stamps["galaxy"].values, "oh_p50": stamps["oh"].fillna(-99.9).values}).to_csv(
        cutout_folder / "labels.csv", index=False)
cutouts = load_jpeg_cutouts(cutout_folder, size=64)
print(cutouts.sizes["galaxy"], "cutouts;", int(cutouts["oh_detected"].sum()), "with a measured 12+log(O/H)")
fig, axes = plt.subplots(1, 6, figsize=(9, 1.8))
for ax, gid in zip(axes, cutouts["galaxy"].values[:6], strict=True):
    ax.imshow(diagnostics.gri_to_rgb(cutouts["image"].sel(galaxy=gid).values, white=1.0), origin="upper")
    ax.set_title(f"O/H {float(cutouts['oh'].sel(galaxy=gid)):.2f}", fontsize=8)
    ax.axis("off")
plt.close("all")
