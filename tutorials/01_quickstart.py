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
# # 01 Quickstart: a joint posterior of galaxy physics
#
# Fit galppl's props model on the mock SDSS sky and look at one galaxy's joint posterior:
#
# 1. simulate a mock SDSS catalog (cached on disk after the first call);
# 2. fit the chain-rule posterior model
#    p(core | x) p(M_BH | core, x) p(detect | x) p(O/H | core, M_BH, x), core = (log M*, log SFR, z);
# 3. predict the held-out galaxies: an `arviz.InferenceData`;
# 4. inspect one galaxy with ArviZ and the whole test set with `galppl.diagnostics`.
#
# `GALPPL_QUICK=1` (as the test suite sets it) runs a small version in well under a minute.

# %%
import os
from pathlib import Path

import arviz as az
import matplotlib.pyplot as plt

import galppl
from galppl import diagnostics

QUICK = os.environ.get("GALPPL_QUICK") == "1"
out = Path("runs/tutorial_01")
out.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# Photometry-only inputs keep this fast; drop `inputs=` (and simulate with `image_size=64`) to
# read the gri images through the VAE as well.

# %%
n, epochs = (1500, 5) if QUICK else (20000, 200)
catalog = galppl.simulate(n, seed=0, image_size=None)
posterior = galppl.fit("props", catalog, inputs="photometry", max_epochs=epochs, progress=not QUICK)
posterior

# %%
test = catalog.sel(galaxy=posterior.split["test"])
idata = posterior.predict(test, num_samples=200 if QUICK else 1000)
idata

# %% [markdown]
# ## One galaxy's joint posterior
# The core parameters and O/H with their correlations (note the mass-redshift degeneracy the
# photometry leaves).

# %%
galaxy = test["galaxy"].values[0]
axes = az.plot_pair(idata, var_names=["log_mstar", "log_sfr", "z", "oh"], coords={"galaxy": [galaxy]},
                    kind="kde", marginals=True)
axes.ravel()[0].figure.savefig(out / "corner.png", dpi=80)
az.summary(idata, var_names=["log_mstar", "log_sfr", "p_oh_detected"], coords={"galaxy": [galaxy]}, kind="stats")

# %% [markdown]
# ## How good and how honest are the posteriors on the held-out set?
# R^2 of the posterior means, and the coverage of central credible intervals (calibrated:
# 68% of the truths inside the 68% intervals).

# %%
print(diagnostics.accuracy(idata, var_names=["log_mstar", "log_sfr", "z", "oh"])["r2"].to_series())
print(diagnostics.coverage(idata, var_names=["log_mstar", "log_sfr", "z"], levels=[0.68, 0.95])["coverage"].to_series())

# %% [markdown]
# ## The diagnostics report
# Accuracy, PIT, coverage, conditional calibration, TARP, SBC and detectability, as PNG figures
# and one Markdown file.

# %%
report = diagnostics.report(idata, out / "report", band_trials=100 if QUICK else 500)
print(report.read_text()[:1500])
plt.close("all")
