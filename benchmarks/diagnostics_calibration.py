"""Do the diagnostics catch mis-calibration? Numbers on synthetic posteriors of known calibration.

For each case the posterior draws of every galaxy are ``N(mu + bias * s, scale * s)`` while the
truth is a draw from ``N(mu, s)`` (galppl.diagnostics.synthetic): ``scale = 1, bias = 0`` is
calibrated, ``scale < 1`` over-confident, ``scale > 1`` under-confident. Prints, per case and
averaged over the props parameters: PIT std (0.289 when calibrated) and the smallest KS p-value,
coverage of the 68% and 95% central intervals, TARP's ATC and KS p-value (joint over
log_mstar, log_sfr, z), the smallest SBC chi-square p-value, the worst per-bin coverage offset
``max |coverage - level|`` over the quartile bins of r, z and log_mstar (`conditional_calibration`)
and how many of the issue-12 calibration goals pass (`calibration_goals`). Writes the PIT,
coverage, per-bin coverage and TARP figures of each case to ``--out``. Then how often each goal
fails on ``--null-sets`` posteriors calibrated by construction, of the main job's test-set size
(3,000 galaxies x 400 draws): the false-failure rate of each goal; and on the same sets once
their shift and temperature are re-fitted, as the fit's calibration ends, on as many galaxies as
the main job calibrates on (its calibration and VAE galaxies): the false-failure rate of a model
whose calibration was fitted on a finite set.

    .venv/bin/python benchmarks/diagnostics_calibration.py [--quick] [--out runs/benchmarks/]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import xarray as xr  # noqa: E402

import galppl.diagnostics as gd  # noqa: E402
from galppl.config import FitConfig  # noqa: E402
from galppl.diagnostics.synthetic import synthetic_idata  # noqa: E402
from galppl.fit import split_galaxies  # noqa: E402
from galppl.models.calibration import MARGINAL_DRAWS, uniform_pit_scale  # noqa: E402

CASES = [  # (name, scale, bias, faint_scale)
    ("calibrated", 1.0, 0.0, 1.0),
    ("over x0.5", 0.5, 0.0, 1.0),
    ("over x0.8", 0.8, 0.0, 1.0),
    ("under x1.25", 1.25, 0.0, 1.0),
    ("under x2", 2.0, 0.0, 1.0),
    ("biased +0.5s", 1.0, 0.5, 1.0),
    ("faint x0.5", 1.0, 0.0, 0.5),
]
JOINT = ["log_mstar", "log_sfr", "z"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 galaxies x 100 draws instead of 2000 x 400")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/diagnostics_calibration"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--null-sets", type=int, default=20, help="calibrated sets for the goals' false-failure rates")
    args = parser.parse_args()
    n_gal, n_draws = (300, 100) if args.quick else (2000, 400)
    args.out.mkdir(parents=True, exist_ok=True)

    head = (f"{'case':<13} {'PIT std':>7} {'min KS p':>9} {'PIT mean':>8} {'cov68':>6} {'cov95':>6} {'TARP ATC':>8} "
            f"{'TARP p':>8} {'min SBC p':>9} {'bin dcov':>8} {'goals':>6}")
    print(f"{n_gal} galaxies x {n_draws} draws; calibrated: PIT std 0.289, cov68 0.68, cov95 0.95, ATC 0")
    print(head)
    print("-" * len(head))
    t0 = time.perf_counter()
    for i, (name, scale, bias, faint_scale) in enumerate(CASES):
        idata = synthetic_idata(n_gal, n_draws, scale=scale, bias=bias, faint_scale=faint_scale, seed=args.seed + i)
        pit_ds = gd.pit(idata, seed=args.seed)
        uni = gd.pit_uniformity(pit_ds, seed=args.seed)
        cov = gd.coverage(idata)
        joint = gd.tarp(idata, JOINT, seed=args.seed)
        ranks = gd.sbc(idata, seed=args.seed)
        binned = gd.conditional_calibration(idata, seed=args.seed)
        goals = gd.calibration_goals(idata, seed=args.seed)
        print(
            f"{name:<13} {float(uni['std'].mean()):7.3f} {float(uni['ks_pvalue'].min()):9.2g} "
            f"{float(uni['mean'].mean()):8.3f} {float(cov['coverage'].sel(level=0.68).mean()):6.3f} "
            f"{float(cov['coverage'].sel(level=0.95).mean()):6.3f} {float(joint['atc']):+8.3f} "
            f"{float(joint['ks_pvalue']):8.2g} {float(ranks['chi2_pvalue'].min()):9.2g} "
            f"{float(abs(binned['coverage'] - binned['level']).max()):8.3f} "
            f"{int(goals['passed'].sum()):>3}/{goals.sizes['check']}"
        )
        stem = name.replace(" ", "_").replace("+", "p").replace(".", "")
        gd.plot_pit_ecdf(pit_ds, seed=args.seed).savefig(args.out / f"pit_{stem}.png", dpi=90)
        gd.plot_coverage(cov).savefig(args.out / f"coverage_{stem}.png", dpi=90)
        gd.plot_tarp(joint).savefig(args.out / f"tarp_{stem}.png", dpi=90)
        gd.plot_conditional_calibration(binned).savefig(args.out / f"conditional_{stem}.png", dpi=90)
    print(f"\n{time.perf_counter() - t0:.1f} s; figures in {args.out}")
    n_test = 300 if args.quick else 3000
    goals_on_calibrated(args.null_sets, n_test, n_draws, args.seed)
    goals_on_calibrated(args.null_sets, n_test, n_draws, args.seed, n_calibration=main_job_calibration_size())


def main_job_calibration_size() -> int:
    """How many galaxies the main job calibrates on by default: its calibration and VAE splits
    (before any is left out as out-of-distribution)."""
    config = FitConfig()
    split = split_galaxies(xr.Dataset(coords={"galaxy": np.arange(config.data.n_galaxies)}), config)
    return len(split["calibration"]) + len(split["vae"])


def goals_on_calibrated(n_sets: int, n_gal: int, n_draws: int, seed: int, n_calibration: int | None = None) -> None:
    """How often each calibration goal fails on posteriors calibrated by construction, of the
    main job's test-set size: a goal that a calibrated posterior fails cannot tell a model's
    miscalibration from chance.

    With ``n_calibration``, each set's shift and temperature are first re-fitted per parameter
    as the fit's calibration ends (:func:`galppl.models.calibration.uniform_pit_scale`: the
    most uniform PIT, its mean 1/2) on that many other galaxies of the same calibrated kind
    (:data:`~galppl.models.calibration.MARGINAL_DRAWS` draws each, as the fit draws them), so
    the sets carry the noise of a calibration fitted on a finite set; the fit's likelihood step
    (and its slopes) adds more, so this is the least of that noise."""
    failed: dict[str, list[bool]] = {}
    worst: list[float] = []
    for k in range(n_sets):
        idata = synthetic_idata(n_gal, n_draws, seed=seed + 100 + k)
        if n_calibration is not None:
            _recalibrate(idata, synthetic_idata(n_calibration, MARGINAL_DRAWS, seed=seed + 500 + k))
        goals = gd.calibration_goals(idata, seed=seed)
        for goal in dict.fromkeys(goals["goal"].values):
            failed.setdefault(str(goal), []).extend((~goals["passed"].values[goals["goal"].values == goal]).tolist())
        worst.extend(goals["statistic"].values[goals["goal"].values == "coverage_per_bin"].tolist())
    recalibrated = "" if n_calibration is None else f", each recalibrated on {n_calibration} other galaxies"
    print(f"\nThe goals on {n_sets} calibrated sets of {n_gal} galaxies x {n_draws} draws{recalibrated} (share of "
          "(set, parameter) failing; 0 for a goal that only miscalibration fails):")
    for goal, fails in failed.items():
        print(f"  {goal:<18} {np.mean(fails):.2f}")
    print(f"  worst-bin coverage offset of a calibrated posterior: median {np.median(worst):.3f}, "
          f"95th percentile {np.quantile(worst, 0.95):.3f} (goal 0.02)")


def _recalibrate(idata, calibration) -> None:
    """Move and scale each continuous parameter's draws in ``idata`` (in place) by the PIT
    scale and move fitted on the ``calibration`` set's draws and truths, about each galaxy's
    draw mean."""
    for name, truth in calibration.observed_data.items():
        if name not in idata.posterior or f"p_{name}" in idata.posterior:  # a gate's 0/1 draws
            continue
        draws = calibration.posterior[name].values.reshape(-1, truth.size)  # (draw, galaxy)
        labelled = np.isfinite(truth.values)
        centre = draws[:, labelled].mean(0)
        scale, move = uniform_pit_scale(torch.from_numpy(draws[:, labelled] - centre),
                                        torch.from_numpy(truth.values[labelled] - centre))
        values = idata.posterior[name].values
        mean = values.mean(axis=(0, 1))
        values[...] = mean + move + scale * (values - mean)


if __name__ == "__main__":
    main()
