"""A generic loader for SDSS / MPA-JHU style catalogs: CSV, FITS tables, astropy Tables.

Column names are matched case-insensitively (CasJobs writes ``objID``, the MPA-JHU FITS
files ``LGM_TOT_P50``). :data:`DEFAULT_COLUMNS` says, for each galppl variable, which
source columns are tried in turn; ``columns={...}`` overrides any of them.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import xarray as xr
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning

from galppl.data.loaders._common import (
    drop_sentinels,
    finish,
    provenance,
    read_bytes,
    read_csv,
)
from galppl.data.schema import BANDS, KNOWN, CatalogError, attrs_for, flag, new_catalog
from galppl.physics import MSIGMA_BETA, log_mbh_from_sigma

# Magnitude types in order of preference: model magnitudes are SDSS's recommendation for
# colours (Stoughton et al. 2002), which is what the models learn from.
MAG_TYPES = ("modelMag", "cModelMag", "petroMag")

# After SDSS's and MPA-JHU's names, galppl's own (a table a user wrote from a galppl catalog,
# or the shared DR9 extract: mag_u..mag_z, redshift, stellar_mass in log10 Msun; its
# float-rounded ids repeat, so its rows are numbered). A column in other units than galppl's
# (:data:`UNIT_MISTAKES`) is refused.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "galaxy": ("objID", "objid", "specObjID", "galaxy"),
    "ra": ("ra",),
    "dec": ("dec",),
    **{f"mag_{b}": (*(f"{t}_{b}" for t in MAG_TYPES), f"mag_{b}") for b in BANDS},
    **{f"mag_err_{b}": (*(f"{t}Err_{b}" for t in MAG_TYPES), f"mag_err_{b}") for b in BANDS},
    **{f"extinction_{b}": (f"extinction_{b}",) for b in BANDS},
    "z": ("z", "redshift"),
    "log_mstar": ("lgm_tot_p50", "log_mstar", "stellar_mass"),
    "log_sfr": ("sfr_tot_p50", "log_sfr"),
    "oh": ("oh_p50", "oh"),
    "sigma": ("v_disp", "sigma", "velDisp"),
    "sigma_err": ("v_disp_err", "sigma_err", "velDispErr"),
    "flux_halpha": ("h_alpha_flux",),
    "flux_hbeta": ("h_beta_flux",),
    "flux_nii": ("nii_6584_flux",),
    "flux_oiii": ("oiii_5007_flux",),
    **{f"{line}_err": (f"{col}_err",) for line, col in (
        ("flux_halpha", "h_alpha_flux"), ("flux_hbeta", "h_beta_flux"),
        ("flux_nii", "nii_6584_flux"), ("flux_oiii", "oiii_5007_flux"),
    )},
}
"""galppl name -> source columns tried in order (case-insensitive). ``mag_<b>``,
``mag_err_<b>``, ``extinction_<b>`` fill the (galaxy, band) variables. MPA-JHU's
``*_p16``/``*_p84`` give ``log_mstar_err``, ``log_sfr_err`` and ``oh_err`` as half the
16-84 percentile range when both are present."""

# MPA-JHU percentile columns: the 1-sigma error is half the 16-84 range.
_PERCENTILE_ERRORS = {"log_mstar": "lgm_tot", "log_sfr": "sfr_tot", "oh": "oh"}

# Values that say a target column holds other units than galppl's: where most of a column's
# values (missing-value codes aside) look so, the table is refused rather than read (a linear
# mass would be read as an absurd log M*; log(O/H), all negative, would be dropped as codes and
# every galaxy read as having no measurable O/H). variable -> (test, what the column then holds).
UNIT_MISTAKES = {
    "log_mstar": (lambda v: v > 1e3, "linear stellar masses (Msun), where galppl reads log10(M*/Msun)"),
    "oh": (lambda v: (v > -6) & (v < -1), "log(O/H), where galppl reads 12 + log(O/H)"),
}

# SDSS reliable velocity-dispersion range (SDSS DR7 spectroscopic documentation: below
# ~70 km/s is under the instrumental resolution, above ~420 km/s the fits are unreliable).
SIGMA_RELIABLE = (70.0, 420.0)

_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")


def _read_source(source) -> tuple[dict[str, np.ndarray], dict]:
    """Columns (masked entries as NaN) and provenance attrs of ``source``."""
    if isinstance(source, (pd.DataFrame, Table)):
        kind = type(source).__name__
        attrs = {"source_file": f"(in-memory {kind})", "loader": "load_sdss_table"}
        if isinstance(source, pd.DataFrame):
            return {str(c): source[c].to_numpy() for c in source.columns}, attrs
        return _table_columns(source), attrs
    path, data = read_bytes(source)
    attrs = provenance(path, data, "load_sdss_table")
    if path.name.lower().endswith(_FITS_SUFFIXES) or data.startswith(b"SIMPLE  ="):
        try:
            with warnings.catch_warnings():
                # astropy only warns that a file "may have been truncated": make it an error.
                warnings.simplefilter("error", AstropyUserWarning)
                table = Table.read(io.BytesIO(data), format="fits")
        except Exception as err:  # astropy raises OSError, ValueError, TypeError, ... on bad bytes
            first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CatalogError(
                f"{str(path)!r} is not a readable FITS table (corrupt or truncated?): {first_line}"
            ) from err
        return _table_columns(table), attrs
    frame = read_csv(path, data)
    return {str(c): frame[c].to_numpy() for c in frame.columns}, attrs


def _table_columns(table) -> dict[str, np.ndarray]:
    columns = {}
    for name in table.colnames:
        col = table[name]
        if col.ndim != 1:
            # Vector columns (e.g. MPA-JHU's 5-band arrays) are kept whole only on request.
            columns[name] = np.asarray(col)
            continue
        values = np.asarray(col)
        if getattr(col, "mask", None) is not None and np.any(col.mask):
            values = np.where(col.mask, np.nan, values.astype(np.float64)) if values.dtype.kind in "iuf" else values
        if values.dtype.kind == "S":
            values = np.char.decode(values, "ascii").astype(str)
        columns[name] = np.asarray(values).astype(values.dtype.newbyteorder("="))
    return columns


def _resolve(available: dict[str, np.ndarray], columns: dict | None) -> dict[str, str]:
    """galppl name -> the source column it comes from (only names that are found)."""
    columns = dict(columns or {})
    unknown_keys = [k for k in columns if k not in DEFAULT_COLUMNS]
    if unknown_keys:
        raise ValueError(
            f"columns= names unknown galppl variable(s) {unknown_keys}; known: {', '.join(DEFAULT_COLUMNS)}"
        )
    lower = {name.lower(): name for name in available}
    chosen: dict[str, str] = {}
    for key, candidates in DEFAULT_COLUMNS.items():
        if key in columns:
            if columns[key] is None:
                continue
            wanted = columns[key]
            if wanted not in available and wanted.lower() not in lower:
                raise CatalogError(
                    f"columns={{{key!r}: {wanted!r}}}: the source has no column {wanted!r}; "
                    f"available: {', '.join(available)}"
                )
            chosen[key] = wanted if wanted in available else lower[wanted.lower()]
            continue
        for cand in candidates:
            if cand in available or cand.lower() in lower:
                chosen[key] = cand if cand in available else lower[cand.lower()]
                break
    return chosen


def _float(values: np.ndarray, column: str) -> np.ndarray:
    try:
        return np.asarray(pd.to_numeric(pd.Series(values), errors="raise"), dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise CatalogError(f"column {column!r} must be numeric: {err}") from err


def _ids(values: np.ndarray, column: str) -> np.ndarray:
    if values.dtype.kind == "f":
        raise CatalogError(
            f"id column {column!r} holds floats, which cannot keep 19-digit SDSS ids exactly; "
            "read it as integers or pass columns={'galaxy': None} to number the rows"
        )
    ids = values.astype(np.int64) if values.dtype.kind in "iu" else values.astype(str)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise CatalogError(
            f"id column {column!r} repeats {', '.join(map(str, uniq[counts > 1][:5]))}; "
            "pass columns={'galaxy': None} to number the rows instead"
        )
    return ids


def load_sdss_table(source, columns: dict | None = None, *, keep_extra: bool = False) -> xr.Dataset:
    """Read an SDSS / MPA-JHU style catalog (CSV path, FITS path, astropy Table, DataFrame).

    ``columns`` maps galppl names to source columns, overriding :data:`DEFAULT_COLUMNS`
    (``None`` switches a mapping off; ``{"galaxy": None}`` numbers the rows). Produces
    whichever of these the source has:

    - ``mag``, ``mag_err``, ``extinction`` (galaxy, band; AB mag): -9999, -999, -99 and 0
      (SDSS's missing codes), or any value <= 0, are NaN; a band without a column is NaN
      for every galaxy. ``missing_mag`` marks NaN magnitudes, ``bad_mag_err`` NaN or
      negative errors of finite magnitudes.
    - ``z`` (codes <= -1 are NaN, ``missing_target``; small negative values kept,
      ``negative_redshift``), ``log_mstar`` (``lgm_tot_p50``, log10 Msun),
      ``log_sfr`` (``sfr_tot_p50``, log10 Msun/yr), with errors from the 16/84 percentiles;
      codes <= -99 (and log_mstar <= 0) are NaN and ``missing_target``.
    - ``oh`` (12+log O/H) and ``oh_detected`` (1 where ``oh`` is finite): MPA-JHU's
      -99.9 / -9999 mean "not measurable", so they give ``oh_detected = 0``, no flag.
    - ``sigma`` (km/s): codes and values <= 0 are NaN, ``missing_target``; values outside
      70-420 km/s are NaN with ``spurious_sigma``. ``log_mbh`` (log10 Msun) from sigma by
      McConnell & Ma 2013 (``galppl.physics.log_mbh_from_sigma``), ``log_mbh_err`` from
      ``sigma_err`` (measurement error only, not the 0.38 dex intrinsic scatter).
    - ``flux_halpha``, ``flux_hbeta``, ``flux_nii``, ``flux_oiii`` (1e-17 erg/s/cm2) and
      ``*_err``: -9999 / -999 are NaN (``missing_target``); negative errors are NaN.

    Unmapped columns become extra variables (units ``"unknown"``) with ``keep_extra=True``;
    otherwise their names are listed in the ``ignored_columns`` attr. A corrupt or
    truncated file is a ``CatalogError`` naming it.
    """
    available, attrs = _read_source(source)
    if not available:
        raise CatalogError(f"{attrs.get('source_file') or 'the table'} has no columns")
    chosen = _resolve(available, columns)
    n = len(next(iter(available.values())))
    conversions: list[str] = [f"{key} <- {col}" for key, col in chosen.items()]
    used = set(chosen.values())

    if "galaxy" in chosen:
        ids = _ids(available[chosen["galaxy"]], chosen["galaxy"])
    else:
        ids = np.arange(n, dtype=np.int64)
        conversions.append(f"no id column: galaxy ids are row numbers 0..{n - 1}")

    def column(key, sentinels=(), below=None, negative=False):
        """Source column of ``key`` as floats, codes (and negatives, if ``negative``) -> NaN."""
        values, hit = drop_sentinels(_float(available[chosen[key]], chosen[key]), sentinels, below)
        if negative:
            with np.errstate(invalid="ignore"):
                hit |= values < 0
            values[hit] = np.nan
        if hit.any():
            conversions.append(f"{chosen[key]}: {int(hit.sum())} missing-value codes -> NaN")
        return values, hit

    radec = {}
    for key in ("ra", "dec"):
        radec[key] = column(key, (-9999.0,))[0] if key in chosen else None
    ds = new_catalog(ids, radec["ra"], radec["dec"], source=attrs.get("source_file") or "in-memory table", attrs=attrs)
    if "galaxy" not in chosen:
        ds["galaxy"].attrs["description"] = "row number in the source (0-based)"

    _photometry(ds, chosen, column, conversions)
    _targets(ds, chosen, column, available, used, conversions)

    extra = [c for c in available if c not in used]
    if keep_extra:
        for col in extra:
            values = available[col]
            if values.dtype.kind == "O":
                values = values.astype(str)
            if values.ndim != 1:
                values = values.reshape(len(values), -1)
            name = col if col not in KNOWN and col not in ds.variables else f"extra_{col}"
            dims = ("galaxy",) if values.ndim == 1 else ("galaxy", f"{name}_index")
            ds[name] = (dims, values, {"units": "unknown", "description": f"source column {col!r}, verbatim",
                                           "source_column": col})
    else:
        ds.attrs["ignored_columns"] = ", ".join(extra)
    return finish(ds, conversions)


def _photometry(ds, chosen, column, conversions) -> None:
    for var, prefix in (("mag", "mag_"), ("mag_err", "mag_err_"), ("extinction", "extinction_")):
        present = [b for b in BANDS if f"{prefix}{b}" in chosen]
        if not present:
            continue
        values = np.full((ds.sizes["galaxy"], len(BANDS)), np.nan)
        for j, b in enumerate(BANDS):
            if b in present:
                # Magnitudes and extinctions cannot be <= 0; errors can be 0 only as a code.
                below = 0.0 if var == "mag" else None
                values[:, j] = column(f"{prefix}{b}", (-9999.0, -999.0, -99.0), below, negative=var != "mag")[0]
        missing = [b for b in BANDS if b not in present]
        if missing:
            conversions.append(f"{var}: no column for band(s) {', '.join(missing)} -> NaN")
        types = {chosen[f"{prefix}{b}"].split("_")[0] for b in present}
        sources = ", ".join(chosen[f"{prefix}{b}"] for b in present)
        ds[var] = (("galaxy", "band"), values, attrs_for(var, source_columns=sources))
        if var == "mag":
            ds[var].attrs["magnitude_type"] = ", ".join(sorted(types))
    if "mag" in ds:
        flag(ds, "missing_mag", np.isnan(ds["mag"].values).any(axis=1))
        if "mag_err" in ds:
            bad = np.isfinite(ds["mag"].values) & np.isnan(ds["mag_err"].values)
            flag(ds, "bad_mag_err", bad.any(axis=1))


def _percentile_error(available, used, stem, conversions):
    lower = {c.lower(): c for c in available}
    p16, p84 = lower.get(f"{stem}_p16"), lower.get(f"{stem}_p84")
    if p16 is None or p84 is None:
        return None
    lo, _ = drop_sentinels(_float(available[p16], p16), (), below=-99.0)
    hi, _ = drop_sentinels(_float(available[p84], p84), (), below=-99.0)
    used.update((p16, p84))
    conversions.append(f"{stem}_err = ({p84} - {p16}) / 2")
    return (hi - lo) / 2


def _check_units(key: str, source: str, raw: np.ndarray) -> None:
    """Refuse a column whose values (codes <= -99 aside) mostly look like other units (:data:`UNIT_MISTAKES`)."""
    if key not in UNIT_MISTAKES:
        return
    looks_wrong, what = UNIT_MISTAKES[key]
    values = raw[np.isfinite(raw) & (raw > -99.0)]
    if values.size and looks_wrong(values).mean() > 0.5:
        raise CatalogError(f"column {source!r} (read as {key}) looks like {what} (median {np.median(values):.4g}): "
                           f"convert it first, or map {key} to another column with columns={{{key!r}: ...}}")


def _targets(ds, chosen, column, available, used, conversions) -> None:
    missing_target = np.zeros(ds.sizes["galaxy"], dtype=bool)

    if "z" in chosen:
        z, _ = column("z", (-9999.0,), below=-1.0)
        ds["z"] = ("galaxy", z, attrs_for("z", source_column=chosen["z"]))
        missing_target |= np.isnan(z)
        with np.errstate(invalid="ignore"):
            flag(ds, "negative_redshift", z < 0)

    for key in ("log_mstar", "log_sfr", "oh"):
        if key not in chosen:
            continue
        _check_units(key, chosen[key], _float(available[chosen[key]], chosen[key]))
        values, _ = column(key, (-9999.0,), below=0.0 if key in ("log_mstar", "oh") else -99.0)
        ds[key] = ("galaxy", values, attrs_for(key, source_column=chosen[key]))
        err = _percentile_error(available, used, _PERCENTILE_ERRORS[key], conversions)
        if err is not None:
            ds[f"{key}_err"] = ("galaxy", np.where(np.isfinite(values), err, np.nan), attrs_for(f"{key}_err"))
        if key == "oh":
            # Not measurable (not star-forming, or lines too weak) is an answer, not a defect.
            ds["oh_detected"] = ("galaxy", np.isfinite(values).astype(np.int8), attrs_for("oh_detected"))
        else:
            missing_target |= np.isnan(values)

    if "sigma" in chosen:
        sigma, _ = column("sigma", (-9999.0,), below=0.0)
        missing_target |= np.isnan(sigma)
        with np.errstate(invalid="ignore"):
            spurious = (sigma < SIGMA_RELIABLE[0]) | (sigma > SIGMA_RELIABLE[1])
        flag(ds, "spurious_sigma", spurious)
        sigma[spurious] = np.nan
        conversions.append(f"sigma: {int(spurious.sum())} values outside {SIGMA_RELIABLE} km/s -> NaN (spurious_sigma)")
        ds["sigma"] = ("galaxy", sigma, attrs_for("sigma", source_column=chosen["sigma"]))
        derived = "McConnell & Ma 2013 M-sigma from sigma"
        ds["log_mbh"] = ("galaxy", log_mbh_from_sigma(sigma), attrs_for("log_mbh", derived=derived))
        if "sigma_err" in chosen:
            sigma_err, _ = column("sigma_err", (-9999.0,), negative=True)
            sigma_err[np.isnan(sigma)] = np.nan
            ds["sigma_err"] = ("galaxy", sigma_err, attrs_for("sigma_err", source_column=chosen["sigma_err"]))
            # d log_mbh = beta d log10(sigma) = beta sigma_err / (sigma ln 10).
            ds["log_mbh_err"] = ("galaxy", MSIGMA_BETA * sigma_err / (sigma * np.log(10.0)),
                                 attrs_for("log_mbh_err", derived="propagated from sigma_err only"))

    for line in ("flux_halpha", "flux_hbeta", "flux_nii", "flux_oiii"):
        if line in chosen:
            values, _ = column(line, (-9999.0, -999.0))
            ds[line] = ("galaxy", values, attrs_for(line, source_column=chosen[line]))
            missing_target |= np.isnan(values)
        if f"{line}_err" in chosen:
            err, _ = column(f"{line}_err", (-9999.0, -999.0), negative=True)
            ds[f"{line}_err"] = ("galaxy", err, attrs_for(f"{line}_err", source_column=chosen[f"{line}_err"]))
    flag(ds, "missing_target", missing_target)

