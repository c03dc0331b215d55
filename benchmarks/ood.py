"""The out-of-distribution flag of a mock-trained photometry model, on the mock and on real SDSS.

    python benchmarks/ood.py [--quick] [--n 20000] [--max-epochs 30] [--seed 0]

Fits a photometry-only props model on the embedded mock sky (``--quick``: 20,000 galaxies,
2 epochs, about a minute on one CPU core: the chain is barely trained, but the input density
and its threshold, set on 3,000 validation galaxies, are those of a full fit) and prints, for its input density
(:mod:`galppl.ood`, threshold at the 0.99 quantile of the validation galaxies' scores):

- the share of mock test galaxies flagged (goal: at most 2%);
- the ROC AUC of ``ood_score`` for telling test galaxies with one band shifted by 2-5 mag
  (a random band, a random shift, either sign) from the same galaxies unshifted, and the
  share of shifted galaxies flagged; the same for shifts of 0.5-1 mag;
- on the real SDSS DR9 file ``dr9_galaxyzoo_5k.csv`` (skipped, saying so, where
  ``../shared/data/sdss`` is absent): the share flagged by ``predict`` and whether the four
  galaxies with one glitched magnitude (CSV rows 4233, 1391, 1504, 1600) are.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

import galppl
from galppl.data import load_galaxyzoo, simulate
from galppl.data.paths import sdss_data_dir
from galppl.ood import OutOfDistributionWarning

GLITCHED_DR9_ROWS = [4233, 1391, 1504, 1600]


def shift_one_band(catalog, low: float, high: float, seed: int):
    """A copy of ``catalog`` with one random band per galaxy shifted by U(low, high) mag, random sign."""
    rng = np.random.default_rng(seed)
    shifted = catalog.copy(deep=True)
    n = catalog.sizes["galaxy"]
    shift = rng.uniform(low, high, n) * rng.choice([-1, 1], n)
    shifted["mag"].values[np.arange(n), rng.integers(0, 5, n)] += shift
    return shifted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 galaxies, 2 epochs")
    parser.add_argument("--n", type=int, default=20000, help="mock galaxies (default 20000)")
    parser.add_argument("--max-epochs", type=int, default=30, help="chain training epochs (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n, max_epochs = (20000, 2) if args.quick else (args.n, args.max_epochs)
    torch.set_num_threads(1)
    start = time.perf_counter()

    sky = simulate(n, seed=args.seed, image_size=None, progress=False)
    posterior = galppl.fit("props", sky, inputs="photometry", max_epochs=max_epochs, seed=args.seed, progress=False)
    density = posterior.featurizer.ood
    print(f"photometry props model on {n} mock galaxies, {max_epochs} epochs: {density!r} "
          f"({time.perf_counter() - start:.0f} s)")

    test = sky.sel(galaxy=posterior.split["test"])
    clean = posterior.featurizer.ood_scores(posterior.features(test))
    print(f"mock test galaxies flagged: {clean['out_of_distribution'].mean().item():.2%} of {test.sizes['galaxy']} "
          f"(goal <= 2%; validation quantile {density.quantile})")
    for low, high in ((2.0, 5.0), (0.5, 1.0)):
        shifted = posterior.featurizer.ood_scores(posterior.features(shift_one_band(test, low, high, args.seed)))
        labels = np.r_[np.zeros(clean.sizes["galaxy"]), np.ones(shifted.sizes["galaxy"])]
        auc = roc_auc_score(labels, np.r_[clean["ood_score"].values, shifted["ood_score"].values])
        print(f"one band shifted by {low:g}-{high:g} mag: ROC AUC {auc:.4f}, "
              f"flagged {shifted['out_of_distribution'].mean().item():.2%}")

    folder = sdss_data_dir()
    if folder is None:
        print("DR9 file: skipped, ../shared/data/sdss is absent (set GALPPL_SDSS_DATA to point at it)")
    else:
        real = load_galaxyzoo(folder / "dr9_galaxyzoo_5k.csv")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OutOfDistributionWarning)
            idata = posterior.predict(real, num_samples=100, seed=args.seed)
        cd = idata.constant_data
        usable = cd["usable"].values
        outside = cd["out_of_distribution"]
        print(f"DR9 file: {int(outside.sum())} of {int(usable.sum())} galaxies with complete photometry flagged "
              f"({outside.values[usable].mean():.2%}); predict warned: {bool(caught)}")
        for row in GLITCHED_DR9_ROWS:
            mags = ", ".join(f"{m:.2f}" for m in real["mag"].sel(galaxy=row).values)
            print(f"  row {row} (u..z {mags}): flagged {bool(outside.sel(galaxy=row))}, "
                  f"ood_score {cd['ood_score'].sel(galaxy=row).item():.0f} (threshold {density.threshold:.1f})")
        median = idata.posterior["log_mstar"].median(("chain", "draw"))
        truth = real["log_mstar"]
        for name, keep in (("all", usable), ("unflagged", usable & ~outside.values)):
            ok = keep & np.isfinite(truth.values)
            r2 = 1 - np.mean((median.values[ok] - truth.values[ok]) ** 2) / np.var(truth.values[ok])
            print(f"  log M* posterior median R^2 over {name} galaxies: {r2:.3f} ({ok.sum()} galaxies)")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
