"""Fuzz galppl's catalog and cutout loaders with mutated bytes for a bounded time.

Seeds: a mock catalog saved as netCDF and zarr, an SDSS-style CSV, a FITS table, a folder of
gri FITS cutouts and a folder of JPEG composites. Each trial copies one seed, mutates its bytes
(bit flips, byte overwrites, truncation, a deleted or emptied zarr chunk, a spliced block, an
HTML page in place of the file) and reads it with the loader of its kind. Outcomes:

- ``loaded``: read without error (the mutation left valid data, or one the checks cannot see);
- ``clean error``: a ``ValueError`` (``CatalogError``, ``CorruptFileError``, ``ImageError``)
  or ``OSError`` with a message naming the file or the problem;
- ``crash``: any other exception, or a clean type whose message is empty; printed with the
  mutation so that it can be reproduced.

    python benchmarks/fuzz_loaders.py --seconds 60 [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

import galppl
from galppl.data.io import CatalogRows, read_catalog, save_catalog
from galppl.data.loaders import load_fits_cutouts, load_jpeg_cutouts


def build_seeds(folder: Path) -> dict[str, Path]:
    """The valid files each trial starts from."""
    from astropy.io import fits
    from astropy.table import Table
    from PIL import Image

    catalog = galppl.simulate(40, seed=0, image_size=16, progress=False)
    seeds = {"netcdf": save_catalog(catalog, folder / "seed.nc"), "zarr": save_catalog(catalog, folder / "seed.zarr")}
    mag = catalog["mag"].values
    table = {"objID": np.arange(40), "ra": catalog["ra"].values, "dec": catalog["dec"].values, "z": catalog["z"].values,
             **{f"petroMag_{b}": mag[:, k] for k, b in enumerate("ugriz")}}
    (folder / "seed.csv").write_text(",".join(table) + "\n" + "\n".join(
        ",".join(f"{table[c][i]}" for c in table) for i in range(40)) + "\n")
    seeds["csv"] = folder / "seed.csv"
    Table(table).write(folder / "seed.fits")
    seeds["fits"] = folder / "seed.fits"
    cutouts = folder / "cutouts"
    cutouts.mkdir()
    for i in range(4):
        hdu = fits.PrimaryHDU(catalog["image"].values[i])
        hdu.header["BUNIT"] = "nanomaggy"
        hdu.writeto(cutouts / f"{i}.fits")
    seeds["fits_cutouts"] = cutouts
    jpegs = folder / "jpegs"
    jpegs.mkdir()
    for i in range(4):
        pixels = (np.random.default_rng(i).random((64, 64, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(jpegs / f"{i}.jpg", quality=90)
    seeds["jpeg_cutouts"] = jpegs
    return seeds


def read(kind: str, path: Path):
    """Read a (mutated) copy with the loader of its kind."""
    if kind == "zarr":
        CatalogRows(path).read(0, 10)
        return read_catalog(path)
    if kind == "fits_cutouts":
        return load_fits_cutouts(path)
    if kind == "jpeg_cutouts":
        return load_jpeg_cutouts(path, size=16, labels=None)
    return read_catalog(path)


def files_of(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def mutate(path: Path, rng: np.random.Generator) -> str:
    """Mutate a file (or one file of a folder) in place; describe what was done."""
    target = files_of(path)[rng.integers(len(files_of(path)))]
    data = bytearray(target.read_bytes())
    how = rng.choice(["flip", "overwrite", "truncate", "splice", "empty", "html", "delete"])
    if how == "delete" and path.is_dir() and target.name not in (".zarray", ".zattrs", ".zgroup"):
        target.unlink()
    elif how == "flip" and data:
        for _ in range(int(rng.integers(1, 8))):
            k = int(rng.integers(len(data)))
            data[k] ^= 1 << int(rng.integers(8))
    elif how == "overwrite" and data:
        k = int(rng.integers(len(data)))
        data[k:k + 16] = rng.integers(0, 256, min(16, len(data) - k), dtype=np.uint8).tobytes()
    elif how == "truncate":
        data = data[: int(rng.integers(len(data) + 1))]
    elif how == "splice" and data:
        k, n = int(rng.integers(len(data))), int(rng.integers(1, 64))
        data[k:k] = data[max(0, k - n):k]
    elif how == "empty":
        data = bytearray()
    elif how == "html":
        data = bytearray(b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>")
    if target.exists():
        target.write_bytes(bytes(data))
    return f"{how} {target.relative_to(path.parent)}"


def clean(error: BaseException) -> bool:
    """galppl's clean errors: a ValueError or OSError with a message."""
    return isinstance(error, (ValueError, OSError)) and bool(str(error).strip())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="wall-clock budget (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    crashes = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        seeds = build_seeds(scratch / "seeds")
        kinds = sorted(seeds)
        stop = time.perf_counter() + args.seconds
        trial = 0
        while time.perf_counter() < stop:
            kind = kinds[trial % len(kinds)]
            copy = scratch / f"trial{trial}" / seeds[kind].name
            copy.parent.mkdir()
            (shutil.copytree if seeds[kind].is_dir() else shutil.copy)(seeds[kind], copy)
            what = mutate(copy, rng)
            try:
                read(kind, copy)
                outcomes[kind]["loaded"] += 1
            except Exception as error:  # noqa: BLE001 - sorting every exception is the point
                if clean(error):
                    outcomes[kind]["clean error"] += 1
                else:
                    outcomes[kind]["crash"] += 1
                    crashes.append((kind, what, "".join(traceback.format_exception_only(type(error), error)).strip()))
            shutil.rmtree(copy.parent, ignore_errors=True)
            trial += 1
    print(f"fuzz_loaders: {trial} inputs in {args.seconds:g} s (seed {args.seed})")
    print(f"{'loader':<14}{'tried':>7}{'loaded':>8}{'clean error':>13}{'crash':>7}")
    for kind in kinds:
        counts = outcomes[kind]
        print(f"{kind:<14}{sum(counts.values()):>7}{counts['loaded']:>8}{counts['clean error']:>13}{counts['crash']:>7}")
    total = collections.Counter()
    for counts in outcomes.values():
        total.update(counts)
    print(f"{'all':<14}{sum(total.values()):>7}{total['loaded']:>8}{total['clean error']:>13}{total['crash']:>7}")
    for kind, what, message in crashes[:20]:
        print(f"CRASH {kind}: {what}: {message[:300]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
