"""Figures of the diagnostics. Each returns a ``matplotlib.figure.Figure``.

Figures are built with ``matplotlib.figure.Figure`` (not pyplot), so nothing is shown or kept
in global state; save them with ``fig.savefig``. Each function accepts either the diagnostic's
result Dataset or an InferenceData (computing the diagnostic), ``figsize``/``ncols`` for the
layout and ``**kwargs`` passed to the main artist (e.g. ``color``).

The PIT and SBC rank ECDF-difference panels with simultaneous confidence bands are drawn by
``arviz.plot_ecdf`` (Sailynoja, Buerkner & Vehtari 2022).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import arviz as az
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from scipy import stats

from ._checks import DiagnosticsError, draws_and_truth, resolve_var_names
from .accuracy import point_metrics
from .calibration import coverage as _coverage
from .calibration import pit as _pit
from .calibration import tarp as _tarp
from .conditional import conditional_calibration as _conditional
from .detection import detection as _detection
from .sbc import sbc as _sbc


def _grid(n: int, ncols: int | None, figsize, panel=(3.2, 2.8)) -> tuple[Figure, list]:
    ncols = min(n, ncols or 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=figsize or (panel[0] * ncols, panel[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def _ecdf_difference(ax, values: np.ndarray, *, ci_prob: float, seed: int, num_trials: int, **kwargs) -> None:
    """PIT-ECDF minus the uniform CDF with a simultaneous band, by arviz.plot_ecdf.

    The band is simulated from ``num_trials`` uniform samples: without numba, arviz's default
    "optimized" band takes ~4 s a panel at n = 400, the simulated one ~1 s at 500 trials."""
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        # arviz warns that it assumes a continuous variable; PIT/fractional ranks are continuous.
        warnings.simplefilter("ignore", UserWarning)
        az.plot_ecdf(
            values,
            cdf=stats.uniform().cdf,
            difference=True,
            confidence_bands="simulated",
            num_trials=num_trials,
            ci_prob=ci_prob,
            eval_points=np.linspace(0.0, 1.0, 101),
            rvs=lambda n, random_state=None: rng.uniform(size=n),
            random_state=seed,
            ax=ax,
            plot_kwargs=kwargs or None,
        )
    ax.axhline(0.0, color="0.5", lw=0.6)


def plot_pit_ecdf(
    data,
    var_names: str | Sequence[str] | None = None,
    *,
    ci_prob: float = 0.99,
    seed: int = 0,
    num_trials: int = 500,
    figsize=None,
    ncols: int | None = None,
    **kwargs,
) -> Figure:
    """PIT ECDF-difference plot with simultaneous ``ci_prob`` bands, one panel per parameter.

    ``data`` is a `pit` result or an InferenceData (its PIT is computed with ``seed``). A
    calibrated posterior stays inside the band; a U-shaped PIT (over-confident) dips then
    rises, a hump (under-confident) rises then dips, a bias shifts the whole curve.
    """
    if isinstance(data, az.InferenceData):
        pit_ds = _pit(data, var_names, seed=seed)
        names = [str(v) for v in pit_ds.data_vars]
    else:
        pit_ds = data
        names = [str(v) for v in pit_ds.data_vars] if var_names is None else list(np.atleast_1d(var_names))
    label = pit_ds.attrs.get("label", "PIT")
    fig, axes = _grid(len(names), ncols, figsize)
    for ax, name in zip(axes, names, strict=True):
        v = pit_ds[name].values
        v = v[np.isfinite(v)]
        if v.size < 2:
            ax.set_title(f"{name}: no truths")
            continue
        _ecdf_difference(ax, v, ci_prob=ci_prob, seed=seed, num_trials=num_trials, **kwargs)
        p = stats.kstest(v, "uniform").pvalue
        ax.set_title(f"{name} (KS p={p:.2g}, n={v.size})", fontsize=9)
        ax.set_xlabel("PIT")
        ax.set_ylabel("ECDF - uniform")
    fig.suptitle(f"{label}: ECDF difference, {ci_prob:.0%} simultaneous band")
    return fig


def plot_sbc(
    data,
    var_names=None,
    *,
    ci_prob: float = 0.99,
    seed: int = 0,
    num_trials: int = 500,
    figsize=None,
    ncols=None,
    **kwargs,
) -> Figure:
    """SBC rank ECDF-difference plot (Talts et al. 2018; Sailynoja et al. 2022).

    ``data`` is an `sbc` result or an InferenceData. Ranks are shown as fractional ranks
    ``(rank + U) / (n_draws + 1)``, uniform on (0, 1) under calibration, with a simultaneous
    ``ci_prob`` band; the title carries the label ("SBC" or "held-out PIT (not SBC)").
    """
    ds = _sbc(data, var_names, seed=seed, ci_prob=ci_prob) if isinstance(data, az.InferenceData) else data
    names = [str(p) for p in ds["parameter"].values]
    rng = np.random.default_rng(seed)
    fig, axes = _grid(len(names), ncols, figsize)
    for ax, name in zip(axes, names, strict=True):
        r = ds["rank"].sel(parameter=name).values
        r = r[np.isfinite(r)]
        if r.size < 2:
            ax.set_title(f"{name}: no truths")
            continue
        frac = (r + rng.uniform(size=r.size)) / (ds.attrs["n_draws"] + 1)
        _ecdf_difference(ax, frac, ci_prob=ci_prob, seed=seed, num_trials=num_trials, **kwargs)
        p = float(ds["chi2_pvalue"].sel(parameter=name))
        ax.set_title(f"{name} (chi2 p={p:.2g})", fontsize=9)
        ax.set_xlabel("fractional rank")
        ax.set_ylabel("ECDF - uniform")
    fig.suptitle(f"{ds.attrs.get('label', 'SBC')}: rank ECDF difference, {ci_prob:.0%} band")
    return fig


def plot_coverage(data, var_names=None, *, figsize=None, **kwargs) -> Figure:
    """Empirical against nominal coverage, one line per parameter, with the binomial 95%
    band of a calibrated posterior around the diagonal (for the smallest ``count``).
    Below the diagonal: over-confident; above: under-confident."""
    ds = _coverage(data, var_names=var_names) if isinstance(data, az.InferenceData) else data
    fig = Figure(figsize=figsize or (4.5, 4.2), layout="constrained")
    ax = fig.subplots()
    lev = ds["level"].values
    n = int(ds["count"].where(ds["count"] > 0).min()) if (ds["count"] > 0).any() else 0
    if n:
        half = 1.96 * np.sqrt(lev * (1 - lev) / n)
        ax.fill_between(lev, lev - half, lev + half, color="0.85", label=f"95% binomial (n={n})")
    ax.plot([0, 1], [0, 1], color="0.4", lw=0.8, ls="--")
    for name in ds["parameter"].values:
        ax.plot(lev, ds["coverage"].sel(parameter=name), marker="o", ms=3, label=str(name), **kwargs)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="nominal level", ylabel="empirical coverage")
    ax.set_title(f"coverage of {ds.attrs.get('interval', 'central')} intervals")
    ax.legend(fontsize=7)
    return fig


def plot_conditional_calibration(data, var_names=None, *, figsize=None, **kwargs) -> Figure:
    """Coverage per quantile bin: a column per conditioning variable, a row per level.

    ``data`` is a `conditional_calibration` result or an InferenceData (computed with its
    defaults). Each panel shows the nominal coverage (dashed) inside a grey band of +-2
    binomial standard errors (of the bin's smallest count over parameters) and one curve per
    parameter. ``kwargs`` go to the curves (``Axes.plot``).
    """
    ds = _conditional(data, var_names=var_names) if isinstance(data, az.InferenceData) else data
    labels, levels = [str(b) for b in ds["by"].values], ds["level"].values
    fig = Figure(figsize=figsize or (3.4 * len(labels), 2.6 * levels.size + 0.4), layout="constrained")
    axes = fig.subplots(levels.size, len(labels), squeeze=False, sharex="col")
    for j, label in enumerate(labels):
        d = ds.sel(by=label)
        x = np.flatnonzero(np.isfinite(d["bin_low"].values).any(0))
        n_min = np.maximum(d["count"].isel(bin=x).min("parameter").values, 1)
        for k, lev in enumerate(levels):
            ax = axes[k, j]
            half = 2 * np.sqrt(lev * (1 - lev) / n_min)
            ax.fill_between(x, lev - half, lev + half, color="0.88", lw=0, label="+-2 SE")
            ax.axhline(lev, color="0.4", lw=0.8, ls="--", label="nominal")
            for i, name in enumerate(d["parameter"].values):
                style = {"color": f"C{i}", "marker": "o", "ms": 3, "label": str(name)} | kwargs
                ax.plot(x, d["coverage"].sel(parameter=name, level=lev).isel(bin=x), **style)
            ax.set_ylabel(f"{lev:.0%} coverage", fontsize=8)
            ax.set_title(f"{lev:.0%} interval by {label}", fontsize=9)
        # Each parameter's bins are quantiles among its own galaxies, so a bin has no one range.
        axes[-1, j].set_xticks(x, [str(b + 1) for b in x], fontsize=7)
        axes[-1, j].set_xlabel(f"quantile bin of {label} (per parameter)", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    how = {"estimate": "posterior median", "truth": "true value"}.get(ds.attrs.get("condition_on"))
    fig.suptitle("coverage per bin" + (f"; a parameter as condition: its {how}" if how else ""), fontsize=9)
    return fig


def plot_tarp(data, var_names=None, *, seed: int = 0, figsize=None, **kwargs) -> Figure:
    """TARP expected coverage probability against credibility (Lemos et al. 2023)."""
    ds = _tarp(data, var_names, seed=seed) if isinstance(data, az.InferenceData) else data
    fig = Figure(figsize=figsize or (4.5, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.4", lw=0.8, ls="--")
    kwargs.setdefault("label", f"ATC={float(ds['atc']):+.3f}, KS p={float(ds['ks_pvalue']):.2g}")
    ax.plot(ds["alpha"], ds["ecp"], **kwargs)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="credibility level", ylabel="expected coverage")
    ax.set_title(f"TARP: {ds.attrs.get('var_names', '')}".replace(",", ", "), fontsize=9)
    ax.legend(fontsize=8)
    return fig


def plot_pred_vs_true(
    idata,
    var_names=None,
    *,
    point: str = "mean",
    figsize=None,
    ncols=None,
    max_points: int = 2000,
    seed: int = 0,
    interval_kwargs: dict | None = None,
    **kwargs,
) -> Figure:
    """Posterior point estimate against the truth, with the central 68% interval (16th-84th
    percentile) as a vertical bar, one panel per parameter, R^2 in the title.

    The bar is the interval itself, not symmetric error bars around the point: for a skewed
    posterior (e.g. a line flux near zero) the mean can lie outside it. At most ``max_points``
    galaxies (a seeded random subset) are drawn per panel; R^2 uses all of them. ``kwargs`` go
    to the points (``Axes.plot``), ``interval_kwargs`` to the bars (``Axes.vlines``).
    """
    names = resolve_var_names(idata, var_names, "plot_pred_vs_true")
    if point not in ("mean", "median"):
        raise DiagnosticsError(f"plot_pred_vs_true: point must be 'mean' or 'median', got {point!r}")
    fig, axes = _grid(len(names), ncols, figsize)
    rng = np.random.default_rng(seed)
    kwargs = {"marker": "o", "ls": "none", "ms": 2, "alpha": 0.7} | kwargs
    interval_kwargs = {"lw": 0.5, "alpha": 0.5, "color": kwargs.get("color", "C0")} | (interval_kwargs or {})
    for ax, name in zip(axes, names, strict=True):
        draws, truth, _ = draws_and_truth(idata, name, "plot_pred_vs_true")
        est = draws.mean(axis=1) if point == "mean" else np.median(draws, axis=1)
        lo, hi = np.percentile(draws, [16, 84], axis=1)
        ok = np.isfinite(truth)
        r2 = point_metrics(est, truth)["r2"]
        idx = np.flatnonzero(ok)
        if idx.size > max_points:
            idx = np.sort(rng.choice(idx, max_points, replace=False))
        ax.vlines(truth[idx], lo[idx], hi[idx], **interval_kwargs)
        ax.plot(truth[idx], est[idx], **kwargs)
        if idx.size:
            span = [np.nanmin(truth[idx]), np.nanmax(truth[idx])]
            ax.plot(span, span, color="k", lw=0.8, ls="--")
        units = idata.posterior[name].attrs.get("units", "")
        ax.set_xlabel(f"true {name}" + (f" [{units}]" if units else ""), fontsize=8)
        ax.set_ylabel(f"predicted {name}", fontsize=8)
        ax.set_title(f"{name}: $R^2$={r2:.3f} (n={int(ok.sum())})", fontsize=9)
    return fig


def plot_reliability(data, *, figsize=None, **kwargs) -> Figure:
    """Reliability diagram: observed frequency against mean predicted probability per bin
    (the diagonal is perfect), with the bin counts below.

    ``data``: a `detection` result, a `bpt_reliability` / `class_reliability` result, an
    InferenceData (its `detection` is computed), or a dict label -> such results to compare
    several probabilities on one diagram (the legend gives each one's Brier score).
    ``kwargs`` go to the curves (``Axes.plot``).
    """
    curves = data if isinstance(data, dict) else {"": _detection(data) if isinstance(data, az.InferenceData) else data}
    fig = Figure(figsize=figsize or (4.2, 5.0), layout="constrained")
    ax, axh = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ax.plot([0, 1], [0, 1], color="0.4", lw=0.8, ls="--")
    kwargs = {"marker": "o"} | kwargs
    for k, (label, ds) in enumerate(curves.items()):
        colour = kwargs.get("color", f"C{k}")
        filled = ds["bin_count"].values > 0
        legend = {"label": f"{label} (Brier {float(ds['brier']):.3f})"} if isinstance(data, dict) else {}
        ax.plot(ds["mean_predicted"].values[filled], ds["observed_frequency"].values[filled],
                **({"color": colour} | legend | kwargs))
        edges = np.append(ds["bin_low"].values, ds["bin_high"].values[-1])
        axh.stairs(ds["bin_count"].values, edges, color=colour, fill=len(curves) == 1, alpha=0.6)
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="observed frequency")
    if isinstance(data, dict):
        ax.legend(fontsize="small", loc="upper left")
    else:
        ds = curves[""]
        auc = f"AUC={float(ds['roc_auc']):.3f}, " if "roc_auc" in ds else ""
        ax.set_title(f"{ds.attrs.get('variable', '')}: {auc}Brier={float(ds['brier']):.3f}", fontsize=9)
    axh.set(xlabel="predicted probability", ylabel="count")
    return fig


def plot_uncertainty(ds: xr.Dataset, *, figsize=None, **kwargs) -> Figure:
    """Share of the variance that is aleatoric vs epistemic per parameter (stacked bars), with
    sigma_ale and sigma_epi written on the bars. ``ds`` is an `uncertainty_split` result."""
    names = [str(p) for p in ds["parameter"].values]
    fig = Figure(figsize=figsize or (1.2 * len(names) + 2, 3.5), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(names))
    ale = ds["frac_ale"].values
    color_ale, color_epi = kwargs.pop("color_ale", "C0"), kwargs.pop("color_epi", "C1")
    ax.bar(x, ale, label="aleatoric", color=color_ale, **kwargs)
    ax.bar(x, ds["frac_epi"].values, bottom=ale, label="epistemic", color=color_epi, **kwargs)
    for i, name in enumerate(names):
        s = ds.sel(parameter=name)
        ax.text(i, 0.02, f"{float(s['sigma_ale']):.3g}", ha="center", fontsize=7, color="w")
        ax.text(i, 0.98, f"{float(s['sigma_epi']):.3g}", ha="center", va="top", fontsize=7)
    ax.set_xticks(x, names, rotation=30, fontsize=8)
    ax.set(ylim=(0, 1), ylabel="fraction of variance")
    ax.set_title(f"uncertainty split ({ds.attrs.get('n_models', '?')} models)", fontsize=9)
    ax.legend(fontsize=7, loc="center right")
    return fig
