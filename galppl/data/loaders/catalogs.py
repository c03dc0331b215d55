"""Loaders for the three real CSV extracts in ``../shared/data/sdss`` (see PROVENANCE.md).

Each reads one file as it was published, keeps every row, turns the file's missing-value
codes into NaN with a quality bit, and records in the attrs what it converted and why.
Galaxy ids are row numbers (0-based, in file order) because none of the three files has a
unique key: Galaxy Zoo's ``id`` lost precision, the GSWLC index restarts, and the black-hole
compilation names some galaxies twice (one row per measurement method).
"""

from __future__ import annotations

import numpy as np

from galppl.data.loaders._common import (
    add_variable,
    drop_sentinels,
    finish,
    numeric,
    provenance,
    read_bytes,
    read_csv,
    require_columns,
    text_values,
    whole,
)
from galppl.data.schema import BANDS, CatalogError, attrs_for, flag, new_catalog

ROW_ID = "row number in the source file (0-based, data rows only); the file has no unique key"

# Galaxy Zoo extra columns: (column, variable, units, description). Radii and axis ratios
# are SDSS r-band model-fit values; probabilities are Galaxy Zoo 1 (Lintott et al. 2011).
_GZ_SHAPES = (
    ("deVRad_r", "radius_dev_r", "arcsec", "de Vaucouleurs fit effective radius, r band"),
    ("deVAB_r", "axis_ratio_dev_r", "", "de Vaucouleurs fit axis ratio b/a, r band"),
    ("expRad_r", "radius_exp_r", "arcsec", "exponential fit scale radius, r band"),
    ("expAB_r", "axis_ratio_exp_r", "", "exponential fit axis ratio b/a, r band"),
)
_GZ_VOTES = (
    ("votes", "gz_votes", "", "number of Galaxy Zoo 1 classifications"),
    ("p_el_debiased", "gz_p_elliptical", "", "Galaxy Zoo 1 debiased probability of elliptical"),
    ("p_cs_debiased", "gz_p_spiral", "", "Galaxy Zoo 1 debiased probability of spiral (combined)"),
    ("spiral", "gz_spiral", "", "Galaxy Zoo 1 clean spiral flag (1 = spiral)"),
    ("elliptical", "gz_elliptical", "", "Galaxy Zoo 1 clean elliptical flag (1 = elliptical)"),
    ("uncertain", "gz_uncertain", "", "Galaxy Zoo 1 uncertain flag (1 = neither clean class)"),
)
# The file's missing-value codes: -9999 (SDSS) and 0, which no magnitude, radius, axis
# ratio or log mass can be.
_GZ_SENTINELS = (-9999.0, 0.0)


