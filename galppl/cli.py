"""Command line: ``galppl run`` (the main job), ``galppl simulate``, ``galppl predict``.

``galppl run`` simulates the embedded mock sky, fits the VAE and the chosen chain model on a
CPU within a time budget, predicts the held-out test galaxies, prints R^2, detectability
accuracy and 68%/95% coverage, and writes the InferenceData, the fitted model, figures and
the diagnostics report to an output folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import arviz as az
    import numpy as np

    import galppl
    from galppl import diagnostics
    from galppl.fit import FitConfig, default_catalog

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget = args.minutes * 60.0
    # Share the wall-clock budget: simulation is cached after the first run; the VAE and
    # the chain stop early (keeping their best weights) when their share is spent.
    config = FitConfig(
        n_galaxies=args.n_galaxies,
        image_size=args.image_size,
        inputs=args.inputs,
        seed=args.seed,
        vae_max_seconds=0.35 * budget,
        max_seconds=0.45 * budget,
    )
    start = time.perf_counter()
    print(f"galppl {galppl.__version__}: simulating {config.n_galaxies} mock SDSS galaxies "
          f"({config.image_size}x{config.image_size} gri stamps; cached after the first run)", flush=True)
    catalog = default_catalog(config, progress=True)
    print(f"  ready in {time.perf_counter() - start:.0f} s", flush=True)

    posterior = galppl.fit(args.model, catalog, config=config, progress=not args.quiet)
    posterior.save(out / "model")
    test = catalog.sel(galaxy=posterior.split["test"])
    idata = posterior.predict(test, num_samples=args.num_samples)
    idata.to_netcdf(str(out / "posterior.nc"))

    params = [v for v in posterior.variables if v != "oh_detected"]
    acc = diagnostics.accuracy(idata, var_names=params)
    cov = diagnostics.coverage(idata, var_names=params, levels=[0.68, 0.95])
    summary = {"model": args.model, "inputs": args.inputs, "n_test": int(test.sizes["galaxy"]),
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
    if "oh_detected" in posterior.variables:
        det = diagnostics.detection(idata)
        summary["detectability"] = {"accuracy": float(det["accuracy"]), "roc_auc": float(det["roc_auc"])}
        print(f"O/H detectability: accuracy {float(det['accuracy']):.3f}, ROC AUC {float(det['roc_auc']):.3f}")

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


def _simulate(args) -> int:
    from galppl.data import save_catalog
    from galppl.data import simulate

    image_size = args.image_size or None
    catalog = simulate(args.n, seed=args.seed, image_size=image_size, progress=True)
    print(f"wrote {save_catalog(catalog, args.out)}")
    return 0


def _predict(args) -> int:
    import galppl
    from galppl.data import load_catalog

    posterior = galppl.load(args.model_dir)
    idata = posterior.predict(load_catalog(args.catalog), num_samples=args.num_samples)
    idata.to_netcdf(args.out)
    print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="galppl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="fit on the embedded mock sky and write posteriors, figures and a report")
    run.add_argument("--model", default="props", choices=["props", "lines", "joint"])
    run.add_argument("--out", default="runs/default", help="output folder (default: runs/default)")
    run.add_argument("--n-galaxies", type=int, default=20000)
    run.add_argument("--image-size", type=int, default=64)
    run.add_argument("--inputs", default="image+photometry", choices=["image+photometry", "photometry", "image"])
    run.add_argument("--num-samples", type=int, default=1000, help="posterior draws per galaxy")
    run.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget for the two trainings")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_run)

    simulate = sub.add_parser("simulate", help="write a mock SDSS catalog (.nc or .zarr)")
    simulate.add_argument("n", type=int)
    simulate.add_argument("out")
    simulate.add_argument("--image-size", type=int, default=64, help="0 for a catalog without images")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.set_defaults(func=_simulate)

    predict = sub.add_parser("predict", help="posterior draws for a catalog with a saved model")
    predict.add_argument("model_dir")
    predict.add_argument("catalog", help="a catalog written by galppl (.nc or .zarr)")
    predict.add_argument("out", help="InferenceData netCDF file to write")
    predict.add_argument("--num-samples", type=int, default=1000)
    predict.set_defaults(func=_predict)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
