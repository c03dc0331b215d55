"""Conditional calibration: coverage and PIT per quantile bin of a conditioning variable.

Marginal coverage can look right while one part of the sample is over-confident and another
under-confident. Binning the galaxies on a variable (r magnitude, redshift, stellar mass) and
computing the coverage and PIT in each bin shows such local failures.

Which values to bin on matters. A calibrated posterior ``p(theta | x)`` covers its truth at the
nominal rate conditional on anything computed from the data ``x``: the catalog's r magnitude or
a parameter's posterior median (``condition_on="estimate"``, the default). Conditional on a
*true* parameter value (``condition_on="truth"``) it need not: where the posterior is wider
than a small fraction of the population's spread, it is pulled towards the population's centre,
so in the outer bins of the truth the truths lie in the posteriors' tails (a frequentist
coverage test; e.g. PIT means of about 0.39 and 0.60 in the outer quartiles of a calibrated
synthetic posterior whose width is a quarter of the spread).

Each parameter's own posterior width is such a function of ``x`` too (:data:`POSTERIOR_SD`):
binned on it, a posterior whose narrow intervals are too narrow and wide ones too wide (a flow
that has not learned how the residuals' spread varies, which no single temperature fixes)
fails the outer bins in opposite directions while its marginal coverage is right.

Layered as arviz-stats does: `binned_calibration_values` (numpy) -> `binned_calibration`
(xarray in, xarray out) -> `conditional_calibration` (an InferenceData).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from ._checks import GALAXY, SAMPLE_DIMS, DiagnosticsError, require, resolve_var_names
from .binning import bin_edges, bin_index, by_values
from .calibration import check_levels, interval_hits, pit, uniformity_test

# Conditioning variables by label: the catalog's r magnitude, redshift and stellar mass.
DEFAULT_CONDITIONS = {"r": ("mag", "r"), "z": "z", "log_mstar": "log_mstar"}
# A `by` entry binning each parameter's galaxies on that parameter's own posterior standard deviation.
POSTERIOR_SD = "posterior standard deviation"
DEFAULT_BINS = 4  # quartiles
CALIBRATION_LEVELS = (0.68, 0.95)
CONDITION_ON = ("estimate", "truth")


def binned_calibration_values(
    pit_values: np.ndarray, hits: np.ndarray, bins: np.ndarray, n_bins: int
) -> dict[str, np.ndarray]:
    """Coverage and PIT statistics per bin (numpy core).

    ``pit_values`` (galaxy,) and ``hits`` (level, galaxy: 1 when the truth lies in the
    interval, 0 outside) are NaN where the truth is missing; ``bins`` (galaxy,) holds each
    galaxy's bin in ``0 .. n_bins - 1`` (-1: in no bin). Returns ``count`` (bin,): galaxies with
    a truth, ``coverage`` (level, bin), ``pit_mean`` (bin,) and ``pit_ks_pvalue`` (bin,): the
    Kolmogorov-Smirnov p-value of the bin's PIT values against Uniform(0, 1). NaN for an
    empty bin.
    """
    count = np.zeros(n_bins, dtype=int)
    cov = np.full((hits.shape[0], n_bins), np.nan)
    pit_mean = np.full(n_bins, np.nan)
    pit_p = np.full(n_bins, np.nan)
    has_truth = np.isfinite(pit_values)
    for b in range(n_bins):
        sel = (bins == b) & has_truth
        count[b] = int(sel.sum())
        if count[b] == 0:
            continue
        cov[:, b] = hits[:, sel].mean(axis=1)
        pit_mean[b] = pit_values[sel].mean()
        pit_p[b] = uniformity_test(pit_values[sel], band=False)["ks_pvalue"]
    return {"count": count, "coverage": cov, "pit_mean": pit_mean, "pit_ks_pvalue": pit_p}


def binned_calibration(
    pit_ds: xr.Dataset, hits: xr.DataArray, conditions: xr.Dataset, bins: int = DEFAULT_BINS
) -> xr.Dataset:
    """Coverage and PIT per quantile bin of each conditioning variable.

    Parameters
    ----------
    pit_ds : xarray.Dataset
        A `pit` result: one (galaxy,) variable per parameter.
    hits : xarray.DataArray
        (parameter, level, galaxy): 1 where the truth lies in the central credible interval of
        that level, 0 outside, NaN without a truth.
    conditions : xarray.Dataset
        One (galaxy,) variable per conditioning variable, or (parameter, galaxy) for values of
        each parameter's own (its posterior width); galaxies with a NaN value are in no bin.
    bins : int
        Quantile bins per conditioning variable (fewer when it takes fewer distinct values).

    Returns
    -------
    xarray.Dataset
        Dims ``parameter``, ``level``, ``by`` (the conditioning variables) and ``bin``:
        ``count`` (galaxies with a truth in the bin), ``coverage``, ``stderr`` (binomial
        ``sqrt(level (1 - level) / count)`` of a calibrated posterior), ``deviation``
        (``(coverage - level) / stderr``; < 0 over-confident), ``pit_mean`` (0.5 calibrated,
        above: the posterior sits below the truth), ``pit_mean_stderr`` (``1 / sqrt(12 count)``),
        ``pit_ks_pvalue``; coords ``bin_low`` and ``bin_high`` (parameter, by, bin) in the
        conditioning variable's units (its quantiles among the galaxies with that parameter's
        truth), NaN for a bin the variable's few distinct values leave empty;
        ``n_without_by`` (by,): galaxies left out for a NaN conditioning value.
    """
    if int(bins) < 1:
        raise DiagnosticsError(f"binned_calibration: bins must be a positive integer, got {bins}")
    names = [str(v) for v in pit_ds.data_vars]
    labels = [str(v) for v in conditions.data_vars]
    levels = hits["level"].values
    shape = (len(names), levels.size, len(labels), int(bins))
    count = np.zeros((len(names), len(labels), int(bins)), dtype=int)
    cov = np.full(shape, np.nan)
    pit_mean = np.full(count.shape, np.nan)
    pit_p = np.full(count.shape, np.nan)
    low = np.full(count.shape, np.nan)
    high = np.full_like(low, np.nan)
    missing = np.zeros(len(labels), dtype=int)
    for j, label in enumerate(labels):
        condition = conditions[label].astype(float)
        per_parameter = "parameter" in condition.dims
        bin_edges(condition.values.ravel(), int(bins), f"the conditioning variable {label!r}")  # raises when it has no finite value
        missing[j] = int(np.isnan(condition.values).reshape(-1, condition.sizes[GALAXY]).any(0).sum())
        for i, name in enumerate(names):
            values = (condition.sel(parameter=name) if per_parameter else condition).values
            # Quantiles among the galaxies with this parameter's truth: O/H, measured on a fifth
            # of the galaxies (mostly low-mass ones), gets four filled bins of stellar mass too.
            has_truth = np.isfinite(pit_ds[name].values) & np.isfinite(values)
            if not has_truth.any():
                continue
            edges = bin_edges(values[has_truth], int(bins), f"the conditioning variable {label!r}")
            idx = bin_index(values, edges)
            low[i, j, : edges.size - 1], high[i, j, : edges.size - 1] = edges[:-1], edges[1:]
            row = binned_calibration_values(pit_ds[name].values, hits.sel(parameter=name).values, idx, int(bins))
            count[i, j], cov[i, :, j] = row["count"], row["coverage"]
            pit_mean[i, j], pit_p[i, j] = row["pit_mean"], row["pit_ks_pvalue"]
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.where(count > 0, count, np.nan)[:, None]
        stderr = np.sqrt(levels[None, :, None, None] * (1 - levels[None, :, None, None]) / n)
        pit_se = 1.0 / np.sqrt(12.0 * n[:, 0])
    dims = ("parameter", "level", "by", "bin")
    ds = xr.Dataset(
        {
            "count": (("parameter", "by", "bin"), count),
            "coverage": (dims, cov),
            "stderr": (dims, stderr),
            "deviation": (dims, (cov - levels[None, :, None, None]) / stderr),
            "pit_mean": (("parameter", "by", "bin"), pit_mean),
            "pit_mean_stderr": (("parameter", "by", "bin"), pit_se),
            "pit_ks_pvalue": (("parameter", "by", "bin"), pit_p),
            "n_without_by": ("by", missing),
        },
        coords={
            "parameter": names,
            "level": levels,
            "by": labels,
            "bin": np.arange(int(bins)),
            "bin_low": (("parameter", "by", "bin"), low),
            "bin_high": (("parameter", "by", "bin"), high),
        },
        attrs={"label": pit_ds.attrs.get("label", "PIT")},
    )
    ds["coverage"].attrs = {"description": "fraction of truths inside the central interval, per bin"}
    ds["deviation"].attrs = {"description": "(coverage - level) / binomial stderr; < 0 over-confident"}
    ds["pit_mean"].attrs = {"description": "mean PIT per bin; 0.5 when calibrated"}
    return ds


def condition_values(
    idata, by: Mapping | Sequence | None, condition_on: str, names: Sequence[str], *, skip_missing: bool, func: str
) -> tuple[xr.Dataset, dict[str, str]]:
    """The conditioning values, a (galaxy,) or (parameter, galaxy) variable per label, and the
    skipped labels.

    A ``by`` entry that names a posterior parameter is binned on its posterior median when
    ``condition_on`` is "estimate", on its truth in ``observed_data`` when "truth";
    :data:`POSTERIOR_SD` gives a (parameter, galaxy) variable: the posterior standard
    deviation of each of ``names``. An absent variable raises `DiagnosticsError` naming it and
    what the InferenceData holds, or, with ``skip_missing``, is returned in the dict label ->
    reason.
    """
    if condition_on not in CONDITION_ON:
        raise DiagnosticsError(f"{func}: condition_on must be one of {CONDITION_ON}, got {condition_on!r}")
    post = require(idata, func, "posterior")
    if by is None:
        by = DEFAULT_CONDITIONS
    if not isinstance(by, Mapping):
        by = {(f"{b[0]}_{b[1]}" if isinstance(b, tuple) else str(getattr(b, "name", b))): b for b in by}
    if not by:
        raise DiagnosticsError(f"{func}: by needs at least one conditioning variable, got none")
    n_gal = post.sizes[GALAXY]
    values, skipped = {}, {}
    for label, spec in by.items():
        if isinstance(spec, str) and spec == POSTERIOR_SD:
            # skipna=False: a galaxy predict refused has all-NaN draws, so NaN (left out of
            # the bins) without numpy's all-NaN warning; a usable galaxy's draws are all finite.
            sd = np.stack([post[n].std(SAMPLE_DIMS, skipna=False).values for n in names])
            values[str(label)] = xr.DataArray(sd, dims=("parameter", GALAXY), coords={"parameter": list(names)})
            continue
        if condition_on == "estimate" and isinstance(spec, str) and spec in post.data_vars:
            spec = post[spec].median(SAMPLE_DIMS)
        try:
            values[str(label)], _ = by_values(idata, spec, n_gal, func)
        except DiagnosticsError as err:
            if not skip_missing:
                raise
            skipped[str(label)] = str(err)
    if not values:
        raise DiagnosticsError(f"{func}: no conditioning variable is available: " + "; ".join(skipped.values()))
    coords = {GALAXY: post[GALAXY].values} if GALAXY in post.coords else {}
    arrays = {k: v if isinstance(v, xr.DataArray) else xr.DataArray(v, dims=(GALAXY,)) for k, v in values.items()}
    return xr.Dataset(arrays).assign_coords(coords), skipped


def conditional_calibration(
    idata,
    by: Mapping | Sequence | None = None,
    *,
    var_names: str | Sequence[str] | None = None,
    levels: Sequence[float] = CALIBRATION_LEVELS,
    bins: int = DEFAULT_BINS,
    condition_on: str = "estimate",
    skip_missing: bool = False,
    seed: int = 0,
) -> xr.Dataset:
    """Coverage of the central credible intervals and the PIT per quantile bin of ``by``.

    Parameters
    ----------
    idata : arviz.InferenceData
        Needs ``posterior`` and ``observed_data`` (the truth); ``constant_data["mag"]`` for r.
    by : dict label -> variable, or a list of variables, optional
        The conditioning variables, each as `accuracy`'s ``by`` takes it (``"z"``,
        ``("mag", "r")``, a (galaxy,) DataArray), or :data:`POSTERIOR_SD` (each parameter's
        galaxies binned on its own posterior standard deviation). Default
        `DEFAULT_CONDITIONS`: r magnitude (mag), redshift and stellar mass (dex(Msun)).
    var_names : str or list of str, optional
        Parameters; default every continuous parameter with a truth.
    levels : sequence of float in (0, 1)
        Nominal levels of the central (equal-tailed) intervals.
    bins : int
        Quantile bins per conditioning variable (default 4, quartiles).
    condition_on : {"estimate", "truth"}
        Bin a conditioning variable that is a posterior parameter on its posterior median
        (valid for a calibrated posterior, see the module docstring) or on its truth.
    skip_missing : bool
        Leave out absent conditioning variables (listed in ``attrs["skipped"]``) instead of
        raising `DiagnosticsError`.
    seed : int
        Seed of the PIT's tie-breaking (the same PIT values as ``pit(idata, seed=seed)``).

    Returns
    -------
    xarray.Dataset
        As `binned_calibration`, with ``attrs["condition_on"]`` and ``attrs["skipped"]``
        ("label: reason" lines, empty when none was skipped).
    """
    names = resolve_var_names(idata, var_names, "conditional_calibration")
    levels = check_levels(levels, "central", "conditional_calibration")
    conditions, skipped = condition_values(
        idata, by, condition_on, names, skip_missing=skip_missing, func="conditional_calibration"
    )
    pit_ds = pit(idata, names, seed=seed)
    hits = xr.DataArray(
        np.stack([interval_hits(idata, n, levels, "central", "conditional_calibration") for n in names]),
        dims=("parameter", "level", GALAXY),
        coords={"parameter": names, "level": levels},
    )
    ds = binned_calibration(pit_ds, hits, conditions, bins)
    ds.attrs |= {
        "condition_on": condition_on,
        "skipped": "\n".join(f"{k}: {v}" for k, v in skipped.items()),
        "seed": seed,
    }
    return ds
