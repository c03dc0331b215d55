"""Speed and memory of the mock SDSS stamp renderer (galppl.data.mock.images).

Prints stamps per second (wall and CPU) at 64 and 160 px for a realistic population
(``galppl.data.simulate`` without images, or a hand-made one if that is unavailable),
the effect of the chunk size, the peak extra memory (resident set size, sampled), and the
speed ratio to the brute-force renderer (every Gaussian evaluated at 10 x 10 points per
pixel) on a small subset in the same process. Writes the numbers to
``<out>/render_speed.json``.

    .venv/bin/python benchmarks/render_speed.py [--quick] [--threads 2] [--out runs/benchmarks/]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from _memory import PeakRSS

from galppl.data.mock.images import render_stamps
from galppl.data.mock.stamp_scene import StampParams
from galppl.data.mock.stamp_reference import render_stamps_reference


def population(n: int, seed: int) -> tuple[StampParams, str]:
    """Stamp parameters of n mock galaxies: from the simulator if it works, else by hand."""
    try:
        from galppl.data.mock.sky import simulate, stamp_params

        return stamp_params(simulate(n, seed=seed, image_size=None, cache=False)), "galppl.data.simulate"
    except Exception as err:  # noqa: BLE001 - a benchmark should still run without the simulator
        print(f"simulate() unavailable ({type(err).__name__}: {err}); using a hand-made population")
    rng = np.random.default_rng(seed)
    total = 10 ** rng.uniform(0.7, 2.5, n)  # r-band nanomaggies: r ~ 16-20.7
    bt = rng.beta(1.2, 2.0, n)
    colour = np.array([0.55, 1.0, 1.3])
    return (
        StampParams(
            flux_bulge=(total * bt)[:, None] * colour * [0.8, 1.0, 1.05],
            flux_disc=(total * (1 - bt))[:, None] * colour,
            r50_bulge=10 ** rng.normal(0.0, 0.25, n),
            r50_disc=10 ** rng.normal(0.4, 0.2, n),
            q_bulge=rng.uniform(0.6, 1.0, n),
            q_disc=rng.uniform(0.15, 1.0, n),
            position_angle=rng.uniform(0, 180, n),
            psf_fwhm=rng.uniform(1.1, 1.7, n)[:, None] * [1.06, 1.0, 0.96],
            clumpiness=rng.uniform(0, 1, n) * (1 - bt),
        ),
        "hand-made",
    )


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    with PeakRSS() as mem:
        result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu, mem.extra_mb


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 galaxies instead of 10,000")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the simulator budget assumes 2)")
    parser.add_argument("--out", default="runs/benchmarks/")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = 1_000 if args.quick else 10_000
    params, source = population(n, args.seed)
    print(f"population: {n} galaxies ({source}); torch threads {torch.get_num_threads()}; load {os.getloadavg()[0]:.1f}")
    results: dict = {"n": n, "source": source, "threads": torch.get_num_threads(), "runs": []}

    # 160 px stamps are 6x the memory (3 GB for 10,000): render a fifth of the galaxies.
    for size, count in ((64, n), (160, max(200, n // 5))):
        sub = params.subset(slice(0, count))
        _, wall, cpu, mem = timed(lambda: render_stamps(sub, size, args.seed))
        output_mb = count * 3 * size * size * 4 / 2**20
        row = dict(size=size, n=count, chunk=512, wall_s=wall, cpu_s=cpu, stamps_per_s=count / wall,
                   cpu_ms_per_stamp=1e3 * cpu / count, extra_mb=mem, output_mb=output_mb)
        results["runs"].append(row)
        print(
            f"{size:4d} px: {count:6d} stamps with noise in {wall:6.1f} s wall ({count / wall:7.0f} stamps/s), "
            f"{1e3 * cpu / count:.2f} ms CPU per stamp; peak memory +{mem:.0f} MB (output {output_mb:.0f} MB)"
        )
        if size == 64:
            print(f"      -> 10,000 stamps at 64 px: {10_000 * wall / count:.1f} s wall at this load")

    sub = params.subset(slice(0, min(n, 2_000)))
    for chunk in (32, 128, 512, 2048):
        _, wall, cpu, mem = timed(lambda: render_stamps(sub, 64, args.seed, chunk=chunk))
        results["runs"].append(dict(size=64, n=len(sub), chunk=chunk, wall_s=wall, cpu_s=cpu, extra_mb=mem))
        print(f"  chunk {chunk:5d}: {len(sub) / wall:7.0f} stamps/s, {1e3 * cpu / len(sub):.2f} ms CPU/stamp, "
              f"peak +{mem:.0f} MB")

    # Brute force on a few galaxies: the same scenes, real space, 10 x 10 points per pixel.
    few = params.subset(slice(0, 3))
    fast, wall_fast, cpu_fast, _ = timed(lambda: render_stamps(few, 64, args.seed, noise=False))
    slow, wall_slow, cpu_slow, _ = timed(lambda: render_stamps_reference(few, 64, args.seed, oversample=10))
    peak = slow.max(axis=(2, 3), keepdims=True)
    worst = float(np.max(np.abs(fast - slow) / peak))
    # per-stamp cost of the fast renderer measured on many stamps (a 3-stamp call is all overhead)
    per_stamp = results["runs"][0]["cpu_s"] / results["runs"][0]["n"]
    ratio = cpu_slow / len(few) / per_stamp
    results.update(brute_force_cpu_s_per_stamp=cpu_slow / len(few), fourier_cpu_s_per_stamp=per_stamp,
                   speedup_vs_brute_force=ratio, max_abs_difference_over_peak=worst)
    print(
        f"brute force (10x10 oversampled, real space): {cpu_slow / len(few):.2f} s CPU per 64 px stamp; "
        f"Fourier renderer {1e3 * per_stamp:.2f} ms -> {ratio:.0f}x faster; "
        f"largest difference {worst:.1e} of the peak pixel"
    )
    path = out / "render_speed.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
