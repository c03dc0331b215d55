"""Command line: ``galppl run`` (the main job), ``galppl simulate``, ``galppl predict``.

``galppl run`` simulates the embedded mock sky, fits the VAE and the chosen chain model on a
CPU within a time budget, predicts the held-out test galaxies, prints R^2, the accuracy of
each detectability gate and 68%/95% coverage, and writes the InferenceData, the fitted
model, figures and the diagnostics report to an output folder. ``--config fit.toml`` reads
a :class:`~galppl.config.FitConfig` as TOML (a top-level ``seed`` and the tables ``[data]``,
``[chain]``, ``[train]``, ``[vae]``, as ``FitConfig.to_toml`` writes them); ``--n-galaxies``,
``--image-size``, ``--inputs``, ``--seed`` and ``--minutes`` override it.

Every command checks all its arguments before any work starts; a bad one ends the command
at once with a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

# The default wall-clock budget of ``galppl run`` without a config file, and its shares:
# simulation is cached after the first run; the VAE and the chain stop early (keeping their
# best weights) when their share is spent.
DEFAULT_MINUTES = 8.0
VAE_SHARE, CHAIN_SHARE = 0.35, 0.45


def _integer(low: int):
    """An argparse type: an integer >= ``low`` (0 or 1)."""
    what = "a positive integer" if low == 1 else "a non-negative integer"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


def _positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number of minutes > 0, got {text}")
    return value


def run_config(args):
    """The :class:`~galppl.config.FitConfig` of ``galppl run``: the ``--config`` file (or the
    defaults), then the flags given on the command line."""
    from galppl.config import FitConfig

    if args.config is None:
        config = FitConfig()
    else:
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"--config {str(path)!r}: no such file")
        try:
            config = FitConfig.from_toml(path.read_text())
        except ValueError as err:  # TOML syntax, unknown keys, bad values
            raise ValueError(f"--config {str(path)!r}: {err}") from None
    flags = {"n_galaxies": args.n_galaxies, "image_size": args.image_size, "inputs": args.inputs, "seed": args.seed}
    options = {name: value for name, value in flags.items() if value is not None}
    minutes = DEFAULT_MINUTES if args.minutes is None and args.config is None else args.minutes
    if minutes is not None:
        options.update(max_seconds=CHAIN_SHARE * 60 * minutes, vae_max_seconds=VAE_SHARE * 60 * minutes)
    return config.with_options(**options)


def _run(args, config) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import arviz as az
    import numpy as np

    import galppl
    from galppl import diagnostics
    from galppl.features import uses_images
    from galppl.fit import default_catalog

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    size = config.data.image_size
    stamps = f"{size}x{size} gri stamps" if uses_images(config.chain.inputs) else "no images"
    print(f"galppl {galppl.__version__}: simulating {config.data.n_galaxies} mock SDSS galaxies "
          f"({stamps}; cached after the first run)", flush=True)
    catalog = default_catalog(config, progress=not args.quiet)
    print(f"  ready in {time.perf_counter() - start:.0f} s", flush=True)

    posterior = galppl.fit(args.model, catalog, config=config, progress=not args.quiet)
    posterior.save(out / "model")
    test = catalog.sel(galaxy=posterior.split["test"])
    idata = posterior.predict(test, num_samples=args.num_samples)
    idata.to_netcdf(str(out / "posterior.nc"))

    gates = [block for block in posterior.chain.blocks if block.kind == "bernoulli"]
    gated = {v for block in gates for v in block.variables}
    params = [v for v in posterior.variables if v not in gated]
    acc = diagnostics.accuracy(idata, var_names=params)
    cov = diagnostics.coverage(idata, var_names=params, levels=[0.68, 0.95])
    summary = {"model": args.model, "inputs": config.chain.inputs, "n_test": int(test.sizes["galaxy"]),
               "fit_seconds": round(posterior.history["fit_seconds"], 1), "parameters": {}}
    print(f"\nHeld-out test set: {test.sizes['galaxy']} galaxies, {args.num_samples} draws each")
    print(f"{'parameter':<12}{'R^2':>8}{'RMSE':>9}{'cov68':>8}{'cov95':>8}")
    for name in params:
        row = {
            "r2": float(acc["r2"].sel(parameter=name)),
            "rmse": float(acc["rmse"].sel(parameter=name)),
            "coverage68": float(cov["coverage"].sel(parameter=name, level=0.68)),
            "coverage95": float(cov["coverage"].sel(parameter=name, level=0.95)),
        }
        summary["parameters"][name] = row
        print(f"{name:<12}{row['r2']:>8.3f}{row['rmse']:>9.3f}{row['coverage68']:>8.3f}{row['coverage95']:>8.3f}")
    for gate in gates:
        det = diagnostics.detection(idata, var=gate.variables[0], prob=f"p_{gate.name}")
        summary.setdefault("detectability", {})[gate.name] = {"accuracy": float(det["accuracy"]),
                                                              "roc_auc": float(det["roc_auc"])}
        print(f"{gate.name}: accuracy {float(det['accuracy']):.3f}, ROC AUC {float(det['roc_auc']):.3f}")

    fig = diagnostics.plot_pred_vs_true(idata, var_names=params)
    fig.savefig(out / "pred_vs_true.png", dpi=110, bbox_inches="tight")
    galaxy = idata.posterior["galaxy"].values[int(np.argmax(np.isfinite(idata.observed_data[params[-1]].values)))]
    axes = az.plot_pair(idata, var_names=params, coords={"galaxy": [galaxy]}, kind="kde", marginals=True)
    np.ravel(axes)[0].figure.savefig(out / "corner_one_galaxy.png", dpi=90, bbox_inches="tight")
    report = diagnostics.report(idata, out / "report", title=f"galppl {args.model}: held-out mock test set")
    summary["total_seconds"] = round(time.perf_counter() - start, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\nWrote {out}/: posterior.nc, model/, pred_vs_true.png, corner_one_galaxy.png, {report.relative_to(out)}, "
          f"summary.json ({summary['total_seconds']:.0f} s in all)")
    return 0


def _simulate(args, _) -> int:
    from galppl.data import save_catalog, simulate

    catalog = simulate(args.n, seed=args.seed, image_size=args.image_size or None, progress=True)
    print(f"wrote {save_catalog(catalog, args.out)}")
    return 0


def _predict(args, posterior) -> int:
    from galppl.data import load_catalog

    idata = posterior.predict(load_catalog(args.catalog), num_samples=args.num_samples)
    idata.to_netcdf(args.out)
    print(f"wrote {args.out}")
    return 0


def _check_simulate(args):
    if args.image_size % 8:
        raise ValueError(f"--image-size must be 0 (no images) or a multiple of 8 (e.g. 64), got {args.image_size}")
    _check_catalog_path(args.out, "out")


def _check_predict(args):
    import galppl

    if not Path(args.catalog).exists():
        raise FileNotFoundError(f"catalog {args.catalog!r}: no such file or folder")
    _check_catalog_path(args.catalog, "catalog")
    return galppl.load(args.model_dir)


def _check_catalog_path(path: str, name: str) -> None:
    # The formats galppl.data.save_catalog / load_catalog read from a path's suffix.
    if Path(path).suffix not in (".nc", ".h5", ".netcdf", ".zarr"):
        raise ValueError(f"{name} {path!r} must end in .nc (netCDF) or .zarr")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``galppl run: error: ...``), without the usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from galppl.features import INPUTS

    parser = _Parser(prog="galppl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="fit on the embedded mock sky and write posteriors, figures and a report")
    run.add_argument("--model", default="props", choices=["props", "lines", "joint"])
    run.add_argument("--config", help="a FitConfig as TOML ([data], [chain], [train], [vae], seed)")
    run.add_argument("--out", default="runs/default", help="output folder (default: runs/default)")
    run.add_argument("--n-galaxies", type=_integer(1), help="mock galaxies (default 20000)")
    run.add_argument("--image-size", type=_integer(1), help="stamp side in pixels, a multiple of 8 (default 64)")
    run.add_argument("--inputs", choices=INPUTS,
                     help="input variant (default image+photometry)")
    run.add_argument("--num-samples", type=_integer(1), default=1000, help="posterior draws per galaxy")
    run.add_argument("--minutes", type=_positive_minutes,
                     help=f"wall-clock budget for the two trainings (default {DEFAULT_MINUTES:g} without --config)")
    run.add_argument("--seed", type=_integer(0), help="the fit's seed (default 0)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(check=run_config, func=_run)

    simulate = sub.add_parser("simulate", help="write a mock SDSS catalog (.nc or .zarr)")
    simulate.add_argument("n", type=_integer(1))
    simulate.add_argument("out")
    simulate.add_argument("--image-size", type=_integer(0), default=64, help="0 for a catalog without images")
    simulate.add_argument("--seed", type=_integer(0), default=0)
    simulate.set_defaults(check=_check_simulate, func=_simulate)

    predict = sub.add_parser("predict", help="posterior draws for a catalog with a saved model")
    predict.add_argument("model_dir")
    predict.add_argument("catalog", help="a catalog written by galppl (.nc or .zarr)")
    predict.add_argument("out", help="InferenceData netCDF file to write")
    predict.add_argument("--num-samples", type=_integer(1), default=1000)
    predict.set_defaults(check=_check_predict, func=_predict)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        checked = args.check(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        one_line = " ".join(str(err).split())
        parser.exit(2, f"galppl {args.command}: error: {one_line}\n")
    return args.func(args, checked)


if __name__ == "__main__":
    sys.exit(main())