def load_galaxyzoo(path):
    """Read ``dr9_galaxyzoo_5k.csv`` (SDSS DR9 + Galaxy Zoo 1) into a catalog.

    Variables: ``mag`` (galaxy, band; the file's ``mag_u..mag_z``, AB mag, type not stated,
    not extinction-corrected as far as known), ``z`` (spectroscopic redshift), ``log_mstar``
    (``stellar_mass``, log10 Msun), r-band radii (arcsec) and axis ratios, the Galaxy Zoo
    votes and probabilities (``gz_*``), and ``sdss_objid_approx`` (the file's ``id``, which
    lost precision and repeats: not a key). Galaxy ids are row numbers.

    -9999 and 0 in magnitudes, radii, axis ratios and mass become NaN; empty cells are NaN.
    Quality bits: ``missing_mag`` where any magnitude is NaN, ``missing_target`` where ``z``
    or ``log_mstar`` is, ``negative_redshift`` where the redshift is below 0 (kept as is).
    No ``mag_err``: the file has no errors and inventing them would be worse than saying so.
    """
    path, data = read_bytes(path)
    table = read_csv(path, data)
    mag_cols = [f"mag_{b}" for b in BANDS]
    base = ["id", "ra", "dec", "redshift", "stellar_mass", *mag_cols]
    require_columns(table, base + [c for c, *_ in _GZ_SHAPES + _GZ_VOTES], path)
    n = len(table)
    conversions = [f"galaxy ids are row numbers 0..{n - 1}: the 'id' column lost precision and is not unique"]

    ds = new_catalog(
        np.arange(n, dtype=np.int64),
        numeric(table, "ra", path),
        numeric(table, "dec", path),
        source="SDSS DR9 + Galaxy Zoo 1 (CurtinIDS/cic-ml-workshop data/galaxies.csv)",
        attrs=provenance(path, data, "load_galaxyzoo"),
    )
    ds["galaxy"].attrs["description"] = ROW_ID

    mags = np.empty((n, len(BANDS)))
    for j, col in enumerate(mag_cols):
        mags[:, j], hit = drop_sentinels(numeric(table, col, path), _GZ_SENTINELS)
        conversions.append(f"{col}: {int(hit.sum())} sentinel values (-9999 or 0) -> NaN")
    ds["mag"] = (("galaxy", "band"), mags, attrs_for("mag", magnitude_type="not stated by the source"))
    flag(ds, "missing_mag", np.isnan(mags).any(axis=1))
    conversions.append("mag_err absent: the file gives no magnitude errors")

    z, hit = drop_sentinels(numeric(table, "redshift", path), (-9999.0,))
    ds["z"] = ("galaxy", z, attrs_for("z", source_column="redshift"))
    conversions.append(f"redshift: {int(hit.sum())} sentinel values (-9999) -> NaN")
    with np.errstate(invalid="ignore"):
        flag(ds, "negative_redshift", z < 0)
    conversions.append(f"redshift: {int(np.sum(z < 0))} negative values kept and flagged negative_redshift")

    mstar, hit = drop_sentinels(numeric(table, "stellar_mass", path), _GZ_SENTINELS)
    ds["log_mstar"] = ("galaxy", mstar, attrs_for("log_mstar", source_column="stellar_mass"))
    conversions.append(f"stellar_mass: {int(hit.sum())} sentinel values (-9999 or 0) -> NaN")
    flag(ds, "missing_target", np.isnan(z) | np.isnan(mstar))

    for col, name, units, description in _GZ_SHAPES:
        values, hit = drop_sentinels(numeric(table, col, path), _GZ_SENTINELS)
        add_variable(ds, name, values, units, description, source_column=col)
        conversions.append(f"{col}: {int(hit.sum())} sentinel values (-9999 or 0) -> NaN")
    for col, name, units, description in _GZ_VOTES:
        add_variable(ds, name, whole(numeric(table, col, path)), units, description, source_column=col)
    add_variable(
        ds,
        "sdss_objid_approx",
        table["id"].to_numpy(dtype=np.int64),
        "",
        "SDSS objID as written in the file, after a float round trip: imprecise and not unique",
        source_column="id",
    )
    return finish(ds, conversions)


# GSWLC-2 writes -99 for quantities it could not fit (Salim et al. 2018, catalog README).
_GSWLC_SENTINEL = -99.0
_GSWLC_TARGETS = (
    ("Z", "z"),
    ("LOGMSTAR", "log_mstar"),
    ("LOGMSTARERR", "log_mstar_err"),
    ("LOGSFRSED", "log_sfr"),
    ("LOGSFRSEDERR", "log_sfr_err"),
)


