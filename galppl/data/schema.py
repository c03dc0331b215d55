"""The catalog data model: one ``xarray.Dataset`` per catalog, dimension ``galaxy``.

Every catalog galppl reads, simulates or writes has this shape:

- dims ``galaxy`` (coords ``galaxy_id``, ``ra``, ``dec``), ``band`` (u, g, r, i, z),
  ``channel`` (g, r, i) and, when images are present, ``y`` and ``x``;
- observables ``image`` (galaxy, channel, y, x; nanomaggies), ``mag``, ``mag_err`` and
  ``extinction`` (galaxy, band; AB mag);
- targets (the catalog values a model learns, as MPA-JHU would report them) with their
  ``*_err`` where the catalog has one;
- a per-galaxy ``quality`` bitmask (CF ``flag_masks``/``flag_meanings``) saying what is
  wrong with a galaxy's inputs, so bad rows are carried, never dropped or filled;
- anything else a source knows (the simulator's hidden state, a loader's extra columns)
  as further variables with ``units`` and ``description`` attrs.

Missing values are NaN. ``validate`` checks all of this and names what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

BANDS = ("u", "g", "r", "i", "z")
CHANNELS = ("g", "r", "i")
COLOURS = ("u_g", "g_r", "r_i", "i_z")

FLUX_UNIT = "1e-17 erg s-1 cm-2"


@dataclass(frozen=True)
class Variable:
    """What the data model says about one variable."""

    dims: tuple[str, ...]
    units: str
    description: str
    lower: float | None = None  # smallest physically possible value (NaN always allowed)
    upper: float | None = None
    # The open interval (lo, hi) a model's draws of this target are confined to (a bounded
    # bijection in each block's modelled units, galppl.models.block.SaturatingBoundsTransform); training
    # values outside it, or on an end, are an error. No wider than lower/upper, which say
    # what a catalog may hold: a valid catalog can have galaxies the models do not cover.
    support: tuple[float, float] | None = None


# What a catalog's line flux may hold. Noise makes faint lines negative, but by a few times
# their error (SDSS fibre line errors are ~1-100 in these units): a flux below -5000 is no
# measurement but a missing-value code (-9999, -99999) or a failed fit, and is refused rather
# than trained on as a value. Above, 1e7 is ~1e3x the brightest SDSS fibre lines.
FLUX_BOUNDS = (-5000.0, 1e7)
# A model's draws of a measured flux stay inside what a measurement can hold. The signed log1p
# a line block models in is exponential on the way back, so a flow's far tail means absurd
# fluxes: galppl 0.11.0's support of +-1e8 let a faint galaxy's H-beta (median 12) draw -1e8,
# and one such draw among 3 million made `galppl run --model lines` print an H-beta R^2 of -635.
FLUX_SUPPORT = FLUX_BOUNDS
# Values source catalogs use for "missing"; validate names them when it meets one.
SENTINELS = (-9999.0, -999.0, -99.0, 99.0, 999.0, 9999.0, -99999.0, 99999.0)

# Targets: what the models infer. Lines are fibre fluxes and may be negative (noise).
TARGETS: dict[str, Variable] = {
    "log_mstar": Variable(("galaxy",), "dex(Msun)", "log10 stellar mass", 5.0, 13.5, (6.0, 13.0)),
    "log_sfr": Variable(("galaxy",), "dex(Msun yr-1)", "log10 total star formation rate", -6.0, 4.0, (-5.0, 3.0)),
    # SDSS main-sample spectroscopic redshifts; z <= 0 is a star or a blueshifted neighbour.
    "z": Variable(("galaxy",), "", "spectroscopic redshift", -0.01, 7.0, (0.0, 0.4)),
    "sigma": Variable(("galaxy",), "km s-1", "stellar velocity dispersion", 0.0, 2000.0),
    "log_mbh": Variable(
        ("galaxy",), "dex(Msun)", "log10 central black-hole mass (McConnell & Ma 2013 M-sigma)", 3.0, 12.0,
        (4.0, 11.0),
    ),
    "oh": Variable(("galaxy",), "dex", "gas-phase metallicity 12+log(O/H)", 7.0, 10.0, (7.0, 9.7)),
    "oh_detected": Variable(("galaxy",), "", "1 if 12+log(O/H) is measurable, else 0", 0, 1),
    "flux_halpha": Variable(("galaxy",), FLUX_UNIT, "H-alpha 6563 fibre flux", *FLUX_BOUNDS, FLUX_SUPPORT),
    "flux_hbeta": Variable(("galaxy",), FLUX_UNIT, "H-beta 4861 fibre flux", *FLUX_BOUNDS, FLUX_SUPPORT),
    "flux_nii": Variable(("galaxy",), FLUX_UNIT, "[N II] 6584 fibre flux", *FLUX_BOUNDS, FLUX_SUPPORT),
    "flux_oiii": Variable(("galaxy",), FLUX_UNIT, "[O III] 5007 fibre flux", *FLUX_BOUNDS, FLUX_SUPPORT),
}
LINE_FLUXES = ("flux_halpha", "flux_hbeta", "flux_nii", "flux_oiii")
PROPERTIES = ("log_mstar", "log_sfr", "z", "log_mbh", "oh")

OBSERVABLES: dict[str, Variable] = {
    "image": Variable(("galaxy", "channel", "y", "x"), "nanomaggy", "gri cutout, flux per pixel"),
    "mag": Variable(("galaxy", "band"), "mag", "AB magnitude (not extinction-corrected)", 5.0, 40.0),
    "mag_err": Variable(("galaxy", "band"), "mag", "1-sigma magnitude error", 0.0, None),
    "extinction": Variable(("galaxy", "band"), "mag", "Milky Way extinction A_band", 0.0, 10.0),
}

# Errors of targets share the target's units and must be non-negative.
ERRORS: dict[str, Variable] = {
    f"{name}_err": Variable(var.dims, var.units, f"1-sigma error of {name}", 0.0, None)
    for name, var in TARGETS.items()
    if name not in ("oh_detected", "z")
}

# The per-galaxy quality bitmask. A set bit says what is wrong with that galaxy's inputs.
QUALITY_BITS: dict[str, int] = {
    "missing_mag": 1,  # a magnitude is NaN or a catalog sentinel (-9999, 0)
    "bad_mag_err": 2,  # a magnitude error is NaN or negative
    "bad_image": 4,  # NaN/inf pixels or no image
    "negative_redshift": 8,  # z < 0 in the source catalog
    "spurious_sigma": 16,  # velocity dispersion outside the reliable range, set missing
    "missing_target": 32,  # a source sentinel in a target column, set missing
    "out_of_distribution": 64,  # inputs unlike the training galaxies' (set by GalaxyPosterior.predict)
}
QUALITY = Variable(("galaxy",), "", "bitmask of input problems (see flag_meanings)")

KNOWN: dict[str, Variable] = {**TARGETS, **ERRORS, **OBSERVABLES, "quality": QUALITY}


def support(name: str) -> tuple[float, float]:
    """The open interval a model's draws of target ``name`` stay in, in its catalog units:
    its declared ``support``, or (-inf, inf) for a variable the schema gives none (a
    Bernoulli gate, a user's own target)."""
    var = TARGETS.get(name)
    if var is None or var.support is None:
        return (-np.inf, np.inf)
    return var.support


def unphysical_as_missing(ds: xr.Dataset) -> tuple[xr.Dataset, dict[str, list]]:
    """A copy of ``ds`` with every target value outside (or on an end of) its physical
    :func:`support` set missing (NaN) and the ``missing_target`` bit set for those galaxies;
    and, per variable changed, the galaxy ids. For a catalog whose few unphysical labels (the
    DR9 extract's one negative redshift) would otherwise stop a fit, which never clips them."""
    out, changed = ds.copy(), {}
    for name in TARGETS:
        lower, upper = support(name)
        if name not in out or not np.isfinite([lower, upper]).any():
            continue
        values = out[name].values
        with np.errstate(invalid="ignore"):
            outside = (values <= lower) | (values >= upper)
        if outside.any():
            out[name] = out[name].where(~outside)
            changed[name] = out["galaxy"].values[outside].tolist()
            flag(out, "missing_target", outside)
    return out, changed


# Units a variable may carry instead of its spec's. "relative": display-stretched colour
# composites (SDSS gri JPEGs, values 0-1) that are not flux-calibrated; calling them
# nanomaggies would be a lie, so they say what they are (loaders add ``flux_calibrated=0``).
ALTERNATIVE_UNITS: dict[str, tuple[str, ...]] = {"image": ("relative",)}


class CatalogError(ValueError):
    """A catalog does not follow galppl's data model; the message names the problem."""


def quality_attrs() -> dict:
    """CF-convention attrs for the ``quality`` bitmask variable."""
    return {
        "units": "",
        "description": QUALITY.description,
        "flag_masks": np.array(list(QUALITY_BITS.values()), dtype=np.int32),
        "flag_meanings": " ".join(QUALITY_BITS),
    }


def flag(ds: xr.Dataset, name: str, where) -> None:
    """Set quality bit ``name`` in place for the galaxies where ``where`` is true."""
    if name not in QUALITY_BITS:
        raise KeyError(f"unknown quality bit {name!r}; known: {', '.join(QUALITY_BITS)}")
    where = np.asarray(where, dtype=bool)
    if "quality" not in ds:
        ds["quality"] = ("galaxy", np.zeros(ds.sizes["galaxy"], dtype=np.int32), quality_attrs())
    ds["quality"].values[where] |= QUALITY_BITS[name]


def has_flag(ds: xr.Dataset, name: str) -> xr.DataArray:
    """Boolean per galaxy: is quality bit ``name`` set?"""
    if "quality" not in ds:
        return xr.zeros_like(ds["galaxy"], dtype=bool)
    return (ds["quality"] & QUALITY_BITS[name]) > 0


def attrs_for(name: str, **extra) -> dict:
    """The standard ``units``/``description`` attrs of a known variable."""
    var = KNOWN[name]
    return {"units": var.units, "description": var.description, **extra}


def new_catalog(
    galaxy_id,
    ra=None,
    dec=None,
    *,
    source: str,
    attrs: dict | None = None,
) -> xr.Dataset:
    """An empty catalog with the galaxy, band and channel coordinates set.

    ``galaxy_id`` must be unique (int64 or str); ``ra``/``dec`` in degrees (NaN if unknown).
    ``source`` is recorded in the ``source`` attr as provenance.
    """
    galaxy_id = np.asarray(galaxy_id)
    n = galaxy_id.shape[0]
    ra = np.full(n, np.nan) if ra is None else np.asarray(ra, dtype=np.float64)
    dec = np.full(n, np.nan) if dec is None else np.asarray(dec, dtype=np.float64)
    ds = xr.Dataset(
        coords={
            "galaxy": ("galaxy", galaxy_id, {"description": "unique galaxy identifier"}),
            "ra": ("galaxy", ra, {"units": "deg", "description": "right ascension (J2000)"}),
            "dec": ("galaxy", dec, {"units": "deg", "description": "declination (J2000)"}),
            "band": ("band", list(BANDS), {"description": "SDSS photometric band"}),
            "channel": ("channel", list(CHANNELS), {"description": "image channel (SDSS band)"}),
        },
        attrs={"source": source, "galppl_schema": "1", **(attrs or {})},
    )
    ds["quality"] = ("galaxy", np.zeros(n, dtype=np.int32), quality_attrs())
    return ds


def _ids(ds: xr.Dataset, bad: np.ndarray, limit: int = 5) -> str:
    ids = ds["galaxy"].values[bad]
    shown = ", ".join(str(i) for i in ids[:limit])
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return f"galaxies {shown}{more}"


def validate(ds: xr.Dataset, require: tuple[str, ...] = ()) -> xr.Dataset:
    """Check that ``ds`` follows the catalog data model; return it unchanged.

    Raises ``CatalogError`` naming the variable, the offending galaxy ids and the problem:
    wrong or missing dims and coords, duplicate ids, non-numeric dtypes, wrong or missing
    units, values outside what is physically possible (NaN always counts as missing and is
    allowed), ``oh`` present where ``oh_detected`` is 0 or absent where it is 1.
    ``require`` names variables that must be present.
    """
    if not isinstance(ds, xr.Dataset):
        raise CatalogError(f"a catalog is an xarray.Dataset, got {type(ds).__name__}")
    if "galaxy" not in ds.dims:
        raise CatalogError(f"catalog has no 'galaxy' dimension (dims: {tuple(ds.dims)})")
    for name in require:
        if name not in ds:
            raise CatalogError(f"catalog lacks required variable {name!r} (has: {', '.join(ds.data_vars)})")
    ids = ds["galaxy"].values
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise CatalogError(f"galaxy ids are not unique: {', '.join(map(str, uniq[counts > 1][:5]))} repeat")
    for coord, expected in (("band", BANDS), ("channel", CHANNELS)):
        if coord in ds.dims and tuple(ds[coord].values.tolist()) != expected:
            raise CatalogError(f"coordinate {coord!r} must be {expected}, got {tuple(ds[coord].values.tolist())}")

    for name, var in ds.data_vars.items():
        spec = KNOWN.get(name)
        if "units" not in var.attrs:
            raise CatalogError(f"variable {name!r} has no 'units' attr (use '' for dimensionless)")
        if spec is None:
            if "galaxy" not in var.dims:
                continue
            if var.dims[0] != "galaxy":
                raise CatalogError(f"variable {name!r} must have 'galaxy' as its first dim, has {var.dims}")
            continue
        if var.dims != spec.dims:
            raise CatalogError(f"variable {name!r} has dims {var.dims}, expected {spec.dims}")
        if var.attrs["units"] != spec.units and var.attrs["units"] not in ALTERNATIVE_UNITS.get(name, ()):
            expected = " or ".join(repr(u) for u in (spec.units, *ALTERNATIVE_UNITS.get(name, ())))
            raise CatalogError(f"variable {name!r} has units {var.attrs['units']!r}, expected {expected}")
        if not (np.issubdtype(var.dtype, np.number) or var.dtype == bool):
            raise CatalogError(f"variable {name!r} must be numeric, has dtype {var.dtype}")
        values = var.values
        if name == "image":
            if ds.sizes.get("y") != ds.sizes.get("x"):
                raise CatalogError(f"images must be square, got y={ds.sizes.get('y')} x={ds.sizes.get('x')}")
            continue
        if np.isinf(values).any():
            bad = np.isinf(values).reshape(values.shape[0], -1).any(axis=1)
            raise CatalogError(f"variable {name!r} is infinite for {_ids(ds, bad)}; mark missing values as NaN")
        for bound, test, word in (
            (spec.lower, lambda v, b: v < b, "below"),
            (spec.upper, lambda v, b: v > b, "above"),
        ):
            if bound is None:
                continue
            with np.errstate(invalid="ignore"):
                bad = test(values, bound)
            if bad.any():
                bad = bad.reshape(values.shape[0], -1).any(axis=1)
                example = values.reshape(values.shape[0], -1)[bad][0]
                codes = sorted(set(np.unique(values[np.isin(values, SENTINELS)]).tolist()))
                hint = (f"; {', '.join(f'{c:g}' for c in codes)} looks like a missing-value code: set those values to "
                        "NaN (and the quality bit 'missing_target' or 'missing_mag')" if codes else "")
                raise CatalogError(
                    f"variable {name!r} has values {word} the physical limit {bound} ({spec.units or 'no units'}) "
                    f"for {_ids(ds, bad)}, e.g. {example[np.isfinite(example)][:3]}{hint}"
                )

    if "oh_detected" in ds:
        det = ds["oh_detected"].values
        if not np.isin(det, (0, 1)).all():
            raise CatalogError(f"'oh_detected' must be 0 or 1, found {np.unique(det[~np.isin(det, (0, 1))])[:5]}")
        if "oh" in ds:
            oh = ds["oh"].values
            bad = (det == 0) & np.isfinite(oh)
            if bad.any():
                raise CatalogError(f"'oh' is given where 'oh_detected' is 0 for {_ids(ds, bad)}")
            bad = (det == 1) & ~np.isfinite(oh)
            if bad.any():
                raise CatalogError(f"'oh' is missing where 'oh_detected' is 1 for {_ids(ds, bad)}")
    return ds
