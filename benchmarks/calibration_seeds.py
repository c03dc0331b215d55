"""The calibration goals of issue `calibration` on several seeds, for any of the chains.

    python benchmarks/calibration_seeds.py [--model props|lines|joint] [--inputs photometry]
                                           [--seeds 0,1,2] [--minutes 16] [--out DIR]

Each seed is one ``galppl run --model M --inputs I --seed S --minutes 16``: its own mock sky,
split, fit, calibration and 3,000 test galaxies with 1,000 draws each, written to
``DIR/M-I-S`` (default ``runs/benchmarks/seeds``; a seed whose ``posterior.nc`` is there is
read, not refitted). The goals are `galppl.diagnostics.goals.calibration_goals` on its test
galaxies, as each run's report has them.

Prints, per seed and parameter: R^2 of the posterior mean (on the galaxies not flagged
out-of-distribution: a flagged galaxy's line-flux posterior spans the support, -5000 to 1e7,
and its mean can outweigh every other galaxy's error); whether the SBC rank ECDF stays in
the 99% simultaneous band (with the rank chi2 p-value); the mean PIT; the worst quartile
bin's |coverage - nominal| (bins of r, and of z and stellar mass where the model has them); and
the joint TARP ATC. Then, per goal and parameter, on how many seeds it was met. Each statistic's
standard error for a calibrated posterior of that many galaxies is in the report; at 3,000
galaxies the mean PIT's is 0.0053, so the 0.01 goal fails by chance on ~6% of (seed, parameter)
pairs even without the calibration's own noise (1,500 calibration galaxies: SE 0.0075).

Measured on the slow machine of the README's Set up: 10 minutes a seed for ``--model lines
--inputs photometry`` on one thread (two seeds side by side, every chain stopped by early
stopping); 32 minutes for ``--model joint --inputs image+photometry`` on two threads, where the
VAE and the joint chain stop at their ``--minutes 16`` budgets. Run it alone: a loaded machine
meets the budgets sooner.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import arviz as az
import numpy as np

from galppl.cli import main as galppl_main
from galppl.diagnostics import accuracy, flagged_out_of_distribution
from galppl.diagnostics.goals import calibration_goals

GOALS = ("sbc_ecdf_in_band", "pit_mean", "coverage_per_bin", "tarp_atc")


def run_seed(model: str, inputs: str, seed: int, minutes: float, out: Path) -> Path:
    """The seed's run folder, fitting it first unless its posterior is already there."""
    folder = out / f"{model}-{inputs}-{seed}"
    if not (folder / "posterior.nc").exists():
        if folder.exists() and any(folder.iterdir()):
            raise SystemExit(f"{folder} holds an unfinished run: remove it and rerun")
        code = galppl_main(["run", "--model", model, "--inputs", inputs, "--seed", str(seed),
                            "--minutes", str(minutes), "--quiet", "--out", str(folder)])
        if code:
            raise SystemExit(f"galppl run failed for seed {seed} (exit {code})")
    return folder


def seed_table(idata) -> tuple[dict, str]:
    """Goals of one run: {(goal, parameter): passed} and a printed table."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        goals = calibration_goals(idata)
        flagged = flagged_out_of_distribution(idata)
        r2 = accuracy(idata.isel(galaxy=~flagged))["r2"]
    met, rows, tarp = {}, {}, []
    for i in range(goals.sizes["check"]):
        check = goals.isel(check=i)
        goal, param = str(check["goal"].values), str(check["parameter"].values)
        met[(goal, param)] = bool(check["passed"])
        if goal == "tarp_atc":
            tarp.append(check)
        else:
            rows.setdefault(param, {})[goal] = check
    lines = [f"{'parameter':<14}{'R^2':>7}  {'SBC in band (chi2 p)':<24}{'mean PIT':>9}  {'worst bin':>9}",
             f"(R^2 of the posterior mean on the {int((~flagged).sum())} galaxies not flagged out-of-distribution; "
             "the goals on all)"]
    for param, checks in rows.items():
        sbc = checks["sbc_ecdf_in_band"]
        chi2 = str(sbc["where"].values).split(",")[0].replace("chi2 p=", "")
        sbc_text = f"{'yes' if bool(sbc['passed']) else 'NO':<4}({chi2})"
        pit = str(checks["pit_mean"]["where"].values).replace("mean PIT ", "")
        pit_flag = "" if bool(checks["pit_mean"]["passed"]) else "*"
        worst = float(checks["coverage_per_bin"]["statistic"])
        worst_flag = "" if bool(checks["coverage_per_bin"]["passed"]) else "*"
        lines.append(f"{param:<14}{float(r2.sel(parameter=param)):>7.3f}  {sbc_text:<24}{pit + pit_flag:>9}  "
                     f"{worst:>8.3f}{worst_flag}")
    for t in tarp:
        lines.append(f"TARP ({t['parameter'].values}): {t['where'].values}{'' if bool(t['passed']) else ' *'}")
    lines.append("(* misses its goal)")
    return met, "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lines", choices=["props", "lines", "joint"])
    parser.add_argument("--inputs", default="photometry", choices=["image+photometry", "photometry", "image"])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--minutes", type=float, default=16.0)
    parser.add_argument("--out", default="runs/benchmarks/seeds")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    tally: dict[tuple[str, str], int] = {}
    for seed in seeds:
        start = time.perf_counter()
        folder = run_seed(args.model, args.inputs, seed, args.minutes, out)
        met, table = seed_table(az.from_netcdf(folder / "posterior.nc"))
        print(f"\n== {args.model}, {args.inputs}, seed {seed} ({folder}; {time.perf_counter() - start:.0f} s)\n{table}",
              flush=True)
        for key, passed in met.items():
            tally[key] = tally.get(key, 0) + passed
    print(f"\nGoals met, of {len(seeds)} seeds:")
    for goal in GOALS:
        counts = [f"{param} {n}" for (g, param), n in tally.items() if g == goal]
        print(f"  {goal:<18}" + ", ".join(counts))


if __name__ == "__main__":
    main()
