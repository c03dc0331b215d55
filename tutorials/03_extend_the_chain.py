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
# # 03 Extending the chain rule with parameters of your own
#
# A galppl model is an ordered list of conditional blocks. Here we add three parameters the
# mock catalog holds as hidden truth, each as a new block conditioned on the core
# (log M*, log SFR, z) and on the gas-phase metallicity O/H:
#
# - `a_halpha`: the internal dust attenuation at H-alpha (mag); dust rises with stellar mass,
#   SFR and metallicity (Garn & Best 2010);
# - `log_balmer_decrement`: log10 of the *measured* H-alpha/H-beta flux ratio, which dust
#   reddens; conditioned on the dust block too;
# - `log_ml_r`: the r-band stellar mass-to-light ratio (dex), the mock's stand-in for stellar
#   age (older populations are redder and heavier per unit light; the mock draws no age).
#
# The joint posterior becomes
#
#     p(core, M_BH, detect, O/H, dust, Balmer, M/L | x)
#         = p(core | x) p(M_BH | core, x) p(detect | x) p(O/H | core, M_BH, x)
#           p(dust | core, O/H, x) p(Balmer | core, O/H, dust, x) p(M/L | core, x),
#
# so each new parameter inherits the uncertainty and correlations of the draws it is
# conditioned on. `GALPPL_QUICK=1` runs a small version.

# %%
import os

import arviz as az
import matplotlib.pyplot as plt
import numpy as np

import galppl
from galppl import diagnostics
from galppl.models import Block, props_blocks

QUICK = os.environ.get("GALPPL_QUICK") == "1"
n, epochs = (1500, 5) if QUICK else (20000, 200)
catalog = galppl.simulate(n, seed=0, image_size=None)

# %% [markdown]
# The measured Balmer decrement is not a catalog variable yet: derive it from the measured line
# fluxes, NaN where either flux is not positive (noise). A NaN target is masked out of its
# block's likelihood for that galaxy, never filled.

# %%
halpha, hbeta = catalog["flux_halpha"], catalog["flux_hbeta"]
catalog["log_balmer_decrement"] = np.log10((halpha / hbeta).where((halpha > 0) & (hbeta > 0)))
catalog["log_balmer_decrement"].attrs = {"units": "dex", "description": "log10 measured H-alpha / H-beta flux ratio"}
print(f"Balmer decrement defined for {float(catalog['log_balmer_decrement'].notnull().mean()):.0%} of galaxies")

# %%
new_blocks = (
    Block("dust", ("a_halpha",), "affine", parents=("core", "oh")),
    Block("balmer", ("log_balmer_decrement",), "affine", parents=("core", "oh", "dust")),
    Block("mass_to_light", ("log_ml_r",), "affine", parents=("core",)),
)
blocks = props_blocks(num_couplings=4 if QUICK else 12) + new_blocks
posterior = galppl.fit(blocks, catalog, inputs="photometry", max_epochs=epochs, progress=not QUICK)
posterior

# %%
test = catalog.sel(galaxy=posterior.split["test"])
idata = posterior.predict(test, num_samples=200 if QUICK else 1000)
new = ["a_halpha", "log_balmer_decrement", "log_ml_r"]
print(diagnostics.accuracy(idata, var_names=new)[["r2", "rmse"]].to_dataframe())

# %% [markdown]
# ## Calibration of the new blocks
# PIT = P(draw <= truth): uniform when calibrated (mean 0.5, std 0.289); coverage of central
# credible intervals against nominal.

# %%
pit = diagnostics.pit(idata, var_names=new)
print(diagnostics.pit_uniformity(pit)[["mean", "std", "ks_pvalue"]].to_dataframe())
cov = diagnostics.coverage(idata, var_names=new, levels=[0.68, 0.95])
print(cov["coverage"].to_series())
fig = diagnostics.plot_pit_ecdf(pit, num_trials=100 if QUICK else 500)

# %% [markdown]
# ## How the joint posterior changes
# The new parameters are drawn after, and conditioned on, the draws of their parents, so within
# one galaxy their draws co-vary with the core and O/H: the Balmer decrement tracks the dust
# draw, and dust tracks star formation.

# %%
draws = idata.posterior


def within_galaxy_correlation(a, b):
    x, y = draws[a].values[0], draws[b].values[0]  # (draw, galaxy)
    return np.nanmean([np.corrcoef(x[:, g], y[:, g])[0, 1] for g in range(x.shape[1])])


for a, b in [("a_halpha", "log_balmer_decrement"), ("log_sfr", "a_halpha"), ("log_mstar", "log_ml_r")]:
    print(f"mean within-galaxy correlation of {a} and {b} draws: {within_galaxy_correlation(a, b):+.2f}")

# %%
galaxy = test["galaxy"].values[0]
axes = az.plot_pair(idata, var_names=["log_sfr", "oh", "a_halpha", "log_balmer_decrement"],
                    coords={"galaxy": [galaxy]}, kind="kde", marginals=True)
plt.close("all")
