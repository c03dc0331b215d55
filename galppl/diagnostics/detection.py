"""Detectability: how well the Bernoulli head predicts whether a quantity is measurable.

The props model predicts ``p_oh_detected``, the probability that 12+log(O/H) is measurable
for a galaxy; ``observed_data["oh_detected"]`` says whether it was. Reported: the confusion
matrix at a threshold, accuracy, precision, recall, ROC AUC, the Brier score
(``mean((p - y)^2)``, Brier 1950) and a reliability curve (predicted probability in bins
against the observed frequency; DeGroot & Fienberg 1983).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from sklearn.metrics import roc_auc_score

from ._checks import GALAXY, SAMPLE_DIMS, DiagnosticsError, check_probability, require


def reliability_curve(prob: np.ndarray, outcome: np.ndarray, bins: int) -> dict:
    """Reliability curve (numpy core): ``bins`` equal-width bins of the predicted probability
    ``prob`` on [0, 1], each with its count, mean predicted probability and observed frequency
    of the 0/1 ``outcome`` (NaN in empty bins). Both arrays finite, same shape."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(which, weights=prob, minlength=bins) / count
        freq = np.bincount(which, weights=outcome, minlength=bins) / count
    return {"edges": edges, "bin_count": count, "mean_predicted": mean_pred, "observed_frequency": freq}


def reliability_variables(curve: dict) -> tuple[dict, dict]:
    """The data variables and coords (dim ``prob_bin``, ``bin_low``/``bin_high``) of a
    :func:`reliability_curve`, as every reliability Dataset of the diagnostics lays them out."""
    edges = curve["edges"]
    data_vars = {name: ("prob_bin", curve[name]) for name in ("mean_predicted", "observed_frequency", "bin_count")}
    coords = {"prob_bin": np.arange(edges.size - 1), "bin_low": ("prob_bin", edges[:-1]),
              "bin_high": ("prob_bin", edges[1:])}
    return data_vars, coords


def detection_metrics(
    prob: np.ndarray, observed: np.ndarray, *, threshold: float = 0.5, bins: int = 10
) -> dict:
    """Detection metrics of predicted probabilities ``prob`` against 0/1 ``observed`` (numpy
    core). Galaxies with a non-finite value in either are left out (``n_missing``)."""
    prob = np.asarray(prob, dtype=float)
    obs = np.asarray(observed, dtype=float)
    ok = np.isfinite(prob) & np.isfinite(obs)
    p, y = prob[ok], obs[ok]
    if not np.isin(y, (0.0, 1.0)).all():
        raise DiagnosticsError(f"detection: observed values must be 0 or 1, got {np.unique(y)}")
    if ((p < 0) | (p > 1)).any():
        raise DiagnosticsError("detection: predicted probabilities must lie in [0, 1]")
    pred = (p >= threshold).astype(int)
    y = y.astype(int)
    confusion = np.array([[np.sum((y == t) & (pred == q)) for q in (0, 1)] for t in (0, 1)])
    tn, fp, fn, tp = confusion.ravel()
    n = int(y.size)
    both_classes = 0 < y.sum() < n
    return {
        "confusion": confusion,
        "n": n,
        "n_missing": int(ok.size - n),
        "accuracy": (tp + tn) / n if n else np.nan,
        "precision": tp / (tp + fp) if tp + fp else np.nan,
        "recall": tp / (tp + fn) if tp + fn else np.nan,
        "roc_auc": float(roc_auc_score(y, p)) if both_classes else np.nan,
        "brier": float(np.mean((p - y) ** 2)) if n else np.nan,
        "base_rate": float(y.mean()) if n else np.nan,
        **reliability_curve(p, y, bins),
    }


def detection(
    idata,
    var: str = "oh_detected",
    prob: str | None = "p_oh_detected",
    threshold: float = 0.5,
    bins: int = 10,
) -> xr.Dataset:
    """Confusion matrix, accuracy, precision, recall, ROC AUC, Brier score, reliability curve.

    Parameters
    ----------
    idata : arviz.InferenceData
        Needs ``observed_data[var]`` (0/1 per galaxy) and ``posterior[prob]`` (the predicted
        probability, dims chain, draw, galaxy; averaged over the draws). With ``prob=None`` the
        probability is the mean of the 0/1 posterior draws of ``var``.
    threshold : float
        A galaxy is predicted detected when its probability is at least ``threshold``.
    bins : int
        Equal-width probability bins of the reliability curve.

    Returns
    -------
    xarray.Dataset
        ``confusion`` (true, predicted), coords 0/1, counts; scalars ``accuracy``,
        ``precision``, ``recall``, ``roc_auc`` (NaN when one class is absent), ``brier``,
        ``base_rate``, ``n``, ``n_missing``; reliability curve along ``prob_bin``:
        ``mean_predicted``, ``observed_frequency`` (NaN in empty bins), ``bin_count``.
    """
    check_probability(threshold, "threshold", "detection", open_interval=False)
    if int(bins) < 1:
        raise DiagnosticsError(f"detection: bins must be a positive integer, got {bins}")
    obs = require(idata, "detection", "observed_data", [var])[var]
    source = var if prob is None else prob
    post = require(idata, "detection", "posterior", [source])[source]
    if obs.dims != (GALAXY,) or GALAXY not in post.dims:
        raise DiagnosticsError(
            f"detection: observed_data['{var}'] must have dims ('galaxy',) and posterior['{source}'] "
            f"a galaxy dim; got {obs.dims} and {post.dims}"
        )
    p = post.mean([d for d in SAMPLE_DIMS if d in post.dims]).transpose(GALAXY).values
    if p.shape != obs.shape:
        raise DiagnosticsError(
            f"detection: posterior['{source}'] has {p.size} galaxies, observed_data['{var}'] {obs.size}"
        )
    m = detection_metrics(p, obs.values, threshold=threshold, bins=int(bins))
    scalars = ("n", "n_missing", "accuracy", "precision", "recall", "roc_auc", "brier", "base_rate")
    curve_vars, curve_coords = reliability_variables(m)
    ds = xr.Dataset(
        {"confusion": (("true", "predicted"), m["confusion"]), **{k: m[k] for k in scalars}, **curve_vars},
        coords={"true": [0, 1], "predicted": [0, 1], **curve_coords},
        attrs={"variable": var, "probability": source, "threshold": threshold},
    )
    ds["brier"].attrs = {"description": "mean squared error of the probability (0 is perfect)"}
    return ds
