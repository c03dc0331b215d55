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
# # 04 Emission lines and BPT class probabilities
#
# The lines model is one 4-d conditional RealNVP over the H-alpha, H-beta, [N II] 6584 and
# [O III] 5007 fibre fluxes (1e-17 erg s-1 cm-2), in signed log1p space. Every posterior draw
# of the four fluxes is a point on the BPT diagram, so a galaxy's class comes as
# *probabilities* (star-forming / composite / AGN, or undefined where a drawn flux is <= 0),
# together with draws of the Balmer decrement, A(H-alpha) and the H-alpha SFR.
# `GALPPL_QUICK=1` runs a small version.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import galppl
from galppl import diagnostics

QUICK = os.environ.get("GALPPL_QUICK") == "1"
n, epochs = (1500, 5) if QUICK else (20000, 200)
catalog = galppl.simulate(n, seed=0, image_size=None)
posterior = galppl.fit("lines", catalog, inputs="photometry", max_epochs=epochs,
                       num_couplings=4 if QUICK else 12, progress=not QUICK)
test = catalog.sel(galaxy=posterior.split["test"])
idata = posterior.predict(test, num_samples=200 if QUICK else 1000)
sorted(idata.posterior.data_vars)

# %% [markdown]
# ## Class probabilities per galaxy
# One row per galaxy; the columns sum to 1.

# %%
probabilities = diagnostics.bpt_probabilities(idata.posterior)
probabilities.isel(galaxy=slice(0, 8)).to_pandas().round(3)

# %% [markdown]
# ## Are the probabilities honest?
# Against the class of the measured fluxes: the multi-class Brier score (0 is perfect) and
# the reliability of the probabilities (of the galaxies given p = 0.7, about 70% should be in
# that class).

# %%
reliability = diagnostics.bpt_reliability(idata)
print(f"Brier score {float(reliability['brier']):.3f} over {int(reliability['n'])} galaxies")
fig = diagnostics.plot_reliability(reliability)

# %% [markdown]
# ## The BPT diagram and the line fluxes
# Truth (left) beside the posterior means (right), coloured by the most probable class; then the
# posterior means of the fluxes against the measured ones.

# %%
fig = diagnostics.plot_bpt(idata)

# %%
fig = diagnostics.plot_lines_pred_vs_true(idata)
print(diagnostics.coverage(idata, var_names=["flux_halpha", "flux_hbeta", "flux_nii", "flux_oiii"],
                           levels=[0.68, 0.95])["coverage"].to_series())

# %% [markdown]
# ## Derived physics, draw by draw
# The H-alpha SFR (Kennicutt & Evans 2012, dust-corrected with the Balmer decrement) of one
# galaxy, as a posterior rather than a number.

# %%
galaxy = test["galaxy"].values[0]
one = idata.posterior.sel(galaxy=galaxy)
for name in ("balmer_decrement", "a_halpha", "log_sfr_halpha"):
    values = one[name].values.ravel()
    print(f"{name}: median {float(np.nanmedian(values)):.2f}, defined in {float((values == values).mean()):.0%} of draws")
plt.close("all")
