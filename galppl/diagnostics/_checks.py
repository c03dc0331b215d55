"""Input validation shared by the diagnostics: which groups and variables a function needs.

Every diagnostic reads an ``arviz.InferenceData`` laid out as the models write it:

- ``posterior``: one variable per parameter, dims ``(chain, draw, galaxy)``;
- ``observed_data``: the truth (catalog or simulated value) per parameter, dims ``(galaxy,)``,
  NaN where the catalog has no value;
- ``constant_data``: model inputs (``mag`` (galaxy, band), ``quality``, ...).

The helpers here turn a missing group or variable into a `DiagnosticsError` that names what
the function needed and what the InferenceData actually holds.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import arviz as az
import numpy as np
import xarray as xr

SAMPLE_DIMS = ("chain", "draw")
GALAXY = "galaxy"

# Posterior variables that are discrete indicators or probabilities, not continuous parameters:
# calibration statistics (PIT, coverage, SBC) assume a continuous parameter.
DISCRETE_VARIABLES = frozenset({"oh_detected", "bpt_class"})


class DiagnosticsError(ValueError):
    """An InferenceData (or another input) lacks what a diagnostic needs."""


def _describe_groups(idata: az.InferenceData) -> str:
    groups = list(idata.groups())
    return ", ".join(groups) if groups else "(none)"


def require(idata, func: str, group: str, var_names: Iterable[str] = ()) -> xr.Dataset:
    """Return ``idata[group]`` after checking it exists and holds every name in ``var_names``.

    Raises `DiagnosticsError` such as "accuracy needs group 'observed_data' with variable
    'log_sfr'; idata has groups posterior, constant_data".
    """
    if not isinstance(idata, az.InferenceData):
        raise DiagnosticsError(
            f"{func} needs an arviz.InferenceData, got {type(idata).__name__}; build one with "
            "az.InferenceData(posterior=..., observed_data=...)"
        )
    var_names = list(var_names)
    if group not in idata.groups():
        what = (
            f" with variable{'s' if len(var_names) > 1 else ''} "
            + ", ".join(f"'{v}'" for v in var_names)
            if var_names
            else ""
        )
        raise DiagnosticsError(
            f"{func} needs group '{group}'{what}; idata has groups {_describe_groups(idata)}"
        )
    ds = idata[group]
    missing = [v for v in var_names if v not in ds.data_vars]
    if missing:
        raise DiagnosticsError(
            f"{func} needs group '{group}' with variable "
            + ", ".join(f"'{v}'" for v in missing)
            + f"; group '{group}' has variables {', '.join(map(str, ds.data_vars)) or '(none)'}"
        )
    return ds


def is_continuous_parameter(idata: az.InferenceData, name: Hashable) -> bool:
    """True for a posterior variable that is a continuous parameter: not a 0/1 flag, a class
    label or a probability head (``p_*``), and stored as floating point."""
    if name in DISCRETE_VARIABLES or str(name).startswith("p_"):
        return False
    return bool(np.issubdtype(idata.posterior[name].dtype, np.floating))


def is_simulated(idata: az.InferenceData) -> bool:
    """``posterior.attrs["simulated"]`` as a bool (netCDF stores it as 0/1 or a string)."""
    value = idata.posterior.attrs.get("simulated", False)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def resolve_var_names(
    idata, var_names: str | Sequence[str] | None, func: str, *, need_truth: bool = True
) -> list[str]:
    """The parameters a diagnostic works on.

    ``None`` means every continuous posterior variable that also has a truth in
    ``observed_data``; when ``need_truth`` is False and the idata has no ``observed_data``,
    every continuous posterior variable. (Derived quantities such as ``balmer_decrement`` have
    no truth, so they are used only when named.) Explicit names are checked against the
    groups they need.
    """
    post = require(idata, func, "posterior")
    if isinstance(var_names, str):
        var_names = [var_names]
    if var_names is None:
        if need_truth or "observed_data" in idata.groups():
            obs = require(idata, func, "observed_data")
            names = [
                str(v) for v in post.data_vars if v in obs.data_vars and is_continuous_parameter(idata, v)
            ]
        else:
            names = [str(v) for v in post.data_vars if is_continuous_parameter(idata, v)]
        if not names:
            raise DiagnosticsError(
                f"{func} found no continuous parameter in 'posterior'"
                + (" that also has a truth in 'observed_data'" if need_truth else "")
                + f"; posterior has {', '.join(map(str, post.data_vars)) or '(none)'}"
            )
        return names
    names = list(var_names)
    if not names:
        raise DiagnosticsError(f"{func} needs at least one variable name, got an empty list")
    require(idata, func, "posterior", names)
    if need_truth:
        require(idata, func, "observed_data", names)
    return names


def _check_layout(post: xr.DataArray, name: str, func: str) -> None:
    expected = {*SAMPLE_DIMS, GALAXY}
    if set(post.dims) != expected:
        raise DiagnosticsError(
            f"{func}: posterior variable '{name}' has dims {tuple(post.dims)}; expected "
            f"(chain, draw, galaxy)"
        )


def _check_same_galaxies(a: xr.DataArray, b: xr.DataArray, what: str, func: str) -> None:
    if a.sizes[GALAXY] != b.sizes[GALAXY]:
        raise DiagnosticsError(
            f"{func}: {what} has {b.sizes[GALAXY]} galaxies but the posterior has {a.sizes[GALAXY]}"
        )
    if GALAXY in a.coords and GALAXY in b.coords and not np.array_equal(
        a[GALAXY].values, b[GALAXY].values
    ):
        raise DiagnosticsError(
            f"{func}: the galaxy ids of {what} differ from the posterior's (same galaxies in the "
            "same order are needed)"
        )


def draws_and_truth(
    idata, name: str, func: str, *, thin: int | None = None
) -> tuple[np.ndarray, np.ndarray, xr.DataArray]:
    """Posterior draws ``(galaxy, sample)``, truth ``(galaxy,)`` and the galaxy coordinate.

    A galaxy with any non-finite draw (the models write NaN draws for galaxies whose inputs
    are unusable, ``constant_data["usable"]`` False) gets a NaN truth here, so every
    diagnostic leaves it out exactly like a galaxy without a truth and counts it as missing.
    """
    post = require(idata, func, "posterior", [name])[name]
    obs = require(idata, func, "observed_data", [name])[name]
    _check_layout(post, name, func)
    if obs.dims != (GALAXY,):
        raise DiagnosticsError(
            f"{func}: observed_data variable '{name}' has dims {obs.dims}; expected ('galaxy',)"
        )
    _check_same_galaxies(post, obs, f"observed_data['{name}']", func)
    if thin is not None:
        if int(thin) < 1:
            raise DiagnosticsError(f"{func}: thin must be a positive integer, got {thin}")
        post = post.isel(draw=slice(None, None, int(thin)))
    draws = post.transpose(GALAXY, *SAMPLE_DIMS).values.reshape(post.sizes[GALAXY], -1).astype(float)
    usable = np.isfinite(draws).all(axis=1)
    truth = np.where(usable, obs.values.astype(float), np.nan)
    return draws, truth, galaxy_coord(post)


def draws_of(idata, name: str, func: str) -> np.ndarray:
    """Posterior draws ``(galaxy, sample)`` of one variable (no truth needed)."""
    post = require(idata, func, "posterior", [name])[name]
    _check_layout(post, name, func)
    return post.transpose(GALAXY, *SAMPLE_DIMS).values.reshape(post.sizes[GALAXY], -1).astype(float)


def flagged_out_of_distribution(idata: az.InferenceData) -> np.ndarray:
    """Boolean per galaxy of the posterior: flagged out-of-distribution by
    ``GalaxyPosterior.predict`` (``constant_data['out_of_distribution']``); all False where the
    InferenceData carries no such flag."""
    constant = idata.constant_data if "constant_data" in idata.groups() else {}
    if "out_of_distribution" in constant:
        return constant["out_of_distribution"].values.astype(bool)
    return np.zeros(idata.posterior.sizes["galaxy"], dtype=bool)


def galaxy_coord(da: xr.DataArray) -> np.ndarray:
    """The galaxy ids of ``da`` (0..n-1 when it has no galaxy coordinate)."""
    if GALAXY in da.coords:
        return da[GALAXY].values
    return np.arange(da.sizes[GALAXY])


def check_probability(value: float, name: str, func: str, *, open_interval: bool = True) -> float:
    """A probability in (0, 1) (or [0, 1] when ``open_interval`` is False)."""
    value = float(value)
    ok = 0.0 < value < 1.0 if open_interval else 0.0 <= value <= 1.0
    if not ok:
        bounds = "(0, 1)" if open_interval else "[0, 1]"
        raise DiagnosticsError(f"{func}: {name} must lie in {bounds}, got {value}")
    return value
