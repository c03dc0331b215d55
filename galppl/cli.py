"""Command line: ``galppl fit``, ``predict``, ``recalibrate``, ``diagnose``, ``simulate`` and ``run`` (the main job).

``galppl fit CATALOG [--cutouts DIR] [--config fit.toml] --out MODEL`` fits a model on your
own catalog (a galppl catalog, or an SDSS-style table: CSV, FITS, parquet; FITS cutouts named
by galaxy id join it for image inputs). ``galppl predict MODEL CATALOG OUT`` writes per-galaxy
posterior summaries of a catalog of any size to a zarr store (OUT ending in ``.zarr``,
through :func:`galppl.scale.predict_catalog`; a killed run resumes when called again) or
the draws as an InferenceData netCDF (OUT ending in ``.nc``, for catalogs that fit in
memory). ``galppl recalibrate MODEL CATALOG --out NEW`` refits a saved model's calibration
on labelled held-out galaxies of another sky (:meth:`~galppl.posterior.GalaxyPosterior.recalibrate`)
and saves the result as a new model. ``galppl diagnose POSTERIOR`` prints the accuracy, coverage and detectability of an
InferenceData netCDF whose catalog had true values, and writes figures and the report.
``galppl simulate N OUT`` writes a mock catalog. ``galppl run`` simulates the embedded mock
sky, fits the VAE and the chosen chain model on a
CPU within a time budget, predicts the held-out test galaxies, prints R^2, the accuracy of
each detectability gate and 68%/95% coverage, and writes the InferenceData, the fitted
model, figures and the diagnostics report to an output folder. ``--config fit.toml`` reads
a :class:`~galppl.config.FitConfig` as TOML (a top-level ``seed`` and the tables ``[data]``,
``[chain]``, ``[train]``, ``[vae]``, as ``FitConfig.to_toml`` writes them); ``--n-galaxies``,
``--image-size``, ``--inputs``, ``--seed`` and ``--minutes`` override it.

Every command checks all its arguments and files before any work starts; a bad one ends the
command at once with a one-line message and exit status 2. A failure during the work (e.g. an
unreadable row deep in a catalog) is one line and exit status 1; an interrupted predict, fit or
run exits with 130 and resumes when run again (``fit`` and ``run`` from per-epoch training
checkpoints, :mod:`galppl.checkpoint`, kept beside the model / in OUT/checkpoints until the fit ends).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from galppl import __version__
from galppl.data.files import atomic_path, write_text_atomic

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


def _read_config(args):
    """The ``--config`` TOML file as a :class:`~galppl.config.FitConfig` (the defaults without one)."""
    from galppl.config import FitConfig

    if args.config is None:
        return FitConfig()
    path = Path(args.config)
    if not path.is_file():
        raise FileNotFoundError(f"--config {str(path)!r}: no such file")
    try:
        return FitConfig.from_toml(path.read_text())
    except ValueError as err:  # TOML syntax, unknown keys, bad values
        raise ValueError(f"--config {str(path)!r}: {err}") from None


def _with_flags(config, args, minutes):
    """``config`` with the command line's flags applied; ``minutes`` (or None) is split into
    the two trainings' budgets."""
    flags = {"n_galaxies": getattr(args, "n_galaxies", None), "image_size": getattr(args, "image_size", None),
             "inputs": args.inputs, "seed": args.seed}
    options = {name: value for name, value in flags.items() if value is not None}
    if minutes is not None:
        options.update(max_seconds=CHAIN_SHARE * 60 * minutes, vae_max_seconds=VAE_SHARE * 60 * minutes)
    return config.with_options(**options)


def _run_minutes(args) -> float | None:
    """The budget of ``galppl run`` in minutes: ``--minutes``, else :data:`DEFAULT_MINUTES` without
    a ``--config`` file, else None (the file's)."""
    return DEFAULT_MINUTES if args.minutes is None and args.config is None else args.minutes


def run_config(args):
    """The :class:`~galppl.config.FitConfig` of ``galppl run``: the ``--config`` file (or the
    defaults and a :data:`DEFAULT_MINUTES` budget), then the flags given on the command line."""
    config = _with_flags(_read_config(args), args, _run_minutes(args))
    _writable(args.out, "--out", folder=True)
    return config


