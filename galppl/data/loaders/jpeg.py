"""SDSS gri colour-composite JPEG cutouts (e.g. the Wu & Boada 2019 set) as a catalog.

An SDSS colour JPEG maps i -> red, r -> green, g -> blue (Lupton et al. 2004 composites),
after a non-linear display stretch. Its pixel values are therefore *not* fluxes: galppl
stores them in 0-1 with units ``"relative"`` and ``flux_calibrated = 0``, never as
nanomaggies.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import xarray as xr
from PIL import Image, UnidentifiedImageError

from galppl.data.loaders._common import sha256_of
from galppl.data.loaders.sdss_table import load_sdss_table
from galppl.data.schema import CHANNELS, CatalogError, attrs_for, flag, new_catalog, validate

# JPEG planes (R, G, B) hold SDSS (i, r, g); galppl's channel order is (g, r, i).
RGB_TO_CHANNELS = (2, 1, 0)
_ON_ERROR = ("raise", "flag")


def _image_id(stem: str):
    return int(stem) if stem.isdigit() else stem


def _find_images(folder: Path) -> dict:
    """id -> path of every ``<id>.jpg``/``.jpeg`` in ``folder`` or its ``images/`` subfolder."""
    where = folder / "images" if (folder / "images").is_dir() else folder
    files = sorted(p for p in where.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    return {_image_id(p.stem): p for p in files}


def _read_jpeg(path: Path, size: int) -> tuple[np.ndarray, list[str], int, str]:
    """(channel, y, x) float32 image in 0-1, notes on conversions, original side, file sha256."""
    data = path.read_bytes()
    notes = []
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # decode now: truncated or corrupt data fails here, not later
            if im.mode != "RGB":
                grey = " (grey copied to g, r, i)" if im.mode in ("L", "I", "F") else ""
                notes.append(f"mode {im.mode} -> RGB{grey}")
                im = im.convert("RGB")
            width, height = im.size
            if width != height:
                # Centre-crop to a square: resampling a rectangle to a square would distort shapes.
                side = min(width, height)
                left, top = (width - side) // 2, (height - side) // 2
                im = im.crop((left, top, left + side, top + side))
                notes.append(f"centre-cropped {width}x{height} -> {side}x{side}")
            rgb = np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise CatalogError(f"cannot read JPEG {str(path)!r}: {err}") from err
    side = rgb.shape[0]
    planes = [rgb[:, :, k] for k in RGB_TO_CHANNELS]
    if side != size:
        # Shrinking: area average (BOX), exact antialiasing with no ringing. Enlarging:
        # Lanczos, whose small overshoot is clipped back into 0-1.
        method = Image.Resampling.BOX if side > size else Image.Resampling.LANCZOS
        planes = [np.asarray(Image.fromarray(p, mode="F").resize((size, size), method)) for p in planes]
    image = np.clip(np.stack(planes), 0.0, 1.0).astype(np.float32)
    return image, notes, side, sha256_of(data)


def load_jpeg_cutouts(
    folder,
    size: int = 64,
    labels: str | None = "labels.csv",
    id_column: str = "objID",
    on_error: str = "raise",
) -> xr.Dataset:
    """Read SDSS gri colour-composite JPEGs named ``<id>.jpg`` into a catalog with ``image``.

    ``folder`` holds the JPEGs (directly or in an ``images/`` subfolder) and, unless
    ``labels`` is None, a labels CSV (a path relative to ``folder``, or absolute) read by
    :func:`load_sdss_table` with ``id_column`` as the galaxy id: MPA-JHU names such as
    ``oh_p50`` become ``oh`` / ``oh_detected`` and so on.

    ``image`` is (galaxy, channel=(g, r, i), y, x), float32 in 0-1, units ``"relative"``:
    the JPEG's display-stretched values (R = i, G = r, B = g), not nanomaggies. Each image
    is resampled to ``size`` x ``size`` (``size`` divisible by 8) by area averaging when
    shrinking and Lanczos when enlarging; grey or non-RGB images are converted to RGB and
    non-square ones centre-cropped, as the ``conversions`` attr records. The field of view
    varies per galaxy (about 2 x petroR90_r for the Wu & Boada set).

    A corrupt or unreadable JPEG, or a labelled galaxy without an image, raises a
    ``CatalogError`` naming it; with ``on_error="flag"`` the galaxy is kept with a NaN
    image and the ``bad_image`` bit. Images without a label row are kept, with NaN labels
    and the ``missing_target`` bit.
    """
    if size <= 0 or size % 8:
        raise ValueError(f"size must be a positive multiple of 8 (the encoder halves it three times), got {size}")
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"no cutout folder at {str(folder)!r}")
    images = _find_images(folder)

    table = None
    if labels is not None:
        table = load_sdss_table(folder / labels, columns={"galaxy": id_column}, keep_extra=True)
        ids = list(table["galaxy"].values.tolist())
        ids += [i for i in images if i not in set(ids)]
    else:
        ids = list(images)
    if not ids:
        raise CatalogError(f"{str(folder)!r} holds no .jpg images and no labels")

    n = len(ids)
    cube = np.full((n, len(CHANNELS), size, size), np.nan, dtype=np.float32)
    bad = np.zeros(n, dtype=bool)
    conversions, failures, digests, sides = [], [], [], {}
    for k, gid in enumerate(ids):
        path = images.get(gid)
        try:
            if path is None:
                raise CatalogError(f"galaxy {gid} has a label row but no image {gid}.jpg in {str(folder)!r}")
            cube[k], notes, side, digest = _read_jpeg(path, size)
            digests.append(f"{path.name} {digest}")
            sides[side] = sides.get(side, 0) + 1
            conversions += [f"{path.name}: {note}" for note in notes]
        except CatalogError as err:
            if on_error == "raise":
                raise
            bad[k] = True
            failures.append(str(err))

    ds = new_catalog(
        np.asarray(ids),
        source=f"SDSS gri colour-composite JPEGs in {folder}",
        attrs={
            "source_file": str(folder),
            # One digest over the per-file digests: which exact pixels this catalog holds.
            "source_sha256": sha256_of("\n".join(digests).encode()),
            "loader": "load_jpeg_cutouts",
        },
    )
    ds["image"] = (
        ("galaxy", "channel", "y", "x"),
        cube,
        attrs_for(
            "image",
            units="relative",
            description="SDSS gri colour composite (JPEG R=i, G=r, B=g), display-stretched values in 0-1",
            flux_calibrated=0,
            pixel_scale="varies: ~2 x petroR90_r field of view",
        ),
    )
    flag(ds, "bad_image", bad)
    read = ", ".join(f"{count} of {side}x{side}" for side, count in sorted(sides.items()))
    conversions.insert(0, f"JPEG RGB -> channels (g, r, i) = (B, G, R), /255; images read: {read or 'none'}")
    conversions.insert(1, f"resampled to {size}x{size} (area average when shrinking, Lanczos when enlarging)")
    if failures:
        conversions += [f"bad_image: {msg}" for msg in failures]
    if table is not None:
        _merge_labels(ds, table)
        ds.attrs["labels_file"] = table.attrs["source_file"]
        ds.attrs["labels_sha256"] = table.attrs["source_sha256"]
        conversions += ["labels: " + line for line in table.attrs["conversions"].splitlines()]
    ds.attrs["conversions"] = "\n".join(conversions)
    return validate(ds)


def _merge_labels(ds: xr.Dataset, table: xr.Dataset) -> None:
    """Copy the label variables onto ``ds`` (NaN, and ``missing_target``, for unlabelled images)."""
    labelled = np.isin(ds["galaxy"].values, table["galaxy"].values)
    aligned = table.reindex(galaxy=ds["galaxy"].values)
    for name, var in aligned.data_vars.items():
        if name == "quality":
            ds["quality"].values[:] |= np.where(labelled, var.fillna(0).values.astype(np.int32), 0)
            continue
        if name == "oh_detected":
            values = np.where(labelled, var.fillna(0).values, 0).astype(np.int8)  # unknown: not detected
            ds[name] = ("galaxy", values, var.attrs)
            continue
        ds[name] = (var.dims, var.values, var.attrs)
    flag(ds, "missing_target", ~labelled)
    for coord in ("ra", "dec"):
        if np.isfinite(aligned[coord].values).any():
            ds.coords[coord] = ("galaxy", aligned[coord].values, ds[coord].attrs)
