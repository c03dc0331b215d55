"""Per-galaxy conditioning values and their quantile bins, shared by the binned diagnostics.

A conditioning variable ``by`` names per-galaxy values to bin the galaxies on:

- a ``(galaxy,)`` variable of ``observed_data`` or ``constant_data`` (``"z"``: the truth);
- a ``(variable, label)`` tuple: one labelled slice of a 2-d variable (``("mag", "r")``: the
  catalog's r magnitude);
- an ``xarray.DataArray`` with dim ``galaxy`` (any values the caller computed).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._checks import GALAXY, DiagnosticsError, require


def _available(idata) -> str:
    """What a `by` could name: each data group's variables."""
    parts = [
        f"{group} has {', '.join(map(str, idata[group].data_vars)) or '(none)'}"
        for group in ("observed_data", "constant_data")
        if group in idata.groups()
    ]
    return "; ".join(parts) if parts else f"idata has groups {', '.join(idata.groups())}"


def by_values(idata, by, n_galaxies: int, func: str) -> tuple[np.ndarray, str]:
    """The per-galaxy values (galaxy,) that ``by`` names, and a label for them.

    Raises `DiagnosticsError` naming ``func``, the absent variable and what the InferenceData
    holds instead.
    """
    if isinstance(by, xr.DataArray):
        if by.dims != (GALAXY,) or by.sizes[GALAXY] != n_galaxies:
            raise DiagnosticsError(
                f"{func}: a DataArray `by` must have dims ('galaxy',) and {n_galaxies} galaxies; "
                f"got dims {by.dims} with sizes {dict(by.sizes)}"
            )
        return by.values.astype(float), str(by.name or "by")
    if isinstance(by, tuple):
        if len(by) != 2:
            raise DiagnosticsError(f"{func}: a tuple `by` must be (variable, label), got {by!r}")
        name, label = by
        da = require(idata, func, "constant_data", [name])[name]
        other = [d for d in da.dims if d != GALAXY]
        if len(other) != 1:
            raise DiagnosticsError(
                f"{func}: by=({name!r}, {label!r}) needs constant_data['{name}'] with one dim "
                f"besides galaxy; it has dims {da.dims}"
            )
        if label not in da[other[0]].values:
            raise DiagnosticsError(
                f"{func}: {label!r} is not a {other[0]} of constant_data['{name}']; "
                f"choose one of {list(da[other[0]].values)}"
            )
        return da.sel({other[0]: label}).values.astype(float), f"{name}_{label}"
    if isinstance(by, str):
        for group in ("observed_data", "constant_data"):
            if group in idata.groups() and by in idata[group].data_vars:
                da = idata[group][by]
                if da.dims != (GALAXY,):
                    raise DiagnosticsError(
                        f"{func}: {group}['{by}'] has dims {da.dims}; bin on a (galaxy,) "
                        f"variable or pass by=('{by}', label)"
                    )
                return da.values.astype(float), by
        raise DiagnosticsError(
            f"{func}: by={by!r} is not a variable of observed_data or constant_data; {_available(idata)}"
        )
    raise DiagnosticsError(
        f"{func}: by must be a variable name, a (variable, label) tuple or a DataArray, got "
        f"{type(by).__name__}"
    )


def bin_edges(values: np.ndarray, bins: int, label: str = "the `by` variable") -> np.ndarray:
    """Quantile bin edges over the finite ``values``; one bin per value when it has few."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise DiagnosticsError(f"{label} has no finite value to bin on")
    unique = np.unique(finite)
    if unique.size <= bins:
        # A discrete variable (e.g. a detection flag): one bin per value, edges halfway between.
        mids = (unique[:-1] + unique[1:]) / 2
        return np.concatenate([[unique[0]], mids, [unique[-1]]])
    return np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)))


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin (0 .. len(edges) - 2) of each value, the last bin closed; -1 where not finite."""
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, edges.size - 2)
    return np.where(np.isfinite(values), idx, -1)
