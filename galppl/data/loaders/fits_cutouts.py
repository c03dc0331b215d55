"""Calibrated gri FITS cutouts (nanomaggies per pixel) as a catalog with ``image``.

Accepted layouts, one galaxy per id:

1. one file ``<id>.fits`` whose first image HDU is a cube of 3 planes (3, y, x) in
   g, r, i order (or in the order named by header keys ``BAND1..3`` / ``FILTER1..3``);
2. one file ``<id>.fits`` with three 2-d image HDUs, each naming its band in a ``FILTER``
   or ``BAND`` header key (or, without such keys, in g, r, i order);
3. three files ``<id>_g.fits``, ``<id>_r.fits``, ``<id>_i.fits`` (``-g`` also accepted),
   one 2-d image each (only when a folder is given).

``.fit``, ``.fts`` and gzip-compressed (``.fits.gz``) files are read too. ``BUNIT``, when
present, must be nanomaggies; without it nanomaggies are assumed (and recorded).
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from PIL import Image

from galppl.data.loaders._common import sha256_of
from galppl.data.schema import CHANNELS, CatalogError, attrs_for, flag, new_catalog, validate

_SUFFIX = re.compile(r"\.(fits|fit|fts)(\.gz)?$", re.IGNORECASE)
_BAND_FILE = re.compile(r"^(?P<id>.+)[_-](?P<band>[gri])$")
_NANOMAGGY = {"nanomaggy", "nanomaggies", "nmgy", "nanomaggy/pixel", "nanomaggies/pixel"}
_ON_ERROR = ("raise", "flag")


def _gid(stem: str):
    return int(stem) if stem.isdigit() else stem


def _group(paths: list[Path]) -> dict:
    """id -> one path (layouts 1, 2) or {band: path} (layout 3)."""
    groups: dict = {}
    for path in sorted(paths):
        stem = _SUFFIX.sub("", path.name)
        match = _BAND_FILE.match(stem)
        if match:
            groups.setdefault(_gid(match["id"]), {})[match["band"]] = path
        else:
            groups[_gid(stem)] = path
    return groups


def _check_unit(header, path: Path) -> bool:
    """True if BUNIT says nanomaggies, False if absent; a ``CatalogError`` for anything else."""
    unit = str(header.get("BUNIT", "")).strip()
    if not unit:
        return False
    if unit.lower() not in _NANOMAGGY:
        raise CatalogError(f"{str(path)!r} has BUNIT={unit!r}; galppl's FITS cutouts must be in nanomaggies per pixel")
    return True


def _open(path: Path) -> tuple[fits.HDUList, str]:
    data = path.read_bytes()
    try:
        with warnings.catch_warnings():
            # astropy only warns that a file "may have been truncated": make it an error.
            warnings.simplefilter("error", AstropyUserWarning)
            hdul = fits.open(io.BytesIO(data), memmap=False)
            hdul.verify("exception")
            for hdu in hdul:
                _ = hdu.data  # decode now: a truncated file fails here
    except Exception as err:  # astropy raises OSError, ValueError, VerifyError, TypeError on bad bytes
        raise CatalogError(f"{str(path)!r} is not a readable FITS file (corrupt or truncated?): {err}") from err
    return hdul, sha256_of(data)


def _radec(headers) -> tuple[float, float]:
    """RA/DEC (deg) from the first header that has both keys, else NaN."""
    for header in headers:
        if "RA" in header and "DEC" in header:
            try:
                return float(header["RA"]), float(header["DEC"])
            except (TypeError, ValueError):
                continue
    return np.nan, np.nan


def _band_of(header, default: str) -> str:
    name = str(header.get("FILTER", header.get("BAND", default))).strip().lower()
    return name[:1] if name[:1] in CHANNELS else name


def _planes_from_file(path: Path) -> tuple[np.ndarray, list[str], str, tuple[float, float]]:
    """(3, y, x) in g, r, i order from layouts 1 or 2; notes; sha256; (ra, dec)."""
    hdul, digest = _open(path)
    images = [h for h in hdul if h.data is not None and getattr(h, "is_image", False)]
    notes = [] if all(_check_unit(h.header, path) for h in images) else [f"{path.name}: no BUNIT, nanomaggies assumed"]
    if len(images) == 1 and images[0].data.ndim == 3:
        cube, header = images[0].data, images[0].header
        if cube.shape[0] != len(CHANNELS):
            raise CatalogError(
                f"{str(path)!r} holds a cube of {cube.shape[0]} planes {cube.shape}; expected 3 planes (g, r, i)"
            )
        order = [_band_of({"BAND": header.get(f"BAND{k + 1}", header.get(f"FILTER{k + 1}", b))}, b)
                 for k, b in enumerate(CHANNELS)]
        planes = dict(zip(order, cube))
    elif len(images) == len(CHANNELS) and all(h.data.ndim == 2 for h in images):
        planes = {_band_of(h.header, b): h.data for h, b in zip(images, CHANNELS)}
    else:
        shapes = [h.data.shape for h in images]
        raise CatalogError(
            f"{str(path)!r} has image HDU shapes {shapes}; expected one (3, y, x) cube or three 2-d HDUs (g, r, i)"
        )
    if sorted(planes) != sorted(CHANNELS):
        raise CatalogError(f"{str(path)!r} names bands {list(planes)}; expected exactly g, r, i")
    cube = np.stack([np.asarray(planes[b], dtype=np.float64) for b in CHANNELS])
    return cube, notes, digest, _radec([h.header for h in hdul])


def _planes_from_band_files(files: dict, gid) -> tuple[np.ndarray, list[str], str, tuple[float, float]]:
    """(3, y, x) from layout 3: one 2-d image file per band."""
    missing = [b for b in CHANNELS if b not in files]
    if missing:
        raise CatalogError(f"galaxy {gid}: no file for band(s) {', '.join(missing)} (have {', '.join(sorted(files))})")
    planes, notes, digests, headers = [], [], [], []
    for b in CHANNELS:
        hdul, digest = _open(files[b])
        images = [h for h in hdul if h.data is not None and getattr(h, "is_image", False)]
        if len(images) != 1 or images[0].data.ndim != 2:
            shapes = [h.data.shape for h in images]
            raise CatalogError(f"{str(files[b])!r} must hold one 2-d image, has shapes {shapes}")
        if not _check_unit(images[0].header, files[b]):
            notes.append(f"{files[b].name}: no BUNIT, nanomaggies assumed")
        planes.append(np.asarray(images[0].data, dtype=np.float64))
        digests.append(digest)
        headers += [h.header for h in hdul]
    if len({p.shape for p in planes}) != 1:
        raise CatalogError(f"galaxy {gid}: band images differ in shape {[p.shape for p in planes]}")
    return np.stack(planes), notes, sha256_of(" ".join(digests).encode()), _radec(headers)


def _resample(cube: np.ndarray, size: int) -> np.ndarray:
    """Resample (3, n, n) to (3, size, size), conserving each plane's total flux."""
    side = cube.shape[-1]
    method = Image.Resampling.BOX if side > size else Image.Resampling.LANCZOS
    planes = [np.asarray(Image.fromarray(p.astype(np.float32), mode="F").resize((size, size), method)) for p in cube]
    # Resizing keeps surface brightness; pixels are flux per pixel, so scale by the area ratio.
    return np.stack(planes).astype(np.float64) * (side / size) ** 2


