"""Extend the chain rule with a parameter of your own.

Run:  python tutorials/02_new_parameter.py [--quick]

A galppl model is an ordered list of conditional blocks. Here we add the H-alpha dust
attenuation A(Halpha) (the mock catalog's `a_halpha`, in mag) as a new block conditioned on
the core parameters, so that

    p(core, M_BH, detect, O/H, A_Ha | x)
        = p(core | x) p(M_BH | core, x) p(detect | x) p(O/H | core, M_BH, x) p(A_Ha | core, x),

core = (log M*, log SFR, z).

Dust rises with stellar mass and SFR (Garn & Best 2010), so conditioning on the sampled core
parameters lets A(Halpha) inherit their uncertainty and correlations.
"""

import argparse

import numpy as np

import galppl
from galppl.models import Block, props_blocks

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true", help="a small, fast version (used by the tests)")
args = parser.parse_args()

n, epochs = (1500, 5) if args.quick else (20000, 200)
catalog = galppl.simulate(n, seed=0, image_size=None)

dust = Block("dust", variables=("a_halpha",), kind="affine", parents=("core",))
blocks = props_blocks(num_couplings=4 if args.quick else 12) + (dust,)
posterior = galppl.fit(blocks, catalog, inputs="photometry", max_epochs=epochs, progress=not args.quick)
print(posterior)

test = catalog.sel(galaxy=posterior.split["test"])
idata = posterior.predict(test, num_samples=200)
draws = idata.posterior
print("A(Halpha) units:", draws["a_halpha"].attrs["units"])

# The new block is sampled through the chain rule: its draws follow the core draws.
mass = draws["log_mstar"].values[0]
dust_draws = draws["a_halpha"].values[0]
within = np.nanmean([np.corrcoef(mass[:, g], dust_draws[:, g])[0, 1] for g in range(mass.shape[1])])
print(f"mean within-galaxy correlation of log M* and A(Halpha) draws: {within:.2f}")
truth = idata.observed_data["a_halpha"].values
pred = draws["a_halpha"].mean(("chain", "draw")).values
print(f"A(Halpha) R^2 on held-out galaxies: {1 - np.mean((pred - truth) ** 2) / np.var(truth):.3f}")
