"""Quickstart: fit the props model on the mock sky and look at one galaxy's joint posterior.

Run:  python tutorials/01_quickstart.py [--quick]

1. simulate a mock SDSS catalog (cached on disk after the first call);
2. fit the chain-rule posterior model
   p(core | x) p(M_BH | core, x) p(detect | x) p(O/H | core, M_BH, x), core = (log M*, log SFR, z);
3. predict the held-out galaxies: an arviz.InferenceData;
4. inspect it with ArviZ and galppl.diagnostics.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import arviz as az  # noqa: E402

import galppl  # noqa: E402
from galppl import diagnostics  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true", help="a small, fast version (used by the tests)")
parser.add_argument("--out", default="runs/tutorial_01")
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

# Photometry-only keeps the tutorial fast; drop `inputs=` to use the images too.
n, epochs = (1500, 5) if args.quick else (20000, 200)
catalog = galppl.simulate(n, seed=0, image_size=None)
posterior = galppl.fit("props", catalog, inputs="photometry", max_epochs=epochs, progress=not args.quick)
print(posterior)

test = catalog.sel(galaxy=posterior.split["test"])
idata = posterior.predict(test, num_samples=200 if args.quick else 1000)

# Joint posterior of one galaxy: the core parameters and O/H, with their correlations.
galaxy = test["galaxy"].values[0]
axes = az.plot_pair(idata, var_names=["log_mstar", "log_sfr", "z", "oh"], coords={"galaxy": [galaxy]},
                    kind="kde", marginals=True)
axes.ravel()[0].figure.savefig(out / "corner.png", dpi=80)
print(az.summary(idata, var_names=["log_mstar", "log_sfr", "p_oh_detected"], coords={"galaxy": [galaxy]},
                 kind="stats"))

# How good and how honest are the posteriors on the held-out set?
print(diagnostics.accuracy(idata, var_names=["log_mstar", "log_sfr", "z", "oh"])["r2"].to_series())
print(diagnostics.coverage(idata, var_names=["log_mstar", "log_sfr", "z"], levels=[0.68, 0.95])["coverage"].to_series())
