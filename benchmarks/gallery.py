"""Gallery of mock SDSS gri stamps across stellar mass and sSFR, beside real SDSS cutouts.

Simulated stamps (``galppl.data.simulate``, which calls ``galppl.data.mock.images``) are
shown as arcsinh RGB composites in the style of Lupton et al. 2004 (PASP 116, 133) via
``astropy.visualization.make_lupton_rgb`` with i -> R, r -> G, g -> B; rows are bins of
true stellar mass, columns bins of true specific star formation rate. A second panel shows
real SDSS gri composites (Wu & Boada 2019 cutouts, ../shared/data/sdss/wu_boada_cutouts)
when they are present. Note the real cutouts are scaled to each galaxy's Petrosian radius
(about 2 x petroR90), while the mock stamps have the fixed SDSS scale of 0.396"/pixel.

    .venv/bin/python benchmarks/gallery.py [--quick] [--out runs/benchmarks/] [--size 64]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from astropy.visualization import make_lupton_rgb  # noqa: E402

MASS_BINS = [(9.0, 9.75), (9.75, 10.25), (10.25, 10.75), (10.75, 11.25), (11.25, 12.5)]
SSFR_BINS = [(-14.0, -11.5), (-11.5, -10.75), (-10.75, -10.25), (-10.25, -8.0)]
# Per-band weights before the arcsinh stretch (g boosted, as in SDSS composites, so that
# g-r ~ 0.55, r-i ~ 0.25 is grey: star-forming discs look blue-white, red-sequence galaxies
# (g-r ~ 0.8-1.0) yellow-orange as in the SDSS JPEGs), the stretch in nanomaggies per pixel,
# and the black point in units of each band's sky noise (SDSS composites also set the sky to black).
BAND_WEIGHT = {"g": 2.2, "r": 1.3, "i": 1.0}
STRETCH, Q, BLACK_SIGMAS = 0.4, 8.0, 1.0


def lupton_rgb(image: np.ndarray) -> np.ndarray:
    """(3, S, S) g, r, i nanomaggies -> (S, S, 3) uint8 RGB (i red, r green, g blue)."""
    bands = [image[k] * BAND_WEIGHT[c] for k, c in enumerate("gri")]
    # one black point for all three bands (a per-band one would tint faint light)
    sigmas = []
    for band in bands:
        edge = np.concatenate([band[:4].ravel(), band[-4:].ravel(), band[:, :4].ravel(), band[:, -4:].ravel()])
        sigmas.append(1.4826 * np.median(np.abs(edge - np.median(edge))))
    floor = BLACK_SIGMAS * float(np.mean(sigmas))
    g, r, i = (np.clip(band - floor, 0.0, None) for band in bands)
    with np.errstate(invalid="ignore", divide="ignore"):  # all-black pixels: 0 / 0
        return make_lupton_rgb(i, r, g, stretch=STRETCH, Q=Q)


def simulated_grid(n: int, size: int, seed: int, per_cell: int):
    """Pick ``per_cell`` simulated galaxies per (mass, sSFR) cell; return cells and catalog."""
    from galppl.data import simulate

    ds = simulate(n, seed=seed, image_size=size, cache=False)
    mass = ds["true_log_mstar"].values
    ssfr = ds["true_log_sfr"].values - mass
    cells = {}
    for row, (m0, m1) in enumerate(MASS_BINS):
        for col, (s0, s1) in enumerate(SSFR_BINS):
            pick = np.flatnonzero((mass >= m0) & (mass < m1) & (ssfr >= s0) & (ssfr < s1))
            cells[row, col] = pick[:per_cell]
    return cells, ds


def real_cutouts(count: int, seed: int):
    """Up to ``count`` random real SDSS JPEG cutouts, or None (with a message) if absent."""
    try:
        from galppl.data.paths import sdss_data_dir

        folder = sdss_data_dir()
    except ImportError:
        folder = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sdss"
    folder = None if folder is None else Path(folder) / "wu_boada_cutouts" / "images"
    if folder is None or not folder.is_dir():
        print("real-cutout panel skipped: ../shared/data/sdss/wu_boada_cutouts is absent")
        return None
    files = sorted(folder.glob("*.jpg"))
    if not files:
        print(f"real-cutout panel skipped: no .jpg files in {folder}")
        return None
    rng = np.random.default_rng(seed)
    return [plt.imread(f) for f in rng.choice(files, size=min(count, len(files)), replace=False)]


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer galaxies (one per cell)")
    parser.add_argument("--out", default="runs/benchmarks/", help="output folder or .png path")
    parser.add_argument("--size", type=int, default=64, help="stamp side in pixels (64 or 160)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        out = out / "gallery.png"
    out.parent.mkdir(parents=True, exist_ok=True)

    per_cell = 1 if args.quick else 2
    start = time.time()
    cells, ds = simulated_grid(1500 if args.quick else 4000, args.size, args.seed, per_cell)
    print(f"simulated {ds.sizes['galaxy']} galaxies with {args.size}px stamps in {time.time() - start:.1f} s")
    real = real_cutouts(len(MASS_BINS) * 4, args.seed)

    rows, cols = len(MASS_BINS), len(SSFR_BINS) * per_cell
    real_cols = 4 if real is not None else 0
    fig = plt.figure(figsize=(1.55 * (cols + real_cols + 0.4), 1.6 * rows + 0.9))
    grid = fig.add_gridspec(rows, cols + real_cols + (1 if real_cols else 0), wspace=0.04, hspace=0.06)
    images = ds["image"].values
    for (row, col), picks in cells.items():
        for k in range(per_cell):
            ax = fig.add_subplot(grid[row, col * per_cell + k])
            ax.set_xticks([])
            ax.set_yticks([])
            if k < len(picks):
                i = picks[k]
                ax.imshow(lupton_rgb(images[i]), origin="lower")
                label = f"z={ds['true_z'].values[i]:.2f} B/T={ds['bulge_to_total'].values[i]:.1f}"
                ax.text(0.03, 0.03, label, color="w", fontsize=5, transform=ax.transAxes)
            else:
                ax.set_facecolor("0.15")
            if col == 0 and k == 0:
                m0, m1 = MASS_BINS[row]
                ax.set_ylabel(f"log M* {m0:g}-{m1:g}", fontsize=7)
            if row == 0 and k == 0:
                s0, s1 = SSFR_BINS[col]
                ax.set_title(f"log sSFR {max(s0, -13):g}..{min(s1, -9):g}", fontsize=7, loc="left")
    if real is not None:
        for k, jpg in enumerate(real):
            ax = fig.add_subplot(grid[k // 4, cols + 1 + k % 4])
            ax.imshow(jpg)
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_title("real SDSS (Wu & Boada 2019)", fontsize=7, loc="left")
    fig.suptitle(
        f"mock SDSS gri stamps ({args.size}x{args.size} px, 0.396\"/px; Lupton RGB i,r,g; "
        f"stretch {STRETCH} nmgy, Q={Q:g}, black at {BLACK_SIGMAS:g} sky sigma): rows stellar mass, columns sSFR [yr-1]",
        fontsize=8,
    )
    fig.savefig(out, dpi=130, bbox_inches="tight")
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