def _evaluate(idata, out: Path, title: str) -> dict:
    """Print R^2, RMSE and coverage of each parameter with true values and the accuracy of each
    gate; write pred_vs_true.png, corner_one_galaxy.png and the report into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import arviz as az
    import numpy as np

    from galppl import diagnostics

    posterior = idata.posterior
    gates = [name for name in posterior.data_vars if f"p_{name}" in posterior]
    params = [name for name in idata.observed_data.data_vars if name in posterior and name not in gates]
    if not params:
        raise ValueError("the posterior's catalog has no true values of its variables: nothing to diagnose")
    acc = diagnostics.accuracy(idata, var_names=params)
    # A flagged galaxy's posterior is an extrapolation, as wide as the model's support: for a line
    # flux, whose support spans -5000 to 1e7, one such posterior's mean can outweigh every other
    # galaxy's error. So R^2 is also given without them (every other number includes them).
    flagged = diagnostics.flagged_out_of_distribution(idata)
    acc_unflagged = diagnostics.accuracy(idata.isel(galaxy=~flagged), var_names=params)
    cov = diagnostics.coverage(idata, var_names=params, levels=[0.68, 0.95])
    summary: dict = {"parameters": {}, "n_flagged_out_of_distribution": int(flagged.sum())}
    print(f"{'parameter':<12}{'R^2':>8}{'unflagged':>10}{'RMSE':>9}{'cov68':>8}{'cov95':>8}")
    for name in params:
        row = {
            "r2": float(acc["r2"].sel(parameter=name)),
            "r2_unflagged": float(acc_unflagged["r2"].sel(parameter=name)),
            "rmse": float(acc["rmse"].sel(parameter=name)),
            "coverage68": float(cov["coverage"].sel(parameter=name, level=0.68)),
            "coverage95": float(cov["coverage"].sel(parameter=name, level=0.95)),
        }
        summary["parameters"][name] = row
        print(f"{name:<12}{row['r2']:>8.3f}{row['r2_unflagged']:>10.3f}{row['rmse']:>9.3f}{row['coverage68']:>8.3f}"
              f"{row['coverage95']:>8.3f}")
    print(f"(unflagged: R^2 of the {len(flagged) - int(flagged.sum())} galaxies not flagged out-of-distribution; "
          "every other number includes the flagged ones)")
    for gate in gates:
        det = diagnostics.detection(idata, var=gate, prob=f"p_{gate}")
        summary.setdefault("detectability", {})[gate] = {"accuracy": float(det["accuracy"]),
                                                         "roc_auc": float(det["roc_auc"])}
        print(f"{gate}: accuracy {float(det['accuracy']):.3f}, ROC AUC {float(det['roc_auc']):.3f}")

    out.mkdir(parents=True, exist_ok=True)
    fig = diagnostics.plot_pred_vs_true(idata, var_names=params)
    _save_figure(fig, out / "pred_vs_true.png", dpi=110)
    # The corner plot's galaxy: the first with draws of every parameter (a galaxy with incomplete
    # inputs has none), preferably one whose last parameter is measured.
    drawn = np.all([posterior[name].notnull().all(("chain", "draw")).values for name in params], axis=0)
    measured = drawn & np.isfinite(idata.observed_data[params[-1]].values)
    if drawn.any():
        galaxy = posterior["galaxy"].values[int(np.argmax(measured if measured.any() else drawn))]
        axes = az.plot_pair(idata, var_names=params, coords={"galaxy": [galaxy]}, kind="kde", marginals=True)
        _save_figure(np.ravel(axes)[0].figure, out / "corner_one_galaxy.png", dpi=90)
    summary["report"] = str(diagnostics.report(idata, out / "report", title=title).relative_to(out))
    return summary


def _save_figure(fig, path: Path, dpi: int) -> None:
    """``fig`` as an image at ``path`` (format from its suffix), written atomically."""
    with atomic_path(path) as temporary:
        fig.savefig(temporary, format=path.suffix.lstrip("."), dpi=dpi, bbox_inches="tight")


def _write_idata(idata, path) -> None:
    """An InferenceData as netCDF at ``path``, written under a temporary name and renamed into
    place: a killed run leaves the earlier file (or none), never a truncated one."""
    with atomic_path(path) as temporary:
        idata.to_netcdf(str(temporary))


def _run(args, config) -> int:
    import galppl
    from galppl.features import uses_images
    from galppl.fit import default_catalog

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    size = config.data.image_size
    stamps = f"{size}x{size} gri stamps" if uses_images(config.chain.inputs) else "no images"
    print(f"galppl {__version__}: simulating {config.data.n_galaxies} mock SDSS galaxies "
          f"({stamps}; cached after the first run)", flush=True)
    catalog = default_catalog(config, progress=not args.quiet)
    phases = {"simulate": time.perf_counter() - start}
    print(f"  ready in {phases['simulate']:.0f} s", flush=True)

    # A killed run resumes its trainings from here when started again with the same settings.
    posterior = galppl.fit(args.model, catalog, config=config, progress=not args.quiet,
                           checkpoint_dir=out / "checkpoints")
    history = posterior.history
    phases["vae"] = posterior.vae.history.wall_seconds if posterior.vae is not None else 0.0
    phases["chain"] = history["wall_seconds"]
    phases["fit_other"] = history["fit_seconds"] - phases["vae"] - phases["chain"]  # encoding, OOD, calibration
    clock = time.perf_counter()
    posterior.save(out / "model")
    test = catalog.sel(galaxy=posterior.split["test"])
    idata = posterior.predict(test, num_samples=args.num_samples)
    _write_idata(idata, out / "posterior.nc")
    phases["predict"] = time.perf_counter() - clock

    print(f"\nHeld-out test set: {test.sizes['galaxy']} galaxies, {args.num_samples} draws each")
    clock = time.perf_counter()
    summary = {"model": args.model, "inputs": config.chain.inputs, "n_test": int(test.sizes["galaxy"]),
               "fit_seconds": round(history["fit_seconds"], 1),
               "stopped_because": {"vae": posterior.vae.history.stopped_because if posterior.vae else None,
                                   "chain": history["stopped_because"]},
               **_evaluate(idata, out, f"galppl {args.model}: held-out mock test set")}
    phases["report"] = time.perf_counter() - clock
    summary["phases_seconds"] = {name: round(seconds, 1) for name, seconds in phases.items()}
    stopped = ", ".join(f"{name} stopped by {why}" for name, why in summary["stopped_because"].items() if why)
    print("Phases: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in phases.items()) + f" ({stopped})")
    if history["stopped_because"] == "max_seconds":
        minutes = _run_minutes(args)
        more = f"--minutes {2 * minutes:g}" if minutes else "a larger --minutes"
        print(f"Note: the chain stopped at its time budget before early stopping, so it may be under-trained "
              f"(this machine is slower than the budget assumes): rerun with {more} for a converged fit.")
    summary["total_seconds"] = round(time.perf_counter() - start, 1)
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1))
    print(f"\nWrote {out}/: posterior.nc, model/, pred_vs_true.png, corner_one_galaxy.png, {summary['report']}, "
          f"summary.json ({summary['total_seconds']:.0f} s in all)")
    return 0


def _check_fit(args):
    from galppl.data.io import GALPPL_FORMATS, catalog_format
    from galppl.features import uses_images

    _existing(args.catalog, "catalog")
    fmt = catalog_format(args.catalog)
    if args.cutouts is not None and not Path(args.cutouts).is_dir():
        raise FileNotFoundError(f"--cutouts {args.cutouts!r}: no such folder")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {args.out!r} exists and is not empty: choose a new folder for the model")
    _writable(args.out, "--out", folder=True)
    config = _with_flags(_read_config(args), args, args.minutes)
    if uses_images(config.chain.inputs) and args.cutouts is None and fmt not in GALPPL_FORMATS:
        raise ValueError(f"inputs {config.chain.inputs!r} read images, and a {fmt} table has none: give "
                         "--cutouts DIR (FITS cutouts named by galaxy id) or --inputs photometry")
    return config


def _checkpoints_beside(out) -> Path:
    """Where ``galppl fit`` keeps its training checkpoints: a hidden folder beside the model's
    (which is written whole at the end), so a killed fit started again resumes."""
    out = Path(out)
    return out.with_name(f".{out.name}.checkpoints")


def _labelled_catalog(args, cutouts=None):
    """``args.catalog`` read; with ``--unphysical-as-missing``, its labels outside their physical
    supports set missing, each variable's count and first galaxy ids printed."""
    from galppl.data.io import read_catalog
    from galppl.data.schema import support, unphysical_as_missing

    catalog = read_catalog(args.catalog, cutouts=cutouts)
    print(f"read {catalog.sizes['galaxy']} galaxies from {args.catalog}", flush=True)
    if args.unphysical_as_missing:
        catalog, changed = unphysical_as_missing(catalog)
        for name, ids in changed.items():
            print(f"{name}: {len(ids)} value(s) outside its physical support {support(name)} set missing "
                  f"(galaxy ids {', '.join(map(str, ids[:5]))}{', ...' if len(ids) > 5 else ''})")
    return catalog


