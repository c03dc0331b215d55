"""Shared plumbing of the loaders: reading files safely, provenance, sentinels, extras."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from galppl.data.schema import CatalogError, validate


def sha256_of(data: bytes) -> str:
    """Hex sha256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def provenance(path: Path, data: bytes, loader: str) -> dict:
    """The attrs every loaded catalog carries: which file, which bytes, which loader."""
    return {"source_file": str(path), "source_sha256": sha256_of(data), "loader": loader}


def read_bytes(path) -> tuple[Path, bytes]:
    """``(resolved path, contents)``; a clear ``FileNotFoundError`` when it is not there."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no file at {str(path)!r}")
    return path, path.read_bytes()


def read_csv(path: Path, data: bytes, **kwargs) -> pd.DataFrame:
    """Parse CSV bytes strictly: every row must have the header's number of fields.

    pandas pads short rows with NaN without a word, which is how a truncated download
    would slip through as "missing values"; here it is a ``CatalogError`` naming the file
    and the line. A UTF-8 byte-order mark is stripped (``utf-8-sig``).
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CatalogError(f"{str(path)!r} is not UTF-8 text (is it a CSV file?): {err}") from err
    if not text.strip():
        raise CatalogError(f"{str(path)!r} is empty: expected a CSV file with a header row")
    start = text.lstrip()[:512].lower()
    if start.startswith(("<!doctype", "<html", "<?xml", "<head", "<body")) or "<html" in start:
        raise CatalogError(f"{str(path)!r} is an HTML/XML page, not a CSV table (an error page saved by a failed "
                           "download?): download the table again")
    rows = csv.reader(io.StringIO(text))
    header = next(rows)
    for line, row in enumerate(rows, start=2):
        if row and len(row) != len(header):
            raise CatalogError(
                f"{str(path)!r} line {line} has {len(row)} fields but the header has {len(header)}: "
                "the file is truncated or corrupt"
            )
    try:
        table = pd.read_csv(io.StringIO(text), **kwargs)
    except (pd.errors.ParserError, ValueError) as err:
        raise CatalogError(f"{str(path)!r} is not a readable CSV file: {err}") from err
    if len(table) == 0:
        raise CatalogError(f"{str(path)!r} has a header row ({', '.join(header[:5])}{', ...' if len(header) > 5 else ''}) "
                           "but no rows: a catalog of 0 galaxies")
    return table


def require_columns(table: pd.DataFrame, columns, path: Path) -> None:
    """``CatalogError`` naming the missing columns and the ones the file has."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise CatalogError(
            f"{str(path)!r} lacks column(s) {', '.join(missing)}; it has: {', '.join(map(str, table.columns))}"
        )


def numeric(table: pd.DataFrame, column: str, path) -> np.ndarray:
    """Column ``column`` as float64 (empty cells -> NaN); text in it is a ``CatalogError``."""
    try:
        return pd.to_numeric(table[column], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as err:
        raise CatalogError(f"column {column!r} of {str(path)!r} must be numeric: {err}") from err


def whole(values: np.ndarray) -> np.ndarray:
    """Counts and codes as int64 when every value is a finite whole number, else unchanged."""
    if np.isfinite(values).all() and (values == np.round(values)).all():
        return values.astype(np.int64)
    return values


def drop_sentinels(values: np.ndarray, sentinels=(), below: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Replace sentinel values by NaN: ``(cleaned copy, mask of replaced entries)``.

    ``sentinels`` are exact codes (e.g. -9999); ``below`` additionally catches any value
    <= it (e.g. -99 for a log quantity, where such values cannot be real).
    """
    values = np.array(values, dtype=np.float64)
    hit = np.isin(values, np.asarray(sentinels, dtype=np.float64)) if len(sentinels) else np.zeros(values.shape, bool)
    if below is not None:
        with np.errstate(invalid="ignore"):
            hit |= values <= below
    values[hit] = np.nan
    return values, hit


def add_variable(ds: xr.Dataset, name: str, values, units: str, description: str, **attrs) -> None:
    """Add a per-galaxy variable with ``units``/``description`` attrs (plus provenance attrs)."""
    ds[name] = ("galaxy", np.asarray(values), {"units": units, "description": description, **attrs})


def text_values(table: pd.DataFrame, column: str) -> np.ndarray:
    """A text column as a numpy unicode array ('' for empty cells): round-trips exactly through netCDF and zarr."""
    return table[column].fillna("").astype(str).to_numpy(dtype=str)


def finish(ds: xr.Dataset, conversions: list[str]) -> xr.Dataset:
    """Record what the loader converted (one line each, in the ``conversions`` attr) and validate."""
    ds.attrs["conversions"] = "\n".join(conversions)
    return validate(ds)
