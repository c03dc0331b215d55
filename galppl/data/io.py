"""Catalog files: save and load galppl catalogs (netCDF, zarr) with an exact round trip, read a
user's catalog in any format galppl knows, and read a large one a range of rows at a time.

Formats (:func:`catalog_format`, from the path's suffix):

- ``"netcdf"`` (``.nc``, ``.h5``, ``.netcdf``) and ``"zarr"`` (``.zarr``): catalogs in galppl's
  data model, as :func:`save_catalog` writes them;
- ``"fits"`` (``.fits``, ``.fit``, ``.fts``), ``"parquet"`` (``.parquet``, ``.pq``) and
  ``"csv"`` (``.csv``): SDSS / MPA-JHU style tables, read through
  :func:`~galppl.data.loaders.load_sdss_table` (its column names and missing-value codes).

:class:`CatalogRows` reads rows ``[start, stop)`` of a catalog without reading the rest
(zarr and netCDF index their arrays, FITS tables are memory-mapped, parquet is read by row
group), which is what :func:`galppl.scale.predict_catalog` needs to stream a survey.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from galppl.data.files import CHECKSUM_ATTR, CorruptFileError, array_checksums, atomic_path, verify_checksums
from galppl.data.schema import CatalogError, flag, validate

FORMATS = {
    ".nc": "netcdf", ".h5": "netcdf", ".netcdf": "netcdf", ".zarr": "zarr",
    ".fits": "fits", ".fit": "fits", ".fts": "fits", ".parquet": "parquet", ".pq": "parquet", ".csv": "csv",
}
# Formats that hold galppl catalogs (the others are tables in an SDSS layout).
GALPPL_FORMATS = ("netcdf", "zarr")
# Formats CatalogRows reads a range of rows of without reading the whole file.
ROW_FORMATS = ("netcdf", "zarr", "fits", "parquet")
# What the file libraries raise on a corrupt file: h5py and numcodecs (RuntimeError "error
# during blosc decompression", "incorrect metadata checksum"), zarr's string decoding
# (SystemError), astropy (KeyError for a lost header keyword; VerifyError is an Exception).
# Each is turned into a CatalogError naming the file (benchmarks/fuzz_loaders.py finds them).
UNREADABLE = (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError, SystemError)


def _unreadable_errors() -> tuple[type[Exception], ...]:
    from astropy.io.fits.verify import VerifyError

    return (*UNREADABLE, VerifyError)


def catalog_format(path) -> str:
    """The format of a catalog file from its suffix: a value of :data:`FORMATS`; a
    ``CatalogError`` naming the path and the suffixes galppl reads otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise CatalogError(f"cannot tell the format of {str(path)!r}: use one of the suffixes {', '.join(FORMATS)}")
    return FORMATS[suffix]


def _galppl_format(path: Path) -> str:
    fmt = catalog_format(path)
    if fmt not in GALPPL_FORMATS:
        raise CatalogError(f"cannot tell the format of {str(path)!r} as a galppl catalog ({fmt} is a table "
                           "format, which read_catalog reads): use a '.nc' (netCDF) or '.zarr' path")
    return fmt


def save_catalog(ds: xr.Dataset, path) -> Path:
    """Validate ``ds`` and write it to ``path`` ('.nc' for netCDF-4, '.zarr' for zarr).

    The file is written under a temporary name beside ``path`` and renamed into place when
    complete (:func:`~galppl.data.files.atomic_path`): a killed save leaves the earlier file.
    The sha256 of every array goes into the ``galppl_sha256`` attr, which :func:`load_catalog`
    checks; a zarr store gets every chunk written, even one equal to the fill value, so that a
    missing chunk file is always an error.
    """
    path = Path(path)
    validate(ds)
    fmt = _galppl_format(path)
    stamped = ds.copy(deep=False)
    stamped.attrs = {**{k: v for k, v in ds.attrs.items() if k != CHECKSUM_ATTR},
                     CHECKSUM_ATTR: json.dumps(array_checksums(ds), sort_keys=True)}
    with atomic_path(path) as temporary:
        if fmt == "netcdf":
            stamped.to_netcdf(temporary, engine="h5netcdf")
        else:
            # zarr format 2: format 3 has no stable specification for the string coords we store.
            stamped.to_zarr(temporary, mode="w", consolidated=False, zarr_format=2, write_empty_chunks=True)
    return path


def _open(path: Path, fmt: str) -> xr.Dataset:
    """A galppl catalog opened lazily (nothing read until indexed)."""
    try:
        if fmt == "netcdf":
            return xr.open_dataset(path, engine="h5netcdf")
        return xr.open_zarr(path, consolidated=False, chunks=None)
    except UNREADABLE as err:
        raise CatalogError(f"{str(path)!r} is not a readable {fmt} catalog: {err}") from err