def _fit(args, config) -> int:
    import galppl
    from galppl.models.props import subset_blocks

    catalog = _labelled_catalog(args, cutouts=args.cutouts)
    model = args.model if args.variables is None else subset_blocks(args.variables, config.chain.num_couplings)
    posterior = galppl.fit(model, catalog, config=config, progress=not args.quiet,
                           checkpoint_dir=_checkpoints_beside(args.out))
    path = posterior.save(args.out)
    history = posterior.history
    # A small catalog has no calibration split of its own (galppl.fit.HELD_OUT_CALIBRATION_MIN).
    which = " held-out" if len(posterior.split["calibration"]) else " validation"
    print(f"wrote {path}/ ({posterior.model}, inputs {posterior.inputs}; trained on {history['n_train']} galaxies "
          f"in {history['fit_seconds']:.0f} s, calibrated on {history['n_calibration']}{which} galaxies "
          f"({history['calibration_left_out_of_distribution']} flagged out-of-distribution left out); "
          f"excluded for incomplete inputs: {history['excluded_incomplete_inputs']})")
    return 0


def _recalibrate(args, posterior) -> int:
    import warnings

    catalog = _labelled_catalog(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        calibration = posterior.recalibrate(catalog, outliers=not args.one_temperature,
                                            conditional=not args.one_temperature)
    for warning in caught:
        print(f"note: {warning.message}")
    record = posterior.history["recalibrations"][-1]
    print(f"recalibrated on {record['n_galaxies']} galaxies of {args.catalog} "
          f"({record['n_out_of_distribution_left_out']} left out as out-of-distribution)")
    for block in posterior.chain.blocks:
        fitted = calibration.get(block.name, {"variables": []})
        for variable in fitted["variables"]:
            j = block.variables.index(variable)
            slopes = ", ".join(f"{s:+.2f}" for s in fitted["log_temperature_slope"][j])
            print(f"  {variable}: temperature {fitted['temperature'][j]:.3f} (log slope on the predicted "
                  f"{', '.join(block.variables)}: {slopes}), outlier share "
                  f"{fitted['outlier_fraction'][j]:.3f} widened {fitted['outlier_widening'][j]:.2f} times "
                  f"({fitted['method']})")
    print(f"wrote {posterior.save(args.out)}/")
    return 0


def _check_recalibrate(args):
    import galppl

    _existing(args.model_dir, "model")
    _existing(args.catalog, "catalog")
    _writable(args.out, "out", folder=True)
    if Path(args.out).resolve() == Path(args.model_dir).resolve():
        raise ValueError(f"out {args.out!r} is the model's own folder: write the recalibrated model to a new one")
    return galppl.load(args.model_dir)


def _simulate(args, _) -> int:
    from galppl.data import save_catalog, simulate

    catalog = simulate(args.n, seed=args.seed, image_size=args.image_size or None, progress=True)
    print(f"wrote {save_catalog(catalog, args.out)}")
    return 0


def _predict(args, posterior) -> int:
    from galppl.data.io import read_catalog
    from galppl.scale import predict_catalog

    if Path(args.out).suffix == ".zarr":
        result = predict_catalog(posterior, args.catalog, args.out, args.num_samples, keep_draws=args.keep_draws,
                                 chunk_size=args.chunk_size, seed=args.seed, progress=not args.quiet)
        print(f"wrote {args.out} (summaries of {result.sizes['galaxy']} galaxies)")
        return 0
    idata = posterior.predict(read_catalog(args.catalog), num_samples=args.num_samples, seed=args.seed)
    _write_idata(idata, args.out)
    print(f"wrote {args.out}")
    return 0


def _check_predict(args):
    import galppl
    from galppl.data.io import ROW_FORMATS, catalog_format
    from galppl.scale import DEFAULT_CHUNK_SIZE

    if not Path(args.catalog).exists():
        raise FileNotFoundError(f"catalog {args.catalog!r}: no such file or folder")
    fmt = catalog_format(args.catalog)
    suffix = Path(args.out).suffix
    if suffix not in (".zarr", ".nc"):
        raise ValueError(f"out {args.out!r} must end in .zarr (per-galaxy summaries, any catalog size) or .nc "
                         "(an InferenceData of the draws)")
    if suffix == ".zarr" and fmt not in ROW_FORMATS:
        raise ValueError(f"catalog {args.catalog!r}: a {fmt} file is read whole; for a .zarr OUT give one of "
                         f"{ROW_FORMATS} (or write a .nc OUT)")
    if suffix == ".nc" and (args.keep_draws or args.chunk_size is not None):
        raise ValueError("--keep-draws and --chunk-size are for a .zarr OUT (an .nc OUT holds every draw)")
    args.chunk_size = args.chunk_size or DEFAULT_CHUNK_SIZE
    _writable(args.out, "out")
    _existing(args.model_dir, "model")
    return galppl.load(args.model_dir)


def _diagnose(args, idata) -> int:
    posterior = Path(args.posterior)
    out = Path(args.out) if args.out else posterior.with_name(f"{posterior.stem}_diagnostics")
    summary = _evaluate(idata, out, f"galppl: {Path(args.posterior).name}")
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1))
    print(f"wrote {out}/: pred_vs_true.png, corner_one_galaxy.png, {summary['report']}, summary.json")
    return 0


