"""Figures of emission-line posteriors. Each returns a ``matplotlib.figure.Figure``.

Built on ``matplotlib.figure.Figure`` (not pyplot): nothing is shown or kept in global state;
save with ``fig.savefig``. Inputs are an ``arviz.InferenceData`` from a lines or joint model
(posterior draws of ``flux_*``, dims chain, draw, galaxy) and, for the truth, its
``observed_data`` (the catalog's measured fluxes) or any Dataset with the four ``flux_*``
variables on dim ``galaxy`` (e.g. the simulator's noiseless ``true_flux_*`` renamed).

- :func:`plot_bpt`: the BPT diagram of the truth beside the posterior means, with the
  Kauffmann et al. 2003 and Kewley et al. 2001 curves;
- :func:`plot_lines_pred_vs_true`: posterior median and 68% interval against the truth, per line;
- :func:`plot_lines_corner`: one galaxy's corner plot of the four lines (the paper's Fig. 5b).

The reliability diagram of the BPT class probabilities is
:func:`galppl.diagnostics.plot_reliability` of a :func:`galppl.diagnostics.bpt_reliability`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from galppl import physics
from galppl.data.schema import LINE_FLUXES

from ._checks import DiagnosticsError
from .bpt import bpt_probabilities, line_truth, mean_bpt_ratios

LINE_LABELS = {
    "flux_halpha": r"H$\alpha$",
    "flux_hbeta": r"H$\beta$",
    "flux_nii": r"[N II] 6584",
    "flux_oiii": r"[O III] 5007",
}
CLASS_COLOURS = {0: "tab:blue", 1: "tab:green", 2: "tab:red", -1: "0.6"}
CLASS_NAMES = {0: "star-forming", 1: "composite", 2: "AGN", -1: "undefined"}


def signed_log1p(x):
    """sign(x) log(1 + |x|): the space the lines model works in (finite for every flux)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.log1p(np.abs(x))


def _bpt_curves(ax) -> None:
    n2 = np.linspace(-2.5, 0.04, 300)
    ax.plot(n2, physics.kauffmann03(n2), "k--", lw=1, label="Kauffmann+03")
    n2 = np.linspace(-2.5, 0.46, 300)
    ax.plot(n2, physics.kewley01(n2), "k-", lw=1, label="Kewley+01")


def plot_bpt(idata, truth: xr.Dataset | None = None, *, figsize=(9.0, 4.2), xlim=(-2.0, 1.0), ylim=(-1.5, 1.5),
             **kwargs) -> Figure:
    """The BPT diagram: truth (left) beside the posterior means (right).

    Truth points are coloured by their class; posterior points by the most probable of
    star-forming / composite / AGN (posterior means of the log ratios over the draws where
    they are defined). Galaxies whose ratios are undefined (a flux <= 0) are not drawn; the
    panel titles count them. ``kwargs`` go to ``ax.scatter`` (e.g. ``s``, ``alpha``).
    """
    truth = line_truth(idata, truth)
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    style = {"s": 4, "alpha": 0.6, "linewidths": 0, **kwargs}

    fluxes = [truth[name].values for name in LINE_FLUXES]
    n2, o3 = physics.bpt_ratios(*fluxes)
    classes = physics.bpt_class_of_fluxes(*fluxes)
    means = mean_bpt_ratios(idata.posterior)
    probabilities = bpt_probabilities(idata.posterior)
    predicted = np.where(probabilities.isel(bpt_class=slice(0, 3)).notnull().all("bpt_class"),
                         probabilities.isel(bpt_class=slice(0, 3)).fillna(-1).argmax("bpt_class"), -1)
    panels = ((axes[0], n2, o3, classes, "truth"),
              (axes[1], means["n2"].values, means["o3"].values, predicted, "posterior mean"))
    for ax, x, y, c, title in panels:
        for k in (0, 1, 2):
            pick = (c == k) & np.isfinite(x) & np.isfinite(y)
            ax.scatter(x[pick], y[pick], color=CLASS_COLOURS[k], label=CLASS_NAMES[k], **style)
        _bpt_curves(ax)
        undefined = int((~(np.isfinite(x) & np.isfinite(y))).sum())
        ax.set_title(f"{title} ({undefined} of {len(x)} undefined)")
        ax.set_xlabel(r"log [N II]/H$\alpha$")
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
    axes[0].set_ylabel(r"log [O III]/H$\beta$")
    axes[1].legend(loc="lower left", fontsize="small", markerscale=3)
    return fig


