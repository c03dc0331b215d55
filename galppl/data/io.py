"""Save and load catalogs (netCDF through h5netcdf, or zarr) with an exact round trip."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from galppl.data.schema import CatalogError, validate


def _format(path: Path) -> str:
    if path.suffix in (".nc", ".h5", ".netcdf"):
        return "netcdf"
    if path.suffix == ".zarr":
        return "zarr"
    raise CatalogError(f"cannot tell the format of {str(path)!r}: use a '.nc' (netCDF) or '.zarr' path")


def save_catalog(ds: xr.Dataset, path) -> Path:
    """Validate ``ds`` and write it to ``path`` ('.nc' for netCDF-4, '.zarr' for zarr)."""
    path = Path(path)
    validate(ds)
    fmt = _format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "netcdf":
        ds.to_netcdf(path, engine="h5netcdf")
    else:
        # zarr format 2: format 3 has no stable specification for the string coords we store.
        ds.to_zarr(path, mode="w", consolidated=False, zarr_format=2)
    return path


def load_catalog(path) -> xr.Dataset:
    """Read a catalog written by ``save_catalog``, into memory, and validate it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no catalog at {str(path)!r}")
    fmt = _format(path)
    try:
        if fmt == "netcdf":
            with xr.open_dataset(path, engine="h5netcdf") as ds:
                ds = ds.load()
        else:
            with xr.open_zarr(path, consolidated=False) as ds:
                ds = ds.load()
    except (OSError, ValueError, KeyError) as err:
        raise CatalogError(f"{str(path)!r} is not a readable {fmt} catalog: {err}") from err
    return validate(ds)
