"""Training speed, old path against new, on the same data in the same process.

Sections (``--only`` picks some; each is one function returning a JSON-able dict):

- ``vae``: training throughput of the image VAE in images per second, one epoch of
  ``galppl.models.vae.training.train_networks`` on ``--speed-images`` mock stamps per
  measurement, for the old path (Pyro SVI, ``trainer="pyro"``), the plain-torch ELBO in
  float32 (``trainer="torch", precision="float32"``) and the default (``precision="auto"``:
  bfloat16 where the CPU has it natively). The paths are measured interleaved,
  ``--repeats`` rounds, so that load from other processes hits them alike; the ratios
  (best and median round) are what to read when the machine is shared.
- ``chain``: training throughput of the props chain in galaxies per second, one epoch over
  ``--chain-galaxies`` mock galaxies (the main job trains on 9,800), for the old path (Pyro
  SVI on ``ChainModel.model``, ``galppl.train.train_svi``, minibatches of 256), the plain-torch
  loss (``ChainModel.negative_log_likelihood`` in ``galppl.train.train_loss_fn``) at the same
  minibatch, and the plain-torch loss at ``galppl.fit``'s minibatch for the main job's 9,800
  training galaxies (``galppl.train.minibatch_size``), interleaved like ``vae``. The inputs are the
  mock's photometry features plus 64 standard-normal columns standing in for the VAE
  latents, so the chain has the main job's shape.
- ``vae_learning``: what the VAE learns, per path: the same seeded fit (``fit_vae``,
  ``--epochs`` epochs, no early stopping) on ``--learn-galaxies`` mock galaxies, scored on
  a held-out test set: reconstruction MSE per pixel in scaled units, and the R^2 of a
  least-squares line from the latent means to log stellar mass and redshift (fitted on
  the training galaxies), a proxy for what the latents carry.

- ``run``: the main job, ``galppl run`` with its defaults (simulation cached after the first
  run), and the seconds each of its phases took (simulate, VAE, chain, the rest of the fit,
  predict, report) with how each training stopped. Not in the default sections (about six
  minutes); ``--only run``.

Mock galaxies come from galppl's simulator (64 px stamps, seed 0; cached on disk after
the first run). Usage::

    .venv/bin/python benchmarks/train_speed.py [--only vae chain run] [--threads 2] [--out runs/benchmarks/]

Writes ``<out>/train_speed.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from galppl.config import CHAIN_TRAINING
from galppl.data.prepare import ImageScaler
from galppl.models.vae import VAEConfig, fit_vae
from galppl.models.vae.fitted import build_networks
from galppl.models.vae.training import train_networks
from galppl.train import minibatch_size

# (label, VAEConfig overrides): the old path first, the ratios are against it.
VAE_PATHS = (
    ("pyro_svi", {"trainer": "pyro", "precision": "float32"}),
    ("torch_float32", {"trainer": "torch", "precision": "float32"}),
    ("torch_auto", {"trainer": "torch", "precision": "auto"}),
)
LATENT_TARGETS = ("log_mstar", "z")
MAIN_JOB_BATCH = minibatch_size(CHAIN_TRAINING.batch_size, 9800)
# The chain's training paths, (label, trainer, minibatch): the old one first, the ratios are against it.
CHAIN_PATHS = (
    ("pyro_svi_256", "pyro_svi", 256),
    ("torch_256", "torch", 256),
    (f"torch_{MAIN_JOB_BATCH}", "torch", MAIN_JOB_BATCH),
)


def simulate(n: int, seed: int, image_size: int):
    """galppl's mock catalog: ``galppl.data.simulate`` where it is the function, else its module's."""
    import galppl.data

    function = getattr(galppl.data, "simulate", None)
    if not callable(function):
        from galppl.data.simulate import simulate as function
    return function(n, seed=seed, image_size=image_size)


def vae_speed(args) -> dict:
    """Images per second of one VAE training epoch for each path in ``VAE_PATHS``."""
    catalog = simulate(args.speed_images, 0, args.image_size)
    images = catalog["image"].transpose("galaxy", "channel", "y", "x").values
    scaled = torch.as_tensor(ImageScaler().fit(images).transform(images))
    base = VAEConfig(image_size=args.image_size, max_epochs=1, seed=0)
    configs = {label: dataclasses.replace(base, **overrides) for label, overrides in VAE_PATHS}
    networks = {}
    for label, config in configs.items():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            networks[label] = build_networks(config)
        train_networks(*networks[label], scaled[: config.batch_size], None, config, progress=False)  # warm-up
    rates = {label: [] for label in configs}
    for round_index in range(args.repeats):
        for label, config in configs.items():
            start = time.perf_counter()
            train_networks(*networks[label], scaled, None, config, progress=False)
            rates[label].append(scaled.shape[0] / (time.perf_counter() - start))
        print(f"  round {round_index + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()), flush=True)
    old = VAE_PATHS[0][0]
    rows = {}
    for label, values in rates.items():
        rows[label] = {
            "images_per_s_best": max(values),
            "images_per_s_median": statistics.median(values),
            # Per round: the paths of one round ran back to back under the same load.
            "speedup_per_round": [v / o for v, o in zip(values, rates[old])],
            "precision": str(configs[label].training_dtype()).removeprefix("torch."),
        }
    print(f"{'path':>14} {'precision':>9} {'best img/s':>11} {'median img/s':>13} {'speed-up per round':>30}")
    for label, row in rows.items():
        ups = " ".join(f"{u:.2f}x" for u in row["speedup_per_round"])
        print(f"{label:>14} {row['precision']:>9} {row['images_per_s_best']:>11.0f} "
              f"{row['images_per_s_median']:>13.0f} {ups:>30}")
    return {"images": int(scaled.shape[0]), "image_size": args.image_size, "batch_size": base.batch_size, "paths": rows}


def chain_speed(args) -> dict:
    """Galaxies per second of one props-chain training epoch, Pyro SVI against plain torch."""
    from galppl.features import build_features, catalog_tensors
    from galppl.models import chain_blocks
    from galppl.models.chain import ChainModel
    from galppl.train import TrainConfig, train_loss_fn, train_svi

    catalog = simulate(args.chain_galaxies, 0, None)
    blocks = chain_blocks("props")
    tensors = catalog_tensors(build_features(catalog, "photometry", None), catalog, blocks).usable_rows()
    latents = torch.randn(len(tensors.features), 64, generator=torch.Generator().manual_seed(0))
    data = {"features": torch.cat([tensors.features, latents], 1), **tensors.targets}
    chains = {}
    for label, _, _ in CHAIN_PATHS:
        chains[label] = ChainModel(blocks, data["features"].shape[1], dropout=0.2, seed=0)
        chains[label].set_standardisation(data["features"], tensors.targets)

    def epoch(label: str, trainer: str, batch_size: int, rows: slice = slice(None)) -> None:
        chain, batch = chains[label], {k: v[rows] for k, v in data.items()}
        config = TrainConfig(lr=1e-3, batch_size=batch_size, max_epochs=1, progress=False)
        if trainer == "pyro_svi":
            train_svi(chain.model, chain.guide, {"chain": chain}, batch, None, config)
        else:
            train_loss_fn(chain.negative_log_likelihood, {"chain": chain}, batch, None, config)

    for path in CHAIN_PATHS:
        epoch(*path, rows=slice(0, 2 * path[2]))  # warm-up
    rates = {label: [] for label, _, _ in CHAIN_PATHS}
    for round_index in range(args.repeats):
        for path in CHAIN_PATHS:
            start = time.perf_counter()
            epoch(*path)
            rates[path[0]].append(len(data["features"]) / (time.perf_counter() - start))
        print(f"  round {round_index + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()), flush=True)
    old = CHAIN_PATHS[0][0]
    rows = {label: {"galaxies_per_s_best": max(values), "galaxies_per_s_median": statistics.median(values),
                    "speedup_per_round": [v / o for v, o in zip(values, rates[old])]}
            for label, values in rates.items()}
    print(f"{'path':>14} {'best gal/s':>11} {'median gal/s':>13} {'speed-up per round':>30}")
    for label, row in rows.items():
        ups = " ".join(f"{u:.2f}x" for u in row["speedup_per_round"])
        print(f"{label:>14} {row['galaxies_per_s_best']:>11.0f} {row['galaxies_per_s_median']:>13.0f} {ups:>30}")
    return {"galaxies": len(data["features"]), "features": int(data["features"].shape[1]),
            "batch_sizes": {label: size for label, _, size in CHAIN_PATHS}, "paths": rows}


def latent_r2(fitted, train, test) -> dict:
    """R^2 on ``test`` of a least-squares line from the latent means to each of ``LATENT_TARGETS``."""
    def design(catalog):
        z = fitted.encode(catalog)["latent_mean"].values.astype(np.float64)
        return np.column_stack([z, np.ones(len(z))])

    x_train, x_test = design(train), design(test)
    scores = {}
    for name in LATENT_TARGETS:
        y_train, y_test = train[name].values, test[name].values
        ok_train, ok_test = np.isfinite(y_train), np.isfinite(y_test)
        coef, *_ = np.linalg.lstsq(x_train[ok_train], y_train[ok_train], rcond=None)
        residual = y_test[ok_test] - x_test[ok_test] @ coef
        scores[name] = float(1 - residual.var() / y_test[ok_test].var())
    return scores


def vae_learning(args) -> dict:
    """Held-out reconstruction MSE and latent R^2 after the same seeded fit on each path."""
    catalog = simulate(args.learn_galaxies, 0, args.image_size)
    order = np.random.default_rng(1).permutation(catalog.sizes["galaxy"])
    n_test = round(0.2 * order.size)
    test, train = catalog.isel(galaxy=np.sort(order[:n_test])), catalog.isel(galaxy=np.sort(order[n_test:]))
    rows = {}
    print(f"{'path':>14} {'test MSE':>9} {'val MSE':>8} " + " ".join(f"{'R2 ' + n:>12}" for n in LATENT_TARGETS)
          + f" {'train s':>8}")
    for label, overrides in VAE_PATHS:
        config = VAEConfig(max_epochs=args.epochs, patience=args.epochs, seed=0, **overrides)
        fitted = fit_vae(train, config, progress=False)
        rows[label] = {
            "test_mse": fitted.reconstruction_mse(test),
            "val_mse": fitted.info["val_mse"],
            "latent_r2": latent_r2(fitted, train, test),
            "train_seconds": fitted.history.wall_seconds,
            "val_loss": fitted.history.val_loss,
            "precision": fitted.info["precision"],
        }
        row = rows[label]
        print(f"{label:>14} {row['test_mse']:>9.4f} {row['val_mse']:>8.4f} "
              + " ".join(f"{row['latent_r2'][n]:>12.3f}" for n in LATENT_TARGETS)
              + f" {row['train_seconds']:>8.1f}", flush=True)
    return {"galaxies": int(catalog.sizes["galaxy"]), "test_galaxies": int(n_test), "epochs": args.epochs,
            "paths": rows}


def main_job(args) -> dict:
    """The phases of ``galppl run`` (its defaults), from the summary.json it writes."""
    from galppl.cli import main as galppl_main

    out = args.out / "main_job"
    start = time.perf_counter()
    if galppl_main(["run", "--out", str(out), "--quiet"]) != 0:
        raise RuntimeError("galppl run failed")
    summary = json.loads((out / "summary.json").read_text())
    row = {"wall_seconds": time.perf_counter() - start, "phases_seconds": summary["phases_seconds"],
           "stopped_because": summary["stopped_because"],
           "r2": {name: values["r2"] for name, values in summary["parameters"].items()}}
    print(f"galppl run: {row['wall_seconds']:.0f} s; " + ", ".join(f"{k} {v:.0f} s" for k, v in row["phases_seconds"].items())
          + f"; stopped by {row['stopped_because']}")
    return row


SECTIONS = {"vae": vae_speed, "chain": chain_speed, "vae_learning": vae_learning, "run": main_job}
DEFAULT_SECTIONS = ["vae", "chain", "vae_learning"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), default=DEFAULT_SECTIONS)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--speed-images", type=int, default=1024, help="images per timed VAE epoch")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the VAE speed section")
    parser.add_argument("--chain-galaxies", type=int, default=10000, help="mock galaxies per timed chain epoch")
    parser.add_argument("--learn-galaxies", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4, help="epochs of each vae_learning fit")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not a measurement")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args(argv)
    if args.quick:
        args.speed_images, args.repeats, args.learn_galaxies, args.epochs = 256, 1, 300, 1
        args.chain_galaxies = 1000
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    for name in args.only:
        print(f"== {name} ({torch.get_num_threads()} threads)", flush=True)
        start = time.perf_counter()
        result[name] = SECTIONS[name](args)
        result[name]["section_seconds"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_speed.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
