"""Point-estimate accuracy: R^2, RMSE, bias, NMAD and outlier fraction per parameter.

Definitions (``x`` the posterior point estimate, ``t`` the truth, over galaxies with a finite
truth):

- ``r2``: coefficient of determination ``1 - sum((x - t)^2) / sum((t - mean(t))^2)``;
- ``rmse``: ``sqrt(mean((x - t)^2))``, in the parameter's units;
- residual ``r``: ``x - t``, except for redshift ``z`` where it is the photometric-redshift
  convention ``(x - t) / (1 + t)`` (e.g. Ilbert et al. 2006, A&A 457, 841);
- ``bias``: ``mean(r)``;
- ``nmad``: normalised median absolute deviation ``1.4826 * median(|r - median(r)|)``, a
  robust standard deviation (Hoaglin, Mosteller & Tukey 1983; Brammer et al. 2008);
- ``outlier_fraction``: fraction with ``|r| > 0.05`` for ``z`` (``|dz|/(1+z) > 0.05``), and
  ``|r| > 3 * nmad`` for every other parameter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from ._checks import DiagnosticsError, draws_and_truth, resolve_var_names
from .binning import bin_edges, bin_index, by_values

NMAD_SCALE = 1.4826  # 1 / Phi^-1(3/4): makes the MAD of a Gaussian equal its sigma
Z_OUTLIER = 0.05  # |dz|/(1+z) threshold for a redshift outlier
NMAD_OUTLIER = 3.0  # |dx| > 3 NMAD for every other parameter
REDSHIFT_NAMES = frozenset({"z"})

METRICS = ("r2", "rmse", "bias", "nmad", "outlier_fraction")


def point_metrics(
    pred: np.ndarray, truth: np.ndarray, *, redshift: bool = False
) -> dict[str, float]:
    """Accuracy metrics of point estimates ``pred`` against ``truth`` (numpy core).

    Pairs where either value is not finite are left out and counted in ``n_missing``.
    """
    pred = np.asarray(pred, dtype=float)
    truth = np.asarray(truth, dtype=float)
    ok = np.isfinite(pred) & np.isfinite(truth)
    n = int(ok.sum())
    out = {"count": n, "n_missing": int(ok.size - n)}
    if n == 0:
        return out | dict.fromkeys(METRICS, np.nan)
    x, t = pred[ok], truth[ok]
    dx = x - t
    resid = dx / (1.0 + t) if redshift else dx
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    nmad = float(NMAD_SCALE * np.median(np.abs(resid - np.median(resid))))
    threshold = Z_OUTLIER if redshift else NMAD_OUTLIER * nmad
    return out | {
        "r2": 1.0 - float(np.sum(dx**2)) / ss_tot if n > 1 and ss_tot > 0 else np.nan,
        "rmse": float(np.sqrt(np.mean(dx**2))),
        "bias": float(np.mean(resid)),
        "nmad": nmad,
        "outlier_fraction": float(np.mean(np.abs(resid) > threshold)),
    }


def _point_estimate(draws: np.ndarray, point: str) -> np.ndarray:
    if point == "mean":
        return draws.mean(axis=1)
    if point == "median":
        return np.median(draws, axis=1)
    raise DiagnosticsError(f"accuracy: point must be 'mean' or 'median', got {point!r}")


def accuracy(
    idata,
    var_names: str | Sequence[str] | None = None,
    by=None,
    bins: int = 5,
    point: str = "mean",
) -> xr.Dataset:
    """Accuracy of the posterior point estimates against the truth in ``observed_data``.

    Parameters
    ----------
    idata : arviz.InferenceData
        Needs ``posterior`` and ``observed_data`` holding every name in ``var_names``.
    var_names : str or list of str, optional
        Parameters; default every continuous parameter with a truth.
    by : str, (str, label) or xarray.DataArray, optional
        Bin the galaxies on this variable: a ``(galaxy,)`` variable of ``observed_data`` or
        ``constant_data`` (e.g. ``"z"``), a labelled slice of one (``("mag", "r")``), or a
        DataArray with dim ``galaxy``. Galaxies with a NaN ``by`` value are left out of every bin.
    bins : int
        Number of quantile bins of ``by`` (fewer when ``by`` takes fewer distinct values).
    point : {"mean", "median"}
        The point estimate taken from the draws.

    Returns
    -------
    xarray.Dataset
        ``r2``, ``rmse`` (parameter units), ``bias`` and ``nmad`` (residual units, see the module
        docstring), ``outlier_fraction``, ``count`` (galaxies used) and ``n_missing`` (galaxies
        left out because the truth or the estimate is not finite), with dim ``parameter`` and,
        when ``by`` is given, ``bin`` (coords ``bin_low``, ``bin_high``, ``by`` in attrs).
        Coordinates ``residual`` (which residual each parameter's bias/NMAD use) and ``units``
        (the posterior variable's units attr).
    """
    if int(bins) < 1:
        raise DiagnosticsError(f"accuracy: bins must be a positive integer, got {bins}")
    names = resolve_var_names(idata, var_names, "accuracy")
    estimates = {}
    for name in names:
        draws, truth, _ = draws_and_truth(idata, name, "accuracy")
        estimates[name] = (_point_estimate(draws, point), truth)
    n_gal = next(iter(estimates.values()))[1].size

    keys = ("count", "n_missing", *METRICS)
    if by is None:
        rows = [point_metrics(p, t, redshift=n in REDSHIFT_NAMES) for n, (p, t) in estimates.items()]
        data = {k: ("parameter", np.array([r[k] for r in rows])) for k in keys}
        coords = {"parameter": names}
        attrs = {}
    else:
        values, label = by_values(idata, by, n_gal, "accuracy")
        edges = bin_edges(values, int(bins), f"accuracy: by={label!r}")
        idx = bin_index(values, edges)
        nbins = edges.size - 1
        table = {k: np.full((len(names), nbins), np.nan) for k in keys}
        for i, (name, (p, t)) in enumerate(estimates.items()):
            for b in range(nbins):
                sel = idx == b
                row = point_metrics(p[sel], t[sel], redshift=name in REDSHIFT_NAMES)
                for k in keys:
                    table[k][i, b] = row[k]
        data = {k: (("parameter", "bin"), v) for k, v in table.items()}
        for k in ("count", "n_missing"):
            data[k] = (("parameter", "bin"), table[k].astype(int))
        coords = {
            "parameter": names,
            "bin": np.arange(nbins),
            "bin_low": ("bin", edges[:-1]),
            "bin_high": ("bin", edges[1:]),
        }
        attrs = {"by": label, "n_without_by": int((idx < 0).sum())}

    coords["residual"] = ("parameter", ["dz/(1+z)" if n in REDSHIFT_NAMES else "x_pred - x_true" for n in names])
    coords["units"] = ("parameter", [str(idata.posterior[n].attrs.get("units", "")) for n in names])
    ds = xr.Dataset(data, coords=coords, attrs=attrs | {"point_estimate": point})
    ds["r2"].attrs = {"units": "", "description": "coefficient of determination"}
    ds["rmse"].attrs = {"units": "parameter units", "description": "root-mean-square error"}
    ds["bias"].attrs = {"units": "residual units", "description": "mean residual"}
    ds["nmad"].attrs = {"units": "residual units", "description": "1.4826 median|r - median r|"}
    ds["outlier_fraction"].attrs = {
        "description": f"|dz|/(1+z) > {Z_OUTLIER} for z, |r| > {NMAD_OUTLIER} NMAD otherwise"
    }
    ds["count"].attrs = {"description": "galaxies with a finite truth and estimate"}
    ds["n_missing"].attrs = {"description": "galaxies left out: truth or estimate not finite"}
    return ds
