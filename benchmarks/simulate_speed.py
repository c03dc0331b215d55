"""Speed and memory of the whole mock sky, ``galppl.data.simulate`` (population, physics,
photometry, lines, stamps, catalog assembly, validation and the netCDF cache write).

Times ``simulate`` in one process, each call with a fresh ``cache_dir`` in a temporary folder
(so nothing is read from the cache), at image_size None (catalog only: the baseline), 64 px
(the goal: 10,000 galaxies with 64x64 gri stamps in under a minute on 2 cores) and 160 px
(the paper's stamps, fewer galaxies: 6x the pixels), then the same 64 px call again from the
cache (cache-hit time). Prints galaxies per second, wall and CPU seconds, the peak resident
memory (sampled) and the slowdown against the no-image baseline; writes
``<out>/simulate_speed.json``. The renderer alone is measured by ``render_speed.py``.

    .venv/bin/python benchmarks/simulate_speed.py [--quick] [--threads 2] [--out runs/benchmarks/]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import torch
from _memory import PeakRSS


def run(n: int, image_size, seed: int, cache_dir: Path) -> dict:
    from galppl.data import simulate

    wall, cpu = time.perf_counter(), time.process_time()
    with PeakRSS() as mem:
        ds = simulate(n, seed=seed, image_size=image_size, cache_dir=cache_dir)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert ds.sizes["galaxy"] == n
    return dict(n=n, image_size=image_size or 0, wall_s=wall, cpu_s=cpu, galaxies_per_s=n / wall,
                rss_start_mb=mem.start, rss_peak_mb=mem.peak)  # fmt: skip


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 galaxies (200 at 160 px) instead of 10,000 (2,000)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the speed goal assumes 2 cores)")
    parser.add_argument("--out", default="runs/benchmarks/")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = 1_000 if args.quick else 10_000
    n160 = 200 if args.quick else 2_000

    from galppl.data.mock.sky import SIMULATOR_VERSION, simulate

    print(f"{SIMULATOR_VERSION}; torch threads {torch.get_num_threads()}; OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; load {os.getloadavg()[0]:.1f}")
    simulate(200, seed=args.seed + 1, image_size=64, cache=False)  # warm-up: imports, torch, tables
    results: dict = {"version": SIMULATOR_VERSION, "threads": torch.get_num_threads(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="galppl-simulate-speed-") as tmp:
        tmp = Path(tmp)
        rows = []
        for label, count, size in (("no images", n, None), ("64 px", n, 64), ("160 px", n160, 160)):
            row = run(count, size, args.seed, tmp / label.replace(" ", "_"))
            row["label"] = label
            rows.append(row)
        # cache hit: the 64 px call again, same arguments and folder
        row = run(n, 64, args.seed, tmp / "64_px")
        row["label"] = "64 px, cache hit"
        rows.append(row)
        cache_mb = sum(p.stat().st_size for p in (tmp / "64_px").glob("*.nc")) / 2**20
    base = rows[0]["galaxies_per_s"]
    print(f"\n{'run':18s} {'n':>6s} {'wall s':>8s} {'CPU s':>8s} {'galaxies/s':>11s} {'x slower':>9s} {'peak RSS MB':>12s}")
    for row in rows:
        row["slowdown_vs_no_images"] = base / row["galaxies_per_s"]
        print(f"{row['label']:18s} {row['n']:6d} {row['wall_s']:8.2f} {row['cpu_s']:8.2f} {row['galaxies_per_s']:11.0f}"
              f" {row['slowdown_vs_no_images']:9.1f} {row['rss_peak_mb']:12.0f}")  # fmt: skip
    results["runs"] = rows
    results["cache_file_mb_64px"] = cache_mb
    results["process_max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t64 = rows[1]["wall_s"] * 10_000 / rows[1]["n"]
    results["seconds_for_10k_at_64px"] = t64
    verdict = "meets" if t64 < 60 else "MISSES"
    print(f"\n10,000 galaxies with 64x64 gri stamps: {t64:.1f} s ({verdict} the < 60 s goal; "
          f"{'measured' if rows[1]['n'] == 10_000 else 'extrapolated'}); cache file {cache_mb:.0f} MB, "
          f"read back in {rows[3]['wall_s']:.2f} s; process peak RSS {results['process_max_rss_mb']:.0f} MB")
    path = out / "simulate_speed.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