def load_gswlc(path):
    """Read ``gswlc2_subset_1k.csv`` (GSWLC-2 SED fits, Salim et al. 2016, 2018) into a catalog.

    Variables: ``log_mstar`` and ``log_sfr`` (log10 Msun and log10 Msun/yr, SED fits) with
    their 1-sigma errors, ``z``, and ``source_index`` (the file's first, unnamed column: a
    row index that restarts, so not a key). ``ra``/``dec`` from ``RAdeg``/``DEdeg``.
    Galaxy ids are row numbers.

    -99 (GSWLC's "not fitted") and empty cells become NaN; the ``missing_target`` bit marks
    galaxies with any of the five values missing. (This extract has no -99 but whole blocks
    of rows without coordinates, redshift or errors: they are kept.)
    """
    path, data = read_bytes(path)
    table = read_csv(path, data)
    index_col = table.columns[0]
    if not str(index_col).startswith("Unnamed"):
        index_col = None
    require_columns(table, ["RAdeg", "DEdeg", *(c for c, _ in _GSWLC_TARGETS)], path)
    n = len(table)
    conversions = [f"galaxy ids are row numbers 0..{n - 1}: the file's row index is not unique"]
    ra, ra_hit = drop_sentinels(numeric(table, "RAdeg", path), (_GSWLC_SENTINEL,))
    dec, dec_hit = drop_sentinels(numeric(table, "DEdeg", path), (_GSWLC_SENTINEL,))
    conversions.append(f"RAdeg/DEdeg: {int((ra_hit | dec_hit).sum())} rows with -99 -> NaN")
    ds = new_catalog(
        np.arange(n, dtype=np.int64),
        ra,
        dec,
        source="GSWLC-2 (Salim et al. 2016, 2018), hannchristie/GSWLC_matched combined.csv",
        attrs=provenance(path, data, "load_gswlc"),
    )
    ds["galaxy"].attrs["description"] = ROW_ID

    missing = np.zeros(n, dtype=bool)
    for col, name in _GSWLC_TARGETS:
        values, hit = drop_sentinels(numeric(table, col, path), (_GSWLC_SENTINEL,))
        ds[name] = ("galaxy", values, attrs_for(name, source_column=col))
        conversions.append(f"{col}: {int(hit.sum())} sentinel values (-99) -> NaN, {int(np.isnan(values).sum())} NaN")
        missing |= np.isnan(values)
    flag(ds, "missing_target", missing)
    if index_col is not None:
        add_variable(
            ds,
            "source_index",
            numeric(table, index_col, path).astype(np.int64),
            "",
            "the file's unnamed first column (a row index that restarts; not a key)",
        )
    return finish(ds, conversions)


# The compilation (van den Bosch 2016 format) marks a missing value with -1234.
_BH_SENTINEL = -1234.0
LN10 = np.log(10.0)