def load_fits_cutouts(source, size: int | None = None, on_error: str = "raise") -> xr.Dataset:
    """Read gri FITS cutouts in nanomaggies (see the module docstring for accepted layouts).

    ``source`` is a folder or a list of files (layouts 1-2 in a list; layout 3 needs a
    folder). Ids are the file names without suffix (integers when all digits). ``image`` is
    (galaxy, channel=(g, r, i), y, x), float32, nanomaggies per pixel. With ``size=None``
    every cutout must be square and the same size; otherwise each is resampled to ``size``
    (a multiple of 8) with total flux conserved. Header ``RA``/``DEC`` keys, if present,
    give the coordinates (deg).

    Wrong plane counts, unnamed or repeated bands, non-square images, non-nanomaggy BUNIT and
    corrupt files are ``CatalogError``s naming the file; with ``on_error="flag"`` a galaxy
    whose file cannot be used is kept with a NaN image and the ``bad_image`` bit. Images with
    NaN or infinite pixels are kept (infinities set NaN) and flagged ``bad_image``.
    """
    if size is not None and (size <= 0 or size % 8):
        raise ValueError(f"size must be None or a positive multiple of 8, got {size}")
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        folder = Path(source).resolve()
        paths = [p for p in folder.iterdir() if _SUFFIX.search(p.name)]
        where = str(folder)
    else:
        paths = [Path(p).resolve() for p in ([source] if isinstance(source, (str, Path)) else source)]
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(f"no FITS cutout at {str(p)!r}")
        where = f"{len(paths)} files"
    groups = _group(paths)
    if not groups:
        raise CatalogError(f"no FITS files (.fits, .fit, .fts, .gz) in {where}")

    cubes, notes, digests, failures, radec = {}, [], [], {}, {}
    for gid, item in groups.items():
        try:
            read = _planes_from_band_files(item, gid) if isinstance(item, dict) else _planes_from_file(item)
            cube, more, digest, radec[gid] = read
            if cube.shape[1] != cube.shape[2]:
                raise CatalogError(f"galaxy {gid}: cutout is not square, {cube.shape[1]}x{cube.shape[2]}")
            cubes[gid] = cube
            notes += more
            digests.append(f"{gid} {digest}")
        except CatalogError as err:
            if on_error == "raise":
                raise
            failures[gid] = str(err)

    sides = sorted({c.shape[-1] for c in cubes.values()})
    if size is None:
        if len(sides) > 1:
            raise CatalogError(f"cutouts differ in size {sides}; pass size=... to resample them to one size")
        size = sides[0] if sides else 8
    ids = list(groups)
    image = np.full((len(ids), len(CHANNELS), size, size), np.nan, dtype=np.float32)
    for k, gid in enumerate(ids):
        if gid in cubes:
            cube = cubes[gid]
            image[k] = cube if cube.shape[-1] == size else _resample(cube, size)
    finite = np.isfinite(image)
    image[np.isinf(image)] = np.nan

    ra, dec = np.array([radec.get(gid, (np.nan, np.nan)) for gid in ids]).reshape(len(ids), 2).T
    ds = new_catalog(
        np.asarray(ids),
        ra,
        dec,
        source=f"gri FITS cutouts ({where})",
        attrs={"source_file": where, "source_sha256": sha256_of("\n".join(digests).encode()),
               "loader": "load_fits_cutouts"},
    )
    ds["image"] = (("galaxy", "channel", "y", "x"), image, attrs_for("image", flux_calibrated=1))
    flag(ds, "bad_image", ~finite.reshape(len(ids), -1).all(axis=1))
    conversions = [f"cutout sizes read: {sides}; image size {size}x{size}"]
    if any(s != size for s in sides):
        conversions.append(f"resampled to {size}x{size}: area average / Lanczos, total flux conserved")
    conversions += notes + [f"bad_image: {msg}" for msg in failures.values()]
    ds.attrs["conversions"] = "\n".join(conversions)
    return validate(ds)
