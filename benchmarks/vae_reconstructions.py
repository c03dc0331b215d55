"""Reconstructions of the image VAE: originals beside reconstructions, mock and real stamps.

Trains the VAE (default architecture, latent 32) on

- a mock catalog from ``galppl.data.simulate`` (nanomaggies), and
- the real SDSS colour-composite JPEG cutouts of Wu & Boada (2019) in
  ``sdss_data_dir()/wu_boada_cutouts`` ("relative" display units), skipped with a message
  when the shared data are absent,

each with a seeded held-out test set (``--test-fraction``) that the fit never sees (the fit
splits its own validation set off the rest for early stopping). Reports the test
reconstruction MSE per pixel in scaled units (arcsinh-stretched for nanomaggies, then
standardised per channel), beside two baselines: predicting the per-pixel mean image of
the fit's galaxies for every test galaxy (``test_mse_mean_image``, the ratio's
denominator) and predicting each channel's mean everywhere (``test_mse_channel_mean``,
~1 in these units); ``test_noise_floor`` (the pixel variance in each test stamp's outer
4-pixel frame) is roughly what a perfect denoiser would score. It writes ``vae_reconstructions.png`` (top rows: originals;
bottom rows: reconstructions from the posterior mean, i = red, r = green, g = blue) and
``vae_reconstructions.json`` to ``--out``.

Training is bounded by ``--max-seconds`` per data set (the loop keeps the best epoch),
so the numbers reflect a CPU budget, not convergence.

Usage: .venv/bin/python benchmarks/vae_reconstructions.py [--quick] [--out runs/benchmarks/]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from galppl.data.paths import sdss_data_dir  # noqa: E402
from galppl.data.prepare import image_quality  # noqa: E402
from galppl.models.vae import VAEConfig, fit_vae  # noqa: E402


def split(ds, test_fraction: float, seed: int):
    """(train catalog, test catalog): a seeded random split over galaxies."""
    n = ds.sizes["galaxy"]
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(test_fraction * n))
    return ds.isel(galaxy=np.sort(order[n_test:])), ds.isel(galaxy=np.sort(order[:n_test]))


def to_rgb(images: np.ndarray, fitted, top: float | None = None) -> tuple[np.ndarray, float]:
    """(n, y, x, 3) display images in 0..1 (R = i, G = r, B = g) and the white level used.

    Nanomaggy stamps get the model's own arcsinh stretch (softening = sky noise) and a
    common white level (99.5th percentile of the originals), so originals and
    reconstructions are shown alike; "relative" JPEG stamps are already display images.
    """
    images = np.asarray(images, dtype=np.float64)
    if fitted.scaler.units == "relative":
        return np.clip(np.moveaxis(images[:, ::-1], 1, -1), 0, 1), 1.0
    soft = np.asarray(fitted.scaler.softening)[None, :, None, None]
    stretched = np.arcsinh(np.clip(images, 0, None) / soft)
    top = np.percentile(stretched, 99.5) if top is None else top
    return np.clip(np.moveaxis(stretched[:, ::-1], 1, -1) / top, 0, 1), top


def run(name: str, ds, args) -> dict:
    train, test = split(ds, args.test_fraction, args.seed)
    config = VAEConfig(
        lr=args.lr,
        batch_size=args.batch_size,
        max_epochs=args.max_epochs,
        patience=args.patience,
        max_seconds=args.max_seconds,
        seed=args.seed,
    )
    start = time.perf_counter()
    fitted = fit_vae(train, config, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    # Baselines in the same scaled units: the per-pixel mean image of the fit's galaxies
    # (training + validation, never the test set), and the per-channel mean (0 here).
    def scaled_usable(ds):
        images = ds["image"].transpose("galaxy", "channel", "y", "x").values
        return fitted.scaler.transform(images[image_quality(ds).values], units=fitted.scaler.units)

    scaled_test = scaled_usable(test)
    mean_image = scaled_usable(train).mean(axis=0, dtype=np.float64)
    # Irreducible part of the MSE, roughly: the pixel variance within each stamp's outer
    # 4-pixel frame (sky + noise) in the same scaled units; a perfect denoiser would
    # score about this on sky-dominated stamps.
    b = 4
    frame = np.concatenate(
        [scaled_test[:, :, :b, :].reshape(*scaled_test.shape[:2], -1),
         scaled_test[:, :, -b:, :].reshape(*scaled_test.shape[:2], -1)],
        axis=2,
    )
    noise_floor = float(frame.var(axis=2).mean())
    row = {
        "data": name,
        "units": fitted.scaler.units,
        "n_train_fit": fitted.info["n_train"],
        "n_val_fit": fitted.info["n_val"],
        "n_test": int(test.sizes["galaxy"]),
        "image_size": fitted.config.image_size,
        "epochs_run": fitted.history.epochs_run,
        "best_epoch": fitted.history.best_epoch,
        "stopped_because": fitted.history.stopped_because,
        "fit_seconds": seconds,
        "val_loss_per_galaxy": fitted.history.val_loss[fitted.history.best_epoch],
        "test_mse_scaled": fitted.reconstruction_mse(test),
        "test_mse_mean_image": float(np.mean((scaled_test - mean_image) ** 2)),
        "test_mse_channel_mean": float(np.mean(scaled_test**2)),
        "test_noise_floor": noise_floor,
    }
    row["mse_ratio"] = row["test_mse_scaled"] / row["test_mse_mean_image"]
    show = test.isel(galaxy=slice(0, args.n_show))
    originals = show["image"].values
    recon = fitted.reconstruct(show)
    row["_rgb"] = (originals, recon, fitted)
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="300 mock galaxies, 60 s of training per data set")
    parser.add_argument("--n-mock", type=int, default=1200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="above the paper's 1e-4 to fit a CPU budget")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=400.0, help="training budget per data set")
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--n-show", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args(argv)
    if args.quick:
        args.n_mock, args.max_seconds = 300, 60.0
    torch.set_num_threads(args.threads)

    datasets = []
    try:
        from galppl.data import simulate

        datasets.append(("mock", simulate(args.n_mock, seed=args.seed, image_size=args.size)))
    except ImportError as err:
        print(f"skipping mock stamps: galppl.data.simulate is not available ({err})")
    folder = sdss_data_dir()
    if folder is not None and (folder / "wu_boada_cutouts").is_dir():
        from galppl.data.loaders import load_jpeg_cutouts

        datasets.append(("sdss_jpeg", load_jpeg_cutouts(folder / "wu_boada_cutouts", size=args.size)))
    else:
        print("skipping real JPEG cutouts: ../shared/data/sdss/wu_boada_cutouts is absent (set GALPPL_SDSS_DATA)")

    rows = [run(name, ds, args) for name, ds in datasets]
    print(f"{'data':>10} {'units':>10} {'train':>6} {'test':>5} {'epochs':>6} {'stop':>14} {'test MSE':>9} "
          f"{'mean-image MSE':>15} {'channel-mean MSE':>17} {'noise floor':>12} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['data']:>10} {r['units']:>10} {r['n_train_fit']:>6} {r['n_test']:>5} {r['epochs_run']:>6} "
            f"{r['stopped_because']:>14} {r['test_mse_scaled']:>9.4f} {r['test_mse_mean_image']:>15.4f} "
            f"{r['test_mse_channel_mean']:>17.4f} {r['test_noise_floor']:>12.4f} {r['mse_ratio']:>6.3f}"
        )

    args.out.mkdir(parents=True, exist_ok=True)
    if rows:
        fig = figure(rows, args.n_show)
        fig.savefig(args.out / "vae_reconstructions.png", dpi=110, bbox_inches="tight")
        print(f"wrote {args.out / 'vae_reconstructions.png'}")
    for r in rows:
        r.pop("_rgb")
    (args.out / "vae_reconstructions.json").write_text(json.dumps(rows, indent=2))
    return rows


def figure(rows: list[dict], n_show: int):
    """One panel per data set: a row of originals above a row of their reconstructions."""
    fig = plt.figure(figsize=(1.2 * n_show, 2.75 * len(rows)))
    for row, sub in zip(rows, np.atleast_1d(fig.subfigures(len(rows), 1, hspace=0.05))):
        axes = sub.subplots(2, n_show, squeeze=False, gridspec_kw={"wspace": 0.04, "hspace": 0.06})
        originals, recon, fitted = row["_rgb"]
        rgb_orig, top = to_rgb(originals, fitted)
        rgb_recon, _ = to_rgb(recon, fitted, top)
        for j in range(n_show):
            for i, (rgb, label) in enumerate(((rgb_orig, "original"), (rgb_recon, "reconstruction"))):
                ax = axes[i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j < len(rgb):
                    ax.imshow(rgb[j], origin="lower", interpolation="nearest")
                if j == 0:
                    ax.set_ylabel(f"{row['data']}\n{label}", fontsize=8)
        floor = row.get("test_noise_floor")
        sub.suptitle(
            f"{row['data']} ({row['units']}, test set): reconstruction MSE {row['test_mse_scaled']:.3f}, "
            f"mean image {row['test_mse_mean_image']:.3f}"
            + (f", sky-noise floor ~{floor:.2f}" if floor is not None else "")
            + " (scaled units)",
            fontsize=8,
            x=0.02,
            ha="left",
        )
    return fig

if __name__ == "__main__":
    main()