def plot_lines_pred_vs_true(idata, truth: xr.Dataset | None = None, *, max_errorbars: int = 300,
                            figsize=(10.0, 2.9), seed: int = 0, **kwargs) -> Figure:
    """Posterior median (with its 68% interval) against the truth, per line, in signed log1p.

    Both axes are sign(f) ln(1 + |f|), f in 1e-17 erg s-1 cm-2, so negative measured
    fluxes stay on the plot. Error bars are drawn for at most ``max_errorbars`` galaxies
    (a seeded random subset); ``kwargs`` go to ``ax.scatter``. Each panel quotes R^2 in
    that space.
    """
    truth = line_truth(idata, truth)
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, len(LINE_FLUXES))
    rng = np.random.default_rng(seed)
    style = {"s": 3, "alpha": 0.5, "color": "tab:blue", "linewidths": 0, **kwargs}
    for ax, name in zip(axes, LINE_FLUXES):
        draws = signed_log1p(idata.posterior[name].stack(sample=("chain", "draw")).transpose("galaxy", "sample").values)
        low, median, high = np.nanpercentile(draws, [16, 50, 84], axis=1)
        x = signed_log1p(truth[name].values)
        ok = np.isfinite(x) & np.isfinite(median)
        ax.scatter(x[ok], median[ok], **style)
        sub = rng.permutation(np.flatnonzero(ok))[:max_errorbars]
        ax.errorbar(x[sub], median[sub], yerr=[median[sub] - low[sub], high[sub] - median[sub]], fmt="none",
                    ecolor=style["color"], alpha=0.25, lw=0.6)
        span = [min(x[ok].min(), median[ok].min()), max(x[ok].max(), median[ok].max())]
        ax.plot(span, span, "k-", lw=0.8)
        r2 = 1 - np.sum((median[ok] - x[ok]) ** 2) / np.sum((x[ok] - x[ok].mean()) ** 2)
        ax.set_title(f"{LINE_LABELS[name]}  $R^2$={r2:.2f}")
        ax.set_xlabel("true sign ln(1+|f|)")
    axes[0].set_ylabel("posterior median")
    return fig


def plot_lines_corner(idata, galaxy, truth: xr.Dataset | None = None, *, log_space: bool = True,
                      bins: int = 30, figsize=(7.0, 7.0), **kwargs) -> Figure:
    """One galaxy's corner plot of the four line fluxes (the paper's Figure 5b).

    galaxy: the galaxy id (a value of the ``galaxy`` coord). log_space: plot
    sign(f) ln(1 + |f|) (True) or the flux in 1e-17 erg s-1 cm-2. Diagonal: marginal
    histograms; below: 2-d histograms of the draws; the truth (``observed_data`` unless
    given) as red lines. Each axis spans the central 99% of the draws and the truth, so a
    truth far in the tail stays on the plot and a few outlying draws do not squash it.
    ``kwargs`` go to ``ax.hist2d``.
    """
    posterior = idata.posterior
    if galaxy not in posterior["galaxy"].values:
        raise DiagnosticsError(f"galaxy {galaxy!r} is not in the posterior (its galaxy coord holds "
                         f"{posterior['galaxy'].values[:5].tolist()}...)")
    transform = signed_log1p if log_space else (lambda v: np.asarray(v, dtype=np.float64))
    draws = {name: transform(posterior[name].sel(galaxy=galaxy).values.ravel()) for name in LINE_FLUXES}
    truth_values = {}
    if truth is not None or "observed_data" in idata.groups():
        try:
            known = line_truth(idata, truth)
            truth_values = {name: float(transform(known[name].sel(galaxy=galaxy).values)) for name in LINE_FLUXES}
        except DiagnosticsError:
            truth_values = {}
    n = len(LINE_FLUXES)
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(n, n, squeeze=False)
    unit = " [sign ln(1+|f|)]" if log_space else r" [$10^{-17}$ erg/s/cm$^2$]"
    style = {"bins": bins, "cmap": "Blues", **kwargs}
    spans = {name: _span(draws[name], truth_values.get(name)) for name in LINE_FLUXES}
    for i, yname in enumerate(LINE_FLUXES):
        for j, xname in enumerate(LINE_FLUXES):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            x = draws[xname][np.isfinite(draws[xname])]
            if i == j:
                ax.hist(x, bins=bins, range=spans[xname], color="tab:blue", histtype="stepfilled", alpha=0.6)
                if xname in truth_values:
                    ax.axvline(truth_values[xname], color="tab:red", lw=1)
                ax.set_yticks([])
            else:
                both = np.isfinite(draws[xname]) & np.isfinite(draws[yname])
                ax.hist2d(draws[xname][both], draws[yname][both], **{"range": [spans[xname], spans[yname]], **style})
                ax.set_ylim(*spans[yname])
                if xname in truth_values:
                    ax.axvline(truth_values[xname], color="tab:red", lw=1)
                    ax.axhline(truth_values[yname], color="tab:red", lw=1)
                    ax.plot(truth_values[xname], truth_values[yname], "s", color="tab:red", ms=3)
            ax.set_xlim(*spans[xname])
            if i == n - 1:
                ax.set_xlabel(LINE_LABELS[xname] + unit, fontsize="small")
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(LINE_LABELS[yname] + unit, fontsize="small")
            elif j > 0:
                ax.set_yticklabels([])
    fig.suptitle(f"galaxy {galaxy}: posterior of the line fluxes ({len(draws[LINE_FLUXES[0]])} draws)")
    return fig


def _span(values, truth=None, coverage: float = 0.99) -> tuple[float, float]:
    """Axis range of a corner panel: the central ``coverage`` of the finite draws and the truth, padded 5%."""
    finite = values[np.isfinite(values)]
    points = list(np.percentile(finite, [50 * (1 - coverage), 50 * (1 + coverage)])) if finite.size else []
    if truth is not None and np.isfinite(truth):
        points.append(float(truth))
    if not points:
        return 0.0, 1.0
    low, high = min(points), max(points)
    pad = 0.05 * (high - low) if high > low else 0.5
    return float(low - pad), float(high + pad)