def _check_diagnose(args):
    import arviz as az

    _existing(args.posterior, "posterior")
    try:
        idata = az.from_netcdf(args.posterior)
    except (OSError, ValueError) as err:
        raise ValueError(f"posterior {args.posterior!r} is not an InferenceData netCDF file: {err}") from None
    for group in ("posterior", "observed_data"):
        if group not in idata.groups():
            raise ValueError(f"posterior {args.posterior!r} has no {group} group: give a file written by "
                             "galppl run or galppl predict (.nc OUT)")
    return idata


def _check_simulate(args):
    if args.image_size % 8:
        raise ValueError(f"--image-size must be 0 (no images) or a multiple of 8 (e.g. 64), got {args.image_size}")
    if Path(args.out).suffix not in (".nc", ".zarr"):
        raise ValueError(f"out {args.out!r} must end in .nc (netCDF) or .zarr")
    _writable(args.out, "out")


def _writable(path: str, name: str, *, folder: bool = False) -> None:
    """A ValueError when the file (or, with ``folder``, the folder) ``path`` cannot be created:
    the nearest existing folder on its way is a file, or refuses a new file (tried with a
    temporary file, removed at once)."""
    import tempfile

    where = Path(path).absolute() if folder else Path(path).absolute().parent
    while not where.exists():
        where = where.parent
    if not where.is_dir():
        raise ValueError(f"{name} {path!r} cannot be written: {str(where)!r} is a file, not a folder")
    try:
        tempfile.TemporaryFile(dir=where).close()
    except OSError as err:
        raise ValueError(f"{name} {path!r} cannot be written in {str(where)!r}: {err.strerror or err}") from None


