"""predict_catalog at survey scale: time per galaxy and peak memory for 1e5 and 1e6 galaxies,
and a run killed half-way then resumed against an uninterrupted one.

A props model with the default architecture (photometry inputs; fitted for one epoch on
20,000 mock galaxies: speed does not depend on the weights) predicts catalogs of N mock
galaxies (the 20,000 repeated under new ids, written to zarr) with ``--num-samples`` draws
each. Each run is a fresh Python process, so its peak resident memory (``ru_maxrss``) is its
own: flat memory means the peak does not grow with N, linear time that seconds per galaxy
stay level. Then a run on the smallest catalog is killed (SIGKILL) once half its chunks are
done, resumed by a second process, and its store compared with the uninterrupted run's.

Usage: .venv/bin/python benchmarks/scale.py [--quick] [--sizes 100000 1000000] [--out runs/benchmarks/]
Prints a table and writes ``<out>/scale.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

BASE = 20000


def make_catalog(base: xr.Dataset, n: int, path: Path) -> Path:
    """``base`` repeated to ``n`` galaxies (ids 0..n-1), written to zarr piece by piece."""
    from galppl.data import save_catalog

    keep = [name for name in ("mag", "mag_err", "extinction", "quality") if name in base]
    base = base[keep]
    for start in range(0, n, len(base["galaxy"])):
        piece = base.isel(galaxy=slice(0, min(len(base["galaxy"]), n - start)))
        piece = piece.assign_coords(galaxy=np.arange(start, start + piece.sizes["galaxy"]))
        if start == 0:
            save_catalog(piece, path)
        else:
            piece.to_zarr(path, append_dim="galaxy", consolidated=False, zarr_format=2)
    return path


def child(model: str, catalog: str, out: str, num_samples: int, chunk_size: int) -> None:
    """One predict_catalog run in this process; prints its seconds and peak memory as JSON."""
    import warnings

    import torch

    import galppl
    from galppl.scale import predict_catalog

    torch.set_num_threads(1)
    warnings.simplefilter("ignore", galppl.ood.OutOfDistributionWarning)
    posterior = galppl.load(model)
    start = time.perf_counter()
    predict_catalog(posterior, catalog, out, num_samples, chunk_size=chunk_size, progress=False)
    print(json.dumps({"seconds": time.perf_counter() - start,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def spawn(args, catalog: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--child", str(args.model), str(catalog), str(out),
                             str(args.num_samples), str(args.chunk_size)], stdout=subprocess.PIPE, text=True)


def done_share(out: Path) -> float:
    """The share of the store's chunks marked done (0 while the store is being created)."""
    import warnings

    try:
        with warnings.catch_warnings(), xr.open_zarr(out, consolidated=False) as store:
            warnings.simplefilter("ignore")  # a store half created by the child
            return float(store["chunk_done"].values.mean())
    except (OSError, KeyError, ValueError):
        return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 and 30,000 galaxies")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--out", default="runs/benchmarks")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, catalog, out, num_samples, chunk_size = args.child
        child(model, catalog, out, int(num_samples), int(chunk_size))
        return
    if args.quick:
        args.sizes, args.chunk_size = [10_000, 30_000], 2048
    import galppl

    work = Path(args.out) / "scale_work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    base = galppl.simulate(BASE, seed=0, image_size=None, progress=False)
    args.model = galppl.fit("props", base, inputs="photometry", max_epochs=1, progress=False).save(work / "model")
    results: dict = {"num_samples": args.num_samples, "chunk_size": args.chunk_size, "runs": {}}
    print(f"{'galaxies':>10}{'seconds':>9}{'ms/galaxy':>11}{'peak MiB':>10}")
    for n in args.sizes:
        catalog = make_catalog(base, n, work / f"sky_{n}.zarr")
        process = spawn(args, catalog, work / f"out_{n}.zarr")
        run = json.loads(process.communicate()[0].strip().splitlines()[-1])
        results["runs"][n] = {**run, "ms_per_galaxy": 1e3 * run["seconds"] / n}
        print(f"{n:>10}{run['seconds']:>9.1f}{1e3 * run['seconds'] / n:>11.3f}{run['peak_mib']:>10.0f}", flush=True)

    n = args.sizes[0]
    killed = work / f"killed_{n}.zarr"
    process = spawn(args, work / f"sky_{n}.zarr", killed)
    while done_share(killed) < 0.5 and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    share = done_share(killed)
    spawn(args, work / f"sky_{n}.zarr", killed).communicate()
    with xr.open_zarr(killed, consolidated=False) as resumed, \
            xr.open_zarr(work / f"out_{n}.zarr", consolidated=False) as whole:
        identical = resumed.load().identical(whole.load())
    results["killed_and_resumed"] = {"galaxies": n, "done_when_killed": share, "identical": identical}
    print(f"killed at {share:.0%} of {n} galaxies' chunks, resumed: output identical to the uninterrupted run: "
          f"{identical}")
    (Path(args.out) / "scale.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {Path(args.out) / 'scale.json'}")


if __name__ == "__main__":
    main()
