"""Small real label sets: what a calibration split of its own costs and buys.

    python benchmarks/small_catalogs.py [--sizes 300,1000] [--subsets 5] [--draws 400]

On the real DR9 file ``dr9_galaxyzoo_5k.csv`` (skipped, saying so, where ``../shared/data/sdss``
is absent; ``GALPPL_SDSS_DATA`` points elsewhere): 1,500 unflagged galaxies are held out
(seeded), and from the others, for each size N, ``--subsets`` random catalogs of N galaxies.
On each, a (log M*, z) chain from the photometry (the props core as far as the file labels,
as in photoz.py and table1.py) is fitted twice: with half its validation galaxies kept apart
to calibrate on (``calibration_fraction=0.5``: early stopping reads the other half) and with
none (``0``: all of them stop the training and calibrate it). The fit's own split is 80% train,
19% validation and 1% test (unused: every score is on the 1,500).

Prints, per fit and as mean +- sd over the subsets: R^2 of the posterior medians, coverage of
the central 68% and 95% intervals and the mean PIT of each variable on the 1,500; and which of
the two galppl's default (``calibration_fraction`` None, :data:`galppl.fit.HELD_OUT_CALIBRATION_MIN`)
chooses at each size. About 14 minutes for the default sizes on one thread of the slow machine
of the README's Set up, and 13 more for --sizes 300,1000,3000.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import xarray as xr
from _scoring import MSTAR_Z_CHAIN, draw_intervals, interval_scores, real_catalog

import galppl
from galppl.diagnostics.calibration import pit_values
from galppl.fit import FitConfig, split_galaxies
from galppl.ood import OutOfDistributionWarning

HELD_OUT = 1500
FRACTIONS = (0.8, 0.19, 0.01)
SETTINGS = {"split": 0.5, "none": 0.0}
VARIABLES = ("log_mstar", "z")
KEYS = ("R2 log_mstar", "R2 z", "cov68 log_mstar", "cov68 z", "cov95 log_mstar", "cov95 z", "PIT log_mstar", "PIT z")


def scores(posterior, held_out, draws: int) -> dict[str, float]:
    """R^2, 68% / 95% coverage and mean PIT of each variable on the held-out galaxies."""
    truth = {v: held_out[v].values for v in VARIABLES}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDistributionWarning)
        sample = posterior.sample(held_out, num_samples=draws, seed=0)
    out = interval_scores(truth, *draw_intervals(sample, VARIABLES))
    for v in VARIABLES:
        drawn = np.isfinite(sample[v]).all(0)
        out[f"PIT {v}"] = float(np.nanmean(pit_values(sample[v][:, drawn].T, truth[v][drawn], np.random.default_rng(0))))
    return out


def default_setting(n: int) -> str:
    """Which of :data:`SETTINGS` galppl's default split gives a catalog of n galaxies."""
    config = FitConfig().with_options(inputs="photometry", fractions=FRACTIONS)
    split = split_galaxies(xr.Dataset(coords={"galaxy": np.arange(n)}), config)
    return "split" if len(split["calibration"]) else "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="300,1000", help="catalog sizes, comma-separated")
    parser.add_argument("--subsets", type=int, default=5, help="random catalogs of each size")
    parser.add_argument("--draws", type=int, default=400)
    args = parser.parse_args()
    data = real_catalog()
    if data is None:
        print("../shared/data/sdss/dr9_galaxyzoo_5k.csv is absent (set GALPPL_SDSS_DATA): nothing to measure")
        return
    usable = np.flatnonzero((data["quality"].values == 0) & np.isfinite(data["z"].values))
    order = np.random.default_rng(99).permutation(usable)
    held_out, pool = data.isel(galaxy=order[:HELD_OUT]), order[HELD_OUT:]
    print(f"{HELD_OUT} held-out real galaxies; catalogs drawn from the other {len(pool)}")
    table = {}
    for n in (int(s) for s in args.sizes.split(",")):
        for subset in range(args.subsets):
            catalog = data.isel(galaxy=np.sort(np.random.default_rng(subset).choice(pool, n, replace=False)))
            for name, share in SETTINGS.items():
                start = time.perf_counter()
                posterior = galppl.fit(MSTAR_Z_CHAIN, catalog, inputs="photometry", fractions=FRACTIONS,
                                       split_seed=subset, seed=subset, calibration_fraction=share, progress=False)
                row = scores(posterior, held_out, args.draws)
                table.setdefault((n, name), []).append(row)
                print(f"N {n:5d} catalog {subset} {name:5s} (calibrated on {posterior.history['n_calibration']:4d}): "
                      + " ".join(f"{k} {row[k]:.3f}" for k in KEYS)
                      + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"\nmean +- sd over the catalogs, scored on the {HELD_OUT} held-out galaxies")
    print(f"{'N':>5s} {'setting':8s} " + " ".join(f"{k:>15s}" for k in KEYS))
    for (n, name), rows in table.items():
        cells = [f"{np.mean([r[k] for r in rows]):.3f} +- {np.std([r[k] for r in rows]):.3f}" for k in KEYS]
        chosen = " <- galppl's default" if default_setting(n) == name else ""
        print(f"{n:5d} {name:8s} " + " ".join(f"{c:>15s}" for c in cells) + chosen)


if __name__ == "__main__":
    main()
