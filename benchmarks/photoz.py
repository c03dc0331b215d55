"""Photometry-only redshift (and stellar mass) on real SDSS: galppl against gradient boosting.

    python benchmarks/photoz.py [--max-seconds 45] [--draws 400] [--seed 0]

On the real DR9 file ``dr9_galaxyzoo_5k.csv`` (skipped, saying so, where ``../shared/data/sdss``
is absent; ``GALPPL_SDSS_DATA`` points elsewhere), split 70/30 (seeded; galppl keeps 10% of
the galaxies of the 70% for early stopping and calibration), inputs the colours and
magnitudes galppl reads (the file has no extinctions or magnitude errors), fits:

- galppl, a one-block chain for z (1-d spline flow), with the standard-Normal base and with
  the Student-t base (``flow_options={"base": "student_t"}``, learned degrees of freedom);
- galppl, a two-variable chain for (log M*, z) (RealNVP, the props chain's core as far as
  this file has targets), with both bases;
- histogram gradient boosting (scikit-learn defaults) on the same inputs, trained on the
  same 70%, and quantile gradient boosting at 2.5/16/84/97.5% for its intervals.

Prints, on the 30% test galaxies: R^2 of z and log M* (posterior medians), the photo-z
statistics of :func:`galppl.diagnostics.photoz.photoz_metrics` (NMAD of dz/(1+z), outlier fractions
above 0.05 and 0.15, bias) and the coverage of the central 68% and 95% intervals. Each
galppl fit is capped at ``--max-seconds``; about 5 minutes in all on one CPU core.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from _scoring import MSTAR_Z_CHAIN, boosting_intervals, draw_intervals, fitting_ids, interval_scores, real_catalog

import galppl
from galppl.config import FitConfig
from galppl.features import build_features
from galppl.fit import split_galaxies
from galppl.models.chain import Block
from galppl.ood import OutOfDistributionWarning


def models(base: str) -> dict[str, list[Block]]:
    options = {} if base == "normal" else {"base": base}
    core = MSTAR_Z_CHAIN[0]
    return {
        "z": [Block("z", ("z",), "spline", flow_options=options)],
        "M*, z": [Block(core.name, core.variables, core.kind, flow_options={**core.flow_options, **options})],
    }


def galppl_scores(data, blocks, split, args) -> tuple[dict, float, str]:
    """Scores of a galppl chain fitted on the split's train and val galaxies; seconds; its learned df."""
    start = time.perf_counter()
    posterior = galppl.fit(blocks, data, inputs="photometry", fractions=(0.6, 0.1, 0.3), split_seed=args.seed,
                           seed=args.seed, max_seconds=args.max_seconds, progress=False)
    assert np.array_equal(posterior.split["test"], split["test"]), "galppl and the baseline must share the test set"
    test = data.sel(galaxy=split["test"])
    variables = [v for b in blocks for v in b.variables]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDistributionWarning)
        draws = posterior.sample(test, num_samples=args.draws, seed=args.seed)
    truth = {v: test[v].values for v in variables}
    extra = ""
    for block in blocks:
        base = posterior.chain.flows[block.name].base
        if hasattr(base, "df"):
            extra = f" (learned df {np.round(base.df.detach().numpy(), 1).tolist()})"
    return interval_scores(truth, *draw_intervals(draws, variables)), time.perf_counter() - start, extra


def boosting_scores(data, split, variables, seed) -> dict:
    """Scores of gradient boosting (median: squared loss; intervals: quantile loss) on galppl's inputs."""
    features = build_features(data, "photometry")
    train_ids = fitting_ids(split)
    x_train, x_test = features.sel(galaxy=train_ids).values, features.sel(galaxy=split["test"]).values
    median, lower, upper = {}, {}, {}
    for v in variables:
        median[v], lower[v], upper[v] = boosting_intervals(x_train, data[v].sel(galaxy=train_ids).values, x_test, seed)
    return interval_scores({v: data[v].sel(galaxy=split["test"]).values for v in variables}, median, lower, upper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-seconds", type=float, default=45.0, help="time cap of each galppl fit")
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = real_catalog()
    if data is None:
        print("skipped: the real SDSS extracts (../shared/data/sdss or $GALPPL_SDSS_DATA) are absent")
        return
    split = split_galaxies(data, FitConfig().with_options(inputs="photometry", fractions=(0.6, 0.1, 0.3),
                                                          split_seed=args.seed, seed=args.seed))
    rows = {}
    for base in ("normal", "student_t"):
        for name, blocks in models(base).items():
            result, seconds, extra = galppl_scores(data, blocks, split, args)
            rows[f"galppl {name}, {base} base"] = result
            print(f"fitted galppl {name}, {base} base in {seconds:.0f} s{extra}")
    rows["gradient boosting"] = boosting_scores(data, split, ["log_mstar", "z"], args.seed)
    columns = ["R2 z", "R2 log_mstar", "NMAD", "out>0.05", "out>0.15", "bias", "cov68 z", "cov95 z",
               "cov68 log_mstar", "cov95 log_mstar"]
    print(f"\nDR9 test galaxies: {len(split['test'])} (70/30 split, seed {args.seed})")
    print(f"{'model':34s}" + "".join(f"{c:>16s}" for c in columns))
    for name, row in rows.items():
        print(f"{name:34s}" + "".join(f"{row[c]:16.4f}" if c in row else f"{'-':>16s}" for c in columns))


if __name__ == "__main__":
    main()