def _existing(path: str, name: str) -> None:
    if not Path(path).exists():
        raise FileNotFoundError(f"{name} {path!r}: no such file or folder")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``galppl run: error: ...``), without the usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _fit_arguments(command, minutes_default: str) -> None:
    """The options ``run`` and ``fit`` share: the model, its config and the flags that override it."""
    from galppl.features import INPUTS

    command.add_argument("--model", default="props", choices=["props", "lines", "joint"])
    command.add_argument("--config", help="a FitConfig as TOML ([data], [chain], [train], [vae], seed)")
    command.add_argument("--inputs", choices=INPUTS, help="input variant (default: the config's, image+photometry)")
    command.add_argument("--minutes", type=_positive_minutes,
                         help=f"wall-clock budget for the two trainings ({minutes_default})")
    command.add_argument("--seed", type=_integer(0), help="the fit's seed (default: the config's, 0)")
    command.add_argument("--quiet", action="store_true", help="no progress bars")


def _props_variables(text: str) -> tuple[str, ...]:
    """``--variables``: comma-separated props variables, checked as :func:`~galppl.models.props.subset_blocks` checks them."""
    from galppl.models.props import subset_blocks

    variables = tuple(text.split(","))
    try:
        subset_blocks(variables)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return variables


def _unphysical_argument(command) -> None:
    command.add_argument("--unphysical-as-missing", action="store_true",
                         help="set labels outside their physical supports (e.g. a negative redshift) missing, "
                              "naming them, instead of refusing the catalog")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="galppl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"galppl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="fit on the embedded mock sky and write posteriors, figures and a report")
    _fit_arguments(run, f"default {DEFAULT_MINUTES:g} without --config")
    run.add_argument("--out", default="runs/default", help="output folder (default: runs/default)")
    run.add_argument("--n-galaxies", type=_integer(1), help="mock galaxies (default 20000)")
    run.add_argument("--image-size", type=_integer(1), help="stamp side in pixels, a multiple of 8 (default 64)")
    run.add_argument("--num-samples", type=_integer(1), default=1000, help="posterior draws per galaxy")
    run.set_defaults(check=run_config, func=_run)

    fit = sub.add_parser("fit", help="fit a model on your catalog and save it")
    fit.add_argument("catalog", help="a galppl catalog (.nc, .zarr) or an SDSS-style table (.csv, .fits, .parquet)")
    fit.add_argument("--cutouts", help="a folder of gri FITS cutouts named by galaxy id, for image inputs")
    fit.add_argument("--out", required=True, help="folder to write the fitted model to (new or empty)")
    _fit_arguments(fit, "default none")
    _unphysical_argument(fit)
    fit.add_argument("--variables", type=_props_variables, help="instead of --model: a one-block chain of only these props variables, "
                                         "comma-separated (e.g. z,log_mstar), for a catalog that labels only those")
    fit.set_defaults(check=_check_fit, func=_fit)

    predict = sub.add_parser("predict",
                             help="posterior summaries (.zarr) or draws (.nc) of a catalog with a saved model")
    predict.add_argument("model_dir", help="a folder written by galppl fit or galppl run (model/)")
    predict.add_argument("catalog", help="a catalog: .zarr, .nc, .fits or .parquet (.csv only for an .nc OUT)")
    predict.add_argument("out", help=".zarr: per-galaxy summaries, chunk by chunk, resumable; "
                                     ".nc: InferenceData of the draws")
    predict.add_argument("--num-samples", type=_integer(1), default=1000,
                         help="posterior draws per galaxy (default 1000)")
    predict.add_argument("--chunk-size", type=_integer(1), help="galaxies per chunk of a .zarr OUT (default 4096)")
    predict.add_argument("--keep-draws", action="store_true", help="also write the draws into a .zarr OUT")
    predict.add_argument("--seed", type=_integer(0), default=0)
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(check=_check_predict, func=_predict)

    recalibrate = sub.add_parser("recalibrate",
                                 help="refit a saved model's calibration on labelled galaxies of another sky")
    recalibrate.add_argument("model_dir", help="a folder written by galppl fit or galppl run (model/)")
    recalibrate.add_argument("catalog", help="held-out labelled galaxies (any subset of the model's variables), "
                                             "in any format galppl fit reads; never the ones you test on")
    recalibrate.add_argument("--out", required=True, help="folder to write the recalibrated model to (new or empty)")
    recalibrate.add_argument("--one-temperature", action="store_true",
                             help="a shift and one temperature per variable only, for every galaxy: no outlier "
                                  "share, no temperature that follows the predicted values")
    _unphysical_argument(recalibrate)
    recalibrate.set_defaults(check=_check_recalibrate, func=_recalibrate)

    diagnose = sub.add_parser("diagnose", help="accuracy, coverage, figures and report of a posterior with true values")
    diagnose.add_argument("posterior",
                          help="an InferenceData netCDF (posterior.nc of galppl run, or a galppl predict .nc)")
    diagnose.add_argument("--out", help="folder for figures and report (default: <posterior>_diagnostics beside it)")
    diagnose.set_defaults(check=_check_diagnose, func=_diagnose)

    simulate = sub.add_parser("simulate", help="write a mock SDSS catalog (.nc or .zarr)")
    simulate.add_argument("n", type=_integer(1))
    simulate.add_argument("out")
    simulate.add_argument("--image-size", type=_integer(0), default=64, help="0 for a catalog without images")
    simulate.add_argument("--seed", type=_integer(0), default=0)
    simulate.set_defaults(check=_check_simulate, func=_simulate)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        checked = args.check(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        one_line = " ".join(str(err).split())
        parser.exit(2, f"galppl {args.command}: error: {one_line}\n")
    try:
        return args.func(args, checked)
    except KeyboardInterrupt:
        again = "; run the same command again to resume" if args.command in ("predict", "fit", "run") else ""
        parser.exit(130, f"galppl {args.command}: interrupted{again}\n")
    except (ValueError, OSError, FloatingPointError) as err:  # unreadable data, a diverged fit (CatalogError is a ValueError)
        one_line = " ".join(str(err).split())
        parser.exit(1, f"galppl {args.command}: error: {one_line}\n")


if __name__ == "__main__":
    sys.exit(main())