def load_catalog(path) -> xr.Dataset:
    """Read a catalog written by ``save_catalog``, into memory, and validate it.

    The arrays are checked against the checksums ``save_catalog`` recorded (a
    :class:`~galppl.data.files.CorruptFileError` names the file and the variables that
    changed, and a zarr chunk file that is gone); the checksums are not carried into the
    returned catalog, which a user may change and save again. A catalog written without
    checksums (by xarray directly, or by a galppl without checksums) is read unchecked.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no catalog at {str(path)!r}")
    fmt = _galppl_format(path)
    if fmt == "zarr":
        check_zarr_chunks(path)
    with _open(path, fmt) as ds:
        try:
            ds = ds.load()
        except UNREADABLE as err:
            if isinstance(err, CatalogError):
                raise
            raise CatalogError(f"{str(path)!r} is not a readable {fmt} catalog: {err}") from err
    recorded = ds.attrs.pop(CHECKSUM_ATTR, None)
    if recorded is not None:
        try:
            recorded = json.loads(recorded)
        except (TypeError, json.JSONDecodeError):
            raise CorruptFileError(f"{str(path)!r} is corrupt: its {CHECKSUM_ATTR!r} attr is not the JSON "
                                   "galppl wrote") from None
        verify_checksums(ds, recorded, path)
    return validate(ds)


def check_zarr_chunks(path) -> None:
    """Raise :class:`~galppl.data.files.CorruptFileError` naming the first chunk files that a
    zarr (format 2) store written by galppl lacks: zarr reads a missing chunk as the fill value
    (NaN or 0), so a lost file would otherwise load as data. Stores without galppl's checksum
    attr may leave fill-value chunks unwritten and are not checked."""
    path = Path(path)
    root = _zarr_json(path / ".zattrs")
    if root is None or CHECKSUM_ATTR not in root:
        return
    missing = []
    for meta_file in sorted(path.glob("*/.zarray")):
        meta = _zarr_json(meta_file)
        if meta is None:
            raise CorruptFileError(f"{str(meta_file)!r} is not readable zarr metadata: the store is corrupt")
        separator = meta.get("dimension_separator") or "."
        counts = [max(1, -(-int(n) // int(c))) for n, c in zip(meta["shape"], meta["chunks"])]
        for index in np.ndindex(*counts) if counts else [(0,)]:
            key = separator.join(map(str, index))
            if not (meta_file.parent / key).exists():
                missing.append(f"{meta_file.parent.name}/{key}")
    if missing:
        raise CorruptFileError(f"{str(path)!r} is corrupt: chunk file(s) {', '.join(missing[:5])}"
                               f"{' and more' if len(missing) > 5 else ''} are missing (zarr would read them as "
                               "NaN or 0); restore the store from a good copy or write it again")


def _zarr_json(path: Path):
    """A zarr metadata file's JSON; None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_catalog(path, cutouts=None) -> xr.Dataset:
    """Read a whole catalog in any format of :data:`FORMATS` into memory, validated.

    cutouts: a folder of gri FITS cutouts (:func:`~galppl.data.loaders.load_fits_cutouts`,
    named by galaxy id) whose images join the catalog's galaxies by id; a galaxy without a
    cutout gets a NaN image and the ``bad_image`` quality bit, a cutout without a galaxy in
    the catalog is left out.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no catalog at {str(path)!r}")
    fmt = catalog_format(path)
    if fmt in GALPPL_FORMATS:
        catalog = load_catalog(path)
    elif fmt == "csv":
        from galppl.data.loaders import load_sdss_table

        catalog = load_sdss_table(path)
    else:
        rows = CatalogRows(path)
        catalog = rows.read(0, rows.n_galaxies)
    return catalog if cutouts is None else _with_cutouts(catalog, cutouts)


def _with_cutouts(catalog: xr.Dataset, folder) -> xr.Dataset:
    from galppl.data.loaders import load_fits_cutouts

    if not Path(folder).is_dir():
        raise FileNotFoundError(f"--cutouts {str(folder)!r}: no such folder")
    cutouts = load_fits_cutouts(folder, on_error="flag")
    ids = catalog["galaxy"].values
    # Cutout file names are ids as text (integers when all digits): compare as text.
    position = {str(gid): i for i, gid in enumerate(cutouts["galaxy"].values)}
    found = np.array([str(gid) in position for gid in ids])
    if not found.any():
        raise CatalogError(f"none of the {len(ids)} catalog galaxies has a cutout in {str(folder)!r} "
                           f"(cutouts are named by galaxy id, e.g. {cutouts['galaxy'].values[0]}.fits; "
                           f"catalog ids look like {ids[0]})")
    image = np.full((len(ids),) + cutouts["image"].shape[1:], np.nan, np.float32)
    image[found] = cutouts["image"].values[[position[str(gid)] for gid in ids[found]]]
    out = catalog.copy()
    out = out.assign_coords(channel=cutouts["channel"].values)
    out["image"] = (("galaxy", "channel", "y", "x"), image, dict(cutouts["image"].attrs))
    bad = ~found
    if "quality" in cutouts:
        bad[found] |= cutouts["quality"].values[[position[str(gid)] for gid in ids[found]]] != 0
    flag(out, "bad_image", bad)
    return validate(out)


class CatalogRows:
    """A catalog file read a range of rows at a time (formats :data:`ROW_FORMATS`).

    Holds only the path, so it pickles small and each Dask worker opens the file itself.
    ``n_galaxies``: the number of rows. :meth:`read` gives rows ``[start, stop)`` as a
    validated galppl catalog; a table without an id column numbers its galaxies by row in
    the whole file (not in the range), so ids stay unique across ranges.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no catalog at {str(self.path)!r}")
        self.format = catalog_format(self.path)
        if self.format == "zarr":
            check_zarr_chunks(self.path)
        if self.format not in ROW_FORMATS:
            raise CatalogError(f"{str(self.path)!r}: a {self.format} file cannot be read a range of rows at a time; "
                               f"convert it to one of {ROW_FORMATS}")
        try:
            self.n_galaxies = self._count()
        except _unreadable_errors() as err:
            if isinstance(err, CatalogError):
                raise
            raise CatalogError(f"{str(self.path)!r} is not a readable {self.format} file: {err}") from err

    def __repr__(self) -> str:
        return f"CatalogRows({str(self.path)!r}, format={self.format!r}, n_galaxies={self.n_galaxies})"

    def _count(self) -> int:
        if self.format in GALPPL_FORMATS:
            with _open(self.path, self.format) as ds:
                return int(ds.sizes["galaxy"])
        if self.format == "fits":
            from astropy.io import fits

            with fits.open(self.path, memmap=True) as hdul:
                return int(self._table_hdu(hdul).header["NAXIS2"])
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(self.path).metadata.num_rows)

    def _table_hdu(self, hdul):
        for hdu in hdul:
            if hdu.is_image is False:
                return hdu
        raise CatalogError(f"{str(self.path)!r} has no table extension")

    def read(self, start: int, stop: int) -> xr.Dataset:
        """Rows ``[start, stop)`` (0-based, clipped to the catalog) as a validated catalog."""
        start, stop = max(0, int(start)), min(self.n_galaxies, int(stop))
        if self.format in GALPPL_FORMATS:
            with _open(self.path, self.format) as ds:
                try:
                    rows = ds.isel(galaxy=slice(start, stop)).load()
                except UNREADABLE as err:
                    raise CatalogError(f"{str(self.path)!r} is not a readable {self.format} catalog: {err}") from err
            # The checksums are of the whole arrays; a range cannot be checked against them.
            rows.attrs.pop(CHECKSUM_ATTR, None)
            return validate(rows)
        from galppl.data.loaders import load_sdss_table

        try:
            rows = self._fits_rows(start, stop) if self.format == "fits" else self._parquet_rows(start, stop)
        except _unreadable_errors() as err:
            raise CatalogError(f"{str(self.path)!r} is not a readable {self.format} table: {err}") from err
        catalog = load_sdss_table(rows)
        catalog.attrs["source_file"] = str(self.path)
        if catalog["galaxy"].attrs.get("description") == "row number in the source (0-based)":
            catalog = catalog.assign_coords(galaxy=catalog["galaxy"].values + start)
            catalog["galaxy"].attrs["description"] = "row number in the source file (0-based)"
        return catalog

    def _fits_rows(self, start: int, stop: int):
        from astropy.io import fits
        from astropy.table import Table

        with fits.open(self.path, memmap=True) as hdul:
            # Copying the slice reads only its rows from the memory map.
            return Table(self._table_hdu(hdul).data[start:stop].copy())

    def _parquet_rows(self, start: int, stop: int):
        import pyarrow as pa
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(self.path)
        groups, first, offset = [], None, 0
        for g in range(parquet.metadata.num_row_groups):
            size = parquet.metadata.row_group(g).num_rows
            if offset < stop and offset + size > start:
                groups.append(g)
                first = offset if first is None else first
            offset += size
        if not groups:
            return parquet.schema_arrow.empty_table().to_pandas()
        table: pa.Table = parquet.read_row_groups(groups)
        return table.slice(start - first, stop - start).to_pandas()
