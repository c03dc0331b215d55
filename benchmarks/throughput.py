"""Posterior sampling speed against the machine's matmul roofline, for props and lines.

For each chain (default architecture: hidden 256, 12 couplings of 128-wide MLPs) with the
main job's inputs (64 x 64 px gri stamps through the VAE: 32 latent means + 32 log standard
deviations, plus 9 photometric features), times

- ``draws/s (features)``: ``GalaxyPosterior.sample``'s drawing on precomputed features
  (``--draws`` per galaxy), in tiles of ``posterior.DRAW_ROWS`` rows, and, for comparison,
  in calls of 256 galaxies (``256 x --draws`` rows, how it sampled before the tiles);
- ``galaxies/s (images)``: ``GalaxyPosterior.predict`` end to end from the images (VAE
  encoding, features, OOD score, draws, derived quantities, InferenceData);
- ``FLOPs/draw``: counted by ``torch.utils.flop_counter`` (matmuls only) as the difference
  between sampling 2 and 1 draws per galaxy, so per-galaxy work (h, context projections)
  is left out;
- the roofline: the best ``(rows, 128) @ (128, 128)`` matmul rate of this CPU (the couplings'
  shape), and the ratio draws/s x FLOPs/draw / roofline;

- ``draws/CPU-s`` and ``faults/draw``: the features drawing again, as draws per second of
  this process's CPU time (divided by the threads; on a loaded machine it is less disturbed
  than wall time, which also counts waiting for a core) and minor page faults per draw
  (fresh multi-megabyte tensors fault on first touch: what the reused buffers of
  ``galppl.flows.nets.reused_buffers`` avoid);

at 1 thread and at every core's thread. ``--rows`` also sweeps the rows per chain call.
Run it on an idle machine; the load average is recorded with each model's numbers.
The models are fitted for one epoch (speed does not depend on the weights).

Usage: .venv/bin/python benchmarks/throughput.py [--quick] [--rows] [--out runs/benchmarks/]
Prints a table and writes ``<out>/throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import torch
from flows_speed import best_time
from torch.utils.flop_counter import FlopCounterMode

import galppl
import galppl.posterior as posterior_module
from galppl.features import catalog_tensors


def matmul_flops_per_second(repeats: int) -> float:
    """The best rate (FLOP/s) of (rows, 128) @ (128, 128) float32 matmuls, rows 4096 to 65536."""
    weight = torch.randn(128, 128)
    best = 0.0
    for rows in (4096, 16384, 65536):
        x = torch.randn(rows, 128)
        seconds = best_time(lambda: [x @ weight for _ in range(10)], repeats) / 10
        best = max(best, 2 * rows * 128 * 128 / seconds)
    return best


def flops_per_draw(chain, features: torch.Tensor) -> float:
    """Matmul FLOPs of one more draw per galaxy: sample(2 draws) - sample(1 draw), per galaxy."""
    counts = []
    for draws in (1, 2):
        counter = FlopCounterMode(display=False)
        with counter:
            chain.sample(features, draws)
        counts.append(counter.get_total_flops())
    return (counts[1] - counts[0]) / len(features)


def cpu_seconds_and_faults(fn, repeats: int) -> tuple[float, int]:
    """(least process CPU time in s, its minor page faults) over ``repeats`` calls of ``fn``."""
    best = (float("inf"), 0)
    for _ in range(repeats):
        faults, cpu = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
        fn()
        best = min(best, (time.process_time() - cpu, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults))
    return best


def measure(posterior, catalog, draws: int, repeats: int, rows_sweep: bool) -> dict:
    tensors = catalog_tensors(posterior.features(catalog), catalog)
    galaxies = int(tensors.usable.sum())
    out = {"galaxies": galaxies, "draws": draws,
           "flops_per_draw": flops_per_draw(posterior.chain, tensors.usable_rows().features[:16])}

    def draws_per_second(rows: int) -> float:
        posterior_module.DRAW_ROWS = rows
        try:
            return galaxies * draws / best_time(lambda: posterior._draw(tensors, draws, 256, 0), repeats)
        finally:
            posterior_module.DRAW_ROWS = default_rows

    default_rows = posterior_module.DRAW_ROWS
    out["draws_per_s"] = draws_per_second(default_rows)
    cpu, faults = cpu_seconds_and_faults(lambda: posterior._draw(tensors, draws, 256, 0), repeats)
    out["draws_per_cpu_s"] = galaxies * draws / (cpu / torch.get_num_threads())
    out["minor_faults_per_draw"] = faults / (galaxies * draws)
    out["load_average"] = os.getloadavg()[0]
    out["draws_per_s_256_galaxies_per_call"] = draws_per_second(256 * draws)
    if rows_sweep:
        out["draws_per_s_by_rows"] = {rows: draws_per_second(rows) for rows in (1024, 2048, 4096, 8192, 16384, 65536)}
    seconds = best_time(lambda: posterior.predict(catalog, draws), repeats)
    out["galaxies_per_s_images"] = catalog.sizes["galaxy"] / seconds
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 galaxies, 1 repeat")
    parser.add_argument("--galaxies", type=int, default=512, help="galaxies timed (default 512)")
    parser.add_argument("--draws", type=int, default=1000, help="draws per galaxy (default 1000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", action="store_true", help="also sweep the rows per chain call")
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    if args.quick:
        args.galaxies, args.repeats = 64, 1
    import warnings

    warnings.simplefilter("ignore", galppl.ood.OutOfDistributionWarning)  # random-ish weights flag many
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    sky = galppl.simulate(600 + args.galaxies, seed=0, image_size=64, progress=False)
    train, timed = sky.isel(galaxy=slice(0, 600)), sky.isel(galaxy=slice(600, None))
    vae = galppl.fit_vae(train, max_epochs=1, progress=False)
    results: dict = {"cores": cores, "draw_rows": posterior_module.DRAW_ROWS, "models": {}}
    for model in ("props", "lines"):
        posterior = galppl.fit(model, train, vae=vae, max_epochs=1, progress=False)
        results["models"][model] = {}
        for threads in sorted({1, cores}):
            torch.set_num_threads(threads)
            roofline = matmul_flops_per_second(args.repeats)
            row = measure(posterior, timed, args.draws, args.repeats, args.rows)
            row["matmul_flops_per_s"] = roofline
            row["roofline_draws_per_s"] = roofline / row["flops_per_draw"]
            row["share_of_roofline"] = row["draws_per_s"] / row["roofline_draws_per_s"]
            results["models"][model][threads] = row
    print(f"{'model':<7}{'threads':>8}{'kFLOP/draw':>11}{'GFLOP/s':>9}{'roof dr/s':>11}{'draws/s':>10}"
          f"{'share':>7}{'256/call':>10}{'gal/s img':>10}{'dr/CPU-s':>10}{'flt/draw':>9}{'load':>6}")
    for model, by_threads in results["models"].items():
        for threads, r in by_threads.items():
            print(f"{model:<7}{threads:>8}{r['flops_per_draw'] / 1e3:>11.0f}{r['matmul_flops_per_s'] / 1e9:>9.1f}"
                  f"{r['roofline_draws_per_s']:>11.0f}{r['draws_per_s']:>10.0f}{r['share_of_roofline']:>7.0%}"
                  f"{r['draws_per_s_256_galaxies_per_call']:>10.0f}{r['galaxies_per_s_images']:>10.1f}"
                  f"{r['draws_per_cpu_s']:>10.0f}{r['minor_faults_per_draw']:>9.2f}{r['load_average']:>6.1f}")
            if "draws_per_s_by_rows" in r:
                print("        draws/s by rows per call: " + ", ".join(
                    f"{rows}: {rate:.0f}" for rows, rate in r["draws_per_s_by_rows"].items()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {out / 'throughput.json'}")


if __name__ == "__main__":
    main()