def load_bh_compilation(path):
    """Read ``bh_msigma_compilation.csv`` (dynamical black-hole masses) into a catalog.

    Variables:

    - ``log_mbh``, ``log_mbh_err`` (log10 Msun): ``MBH``, ``DMBH`` for measurements; NaN
      for upper limits, whose rows store an allowed interval ``MBH +- DMBH``;
    - ``log_mbh_limit`` (log10 Msun): the upper limit ``MBH + DMBH`` on upper-limit rows,
      NaN elsewhere (e.g. NGC 3621: 6.0 + 0.48 -> 3e6 Msun, Barth et al. 2009);
    - ``mbh_upper_limit`` (bool): ``UPPERLIMIT == 1``; such rows are kept, never dropped;
    - ``sigma`` (km/s) = 10**``SIG``; ``sigma_err`` (km/s) = ln(10) sigma ``DSIG``
      (first-order propagation; the exact log values stay in ``log_sigma``, ``log_sigma_err``);
    - ``z`` (negative values, local blueshifts, flagged ``negative_redshift``), ``z_err``;
    - ``name``, ``measurement``, ``reference`` (strings: ``NAME``, ``TYPE``, ``REF``),
      ``distance``, ``distance_err`` (Mpc), ``selected`` and ``conf_level`` (the file's codes).

    The UTF-8 byte-order mark is stripped; -1234 becomes NaN (``missing_target`` bit when a
    measured ``log_mbh`` or ``sigma`` is missing). Galaxy ids are row numbers: a galaxy
    measured by two methods has two rows.
    """
    path, data = read_bytes(path)
    table = read_csv(path, data)
    need = ["NAME", "RA", "DEC", "MBH", "DMBH", "UPPERLIMIT", "SIG", "DSIG", "TYPE", "Z", "DZ"]
    require_columns(table, need, path)
    n = len(table)
    conversions = [
        "UTF-8 byte-order mark stripped" if data.startswith(b"\xef\xbb\xbf") else "no byte-order mark",
        f"galaxy ids are row numbers 0..{n - 1}: NAME repeats when a galaxy has several measurements",
    ]

    def col(name):
        values, hit = drop_sentinels(numeric(table, name, path), (_BH_SENTINEL,))
        conversions.append(f"{name}: {int(hit.sum())} sentinel values (-1234) -> NaN")
        return values

    ds = new_catalog(
        np.arange(n, dtype=np.int64),
        col("RA"),
        col("DEC"),
        source="black-hole mass compilation (GabrielSasseville01/BH_M-sigma_compilation)",
        attrs=provenance(path, data, "load_bh_compilation"),
    )
    ds["galaxy"].attrs["description"] = ROW_ID

    upper = numeric(table, "UPPERLIMIT", path)
    if not np.isin(upper, (0, 1)).all():
        raise CatalogError(f"UPPERLIMIT in {str(path)!r} must be 0 or 1, found {np.unique(upper)}")
    upper = upper == 1
    mbh, dmbh = col("MBH"), col("DMBH")
    ds["log_mbh"] = ("galaxy", np.where(upper, np.nan, mbh), attrs_for("log_mbh", source_column="MBH"))
    ds["log_mbh"].attrs["description"] = "log10 central black-hole mass (dynamical or reverberation measurement)"
    ds["log_mbh_err"] = ("galaxy", np.where(upper, np.nan, dmbh), attrs_for("log_mbh_err", source_column="DMBH"))
    add_variable(ds, "log_mbh_limit", np.where(upper, mbh + dmbh, np.nan), "dex(Msun)",
                 "upper limit on log10 black-hole mass (MBH + DMBH of upper-limit rows)")
    add_variable(ds, "mbh_upper_limit", upper, "", "True where the black-hole mass is an upper limit",
                 source_column="UPPERLIMIT")
    conversions.append(
        f"UPPERLIMIT: {int(upper.sum())} upper limits kept: log_mbh NaN, limit MBH+DMBH in log_mbh_limit"
    )

    log_sigma, log_sigma_err = col("SIG"), col("DSIG")
    sigma = 10.0**log_sigma
    ds["sigma"] = ("galaxy", sigma, attrs_for("sigma", source_column="SIG", conversion="10**SIG"))
    ds["sigma_err"] = ("galaxy", LN10 * sigma * log_sigma_err,
                       attrs_for("sigma_err", source_column="DSIG", conversion="ln(10) * sigma * DSIG (first order)"))
    add_variable(ds, "log_sigma", log_sigma, "dex(km s-1)", "log10 velocity dispersion", source_column="SIG")
    add_variable(ds, "log_sigma_err", log_sigma_err, "dex(km s-1)", "1-sigma error of log_sigma",
                 source_column="DSIG")
    conversions.append("SIG, DSIG (log10 km/s) -> sigma = 10**SIG, sigma_err = ln(10) sigma DSIG")
    flag(ds, "missing_target", (np.isnan(mbh) & ~upper) | np.isnan(sigma))

    z = col("Z")
    ds["z"] = ("galaxy", z, attrs_for("z", source_column="Z"))
    with np.errstate(invalid="ignore"):
        flag(ds, "negative_redshift", z < 0)
    conversions.append(f"Z: {int(np.sum(z < 0))} negative (blueshifted) values kept and flagged negative_redshift")
    add_variable(ds, "z_err", col("DZ"), "", "1-sigma error of z", source_column="DZ")

    add_variable(ds, "name", text_values(table, "NAME"), "", "galaxy name", source_column="NAME")
    add_variable(ds, "measurement", text_values(table, "TYPE"), "",
                 "mass measurement method (star, gas, maser, reverb, CO, GC)", source_column="TYPE")
    for column, name, units, description in (
        ("REF", "reference", "", "reference of the mass measurement"),
        ("DDIST", "distance", "Mpc", "distance"),
        ("DISTERR", "distance_err", "Mpc", "1-sigma error of distance"),
        ("SELECTED", "selected", "", "the compilation's SELECTED code, copied verbatim"),
        ("CONFLEVEL", "conf_level", "", "the compilation's CONFLEVEL code, copied verbatim"),
    ):
        if column not in table.columns:
            continue
        values = text_values(table, column) if name == "reference" else col(column)
        if name in ("selected", "conf_level"):
            values = whole(values)
        add_variable(ds, name, values, units, description, source_column=column)
    return finish(ds, conversions)
