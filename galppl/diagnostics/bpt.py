"""BPT classes of emission-line posteriors: class probabilities per galaxy and their reliability.

A lines or joint model's posterior holds draws of the four line fluxes (chain, draw, galaxy)
and, derived from them draw by draw (``galppl.models.derived``), the BPT class probabilities
``p_bpt_*``. Here they are summarised per galaxy and scored against the class of the truth's
fluxes (``observed_data``, or any Dataset with the four ``flux_*`` on dim ``galaxy``, e.g. the
simulator's noiseless fluxes): a multi-class Brier score and a reliability curve, binned like
the detection head's (:func:`galppl.diagnostics.detection.reliability_curve`).
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from galppl import physics
from galppl.data.schema import LINE_FLUXES

from ._checks import GALAXY, SAMPLE_DIMS, DiagnosticsError, require
from .detection import reliability_curve, reliability_variables


def has_line_draws(idata) -> bool:
    """True when the InferenceData's posterior holds draws of all four line fluxes (a lines or joint model)."""
    return "posterior" in idata.groups() and set(LINE_FLUXES) <= set(idata.posterior.data_vars)


def line_truth(idata, truth: xr.Dataset | None = None) -> xr.Dataset:
    """The true line fluxes of the posterior's galaxies: ``truth`` if given, else ``observed_data``.

    Raises `DiagnosticsError` (a ValueError) naming the missing fluxes when the truth lacks any
    of ``LINE_FLUXES`` (1e-17 erg s-1 cm-2, dim ``galaxy``).
    """
    truth = require(idata, "line_truth", "observed_data") if truth is None else truth
    missing = [name for name in LINE_FLUXES if name not in truth]
    if missing:
        raise DiagnosticsError(f"the truth lacks {missing}: give a Dataset with {list(LINE_FLUXES)} on dim 'galaxy'")
    return truth.sel(galaxy=idata.posterior[GALAXY].values)


def bpt_probabilities(posterior: xr.Dataset) -> xr.DataArray:
    """Class probabilities per galaxy, dims (galaxy, bpt_class) with classes ``physics.BPT_OUTCOMES``.

    Read from the ``p_bpt_*`` variables if present (as the models' derived quantities write
    them), otherwise derived from the line draws by the same function. Rows sum to 1; NaN for
    galaxies without finite draws.
    """
    names = [f"p_bpt_{c}" for c in physics.BPT_OUTCOMES]
    if not set(names) <= set(posterior.data_vars):
        # the models' own definition, so a hand-made InferenceData is scored like a predicted one
        from galppl.models.derived import derived_quantities

        posterior = derived_quantities(posterior)
    reduce = [d for d in SAMPLE_DIMS if d in posterior[names[0]].dims]
    probabilities = xr.concat([posterior[n].mean(reduce) for n in names], dim="bpt_class")
    probabilities = probabilities.assign_coords(bpt_class=list(physics.BPT_OUTCOMES)).transpose(GALAXY, "bpt_class")
    probabilities.attrs = {"units": "", "description": "posterior BPT class probabilities (fraction of draws)"}
    return probabilities.rename("p_bpt")


def mean_bpt_ratios(posterior: xr.Dataset) -> xr.Dataset:
    """Per galaxy posterior means of log10([N II]/H-alpha) (``n2``) and log10([O III]/H-beta) (``o3``).

    Averaged over the draws where both ratios are defined (all four fluxes > 0); NaN for a
    galaxy with no such draw. ``defined_fraction`` says how many draws that was.
    """
    dims = posterior[LINE_FLUXES[0]].dims
    reduce = tuple(dims.index(d) for d in SAMPLE_DIMS if d in dims)
    n2, o3 = physics.bpt_ratios(*(posterior[name].transpose(*dims).values for name in LINE_FLUXES))
    defined = np.isfinite(n2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice" for all-undefined galaxies
        n2_mean, o3_mean = np.nanmean(n2, axis=reduce), np.nanmean(o3, axis=reduce)
    return xr.Dataset(
        {
            "n2": (GALAXY, n2_mean, {"units": "dex", "description": "posterior mean of log10([NII]6584/H-alpha)"}),
            "o3": (GALAXY, o3_mean, {"units": "dex", "description": "posterior mean of log10([OIII]5007/H-beta)"}),
            "defined_fraction": (GALAXY, defined.mean(axis=reduce),
                                 {"units": "", "description": "fraction of draws with both ratios defined"}),
        },
        coords={GALAXY: posterior[GALAXY].values},
    )


def class_reliability(probabilities, outcome, bins: int = 10) -> xr.Dataset:
    """Reliability of class probabilities, pooled over classes (one-vs-rest); numpy in, Dataset out.

    probabilities: (galaxy, class) with classes in ``physics.BPT_OUTCOMES`` order (rows sum
    to 1); outcome: (galaxy,) class index, -1 meaning "undefined" (the last column). Galaxies
    with NaN probabilities are left out (``n_missing``). Returns the multi-class Brier score
    ``brier`` (mean over galaxies of the summed squared error; 0 is perfect), ``n`` galaxies
    and, along ``prob_bin`` (equal-width probability bins), the (galaxy, class) pairs'
    ``mean_predicted`` probability, ``observed_frequency`` of the class (NaN in empty bins)
    and ``bin_count``: the layout of :func:`galppl.diagnostics.detection`'s curve.
    """
    if int(bins) < 1:
        raise DiagnosticsError(f"class_reliability: bins must be a positive integer, got {bins}")
    p = np.asarray(probabilities, dtype=np.float64)
    outcome = np.asarray(outcome)
    if p.ndim != 2 or outcome.shape != p.shape[:1]:
        raise DiagnosticsError(f"class_reliability: probabilities must be (galaxy, class) and outcome (galaxy,); "
                               f"got shapes {p.shape} and {outcome.shape}")
    column = np.where(outcome < 0, p.shape[1] - 1, outcome)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(p)), column] = 1.0
    keep = np.isfinite(p).all(axis=1)
    p, onehot = p[keep], onehot[keep]
    curve = reliability_curve(p.ravel(), onehot.ravel(), int(bins))
    data_vars, coords = reliability_variables(curve)
    ds = xr.Dataset(
        {"brier": float(np.mean(np.sum((p - onehot) ** 2, axis=1))) if len(p) else np.nan,
         "n": int(keep.sum()), "n_missing": int((~keep).sum()), **data_vars},
        coords=coords,
        attrs={"classes": list(physics.BPT_OUTCOMES)[: p.shape[1]]},
    )
    ds["brier"].attrs = {"description": "multi-class Brier score: mean over galaxies of the summed squared error"}
    ds["bin_count"].attrs = {"description": "(galaxy, class) pairs in the bin"}
    return ds


def bpt_reliability(idata, truth: xr.Dataset | None = None, bins: int = 10) -> xr.Dataset:
    """Reliability of the posterior BPT class probabilities against the class of the true fluxes.

    idata: an InferenceData with line draws (a lines or joint model). truth: the fluxes whose
    class is the outcome (default ``observed_data``: for a model's prediction these are the
    measured fluxes, the class the posterior predicts). Galaxies without all four true fluxes
    are left out (``n_missing``). Returns :func:`class_reliability`'s Dataset.
    """
    if not has_line_draws(idata):
        raise DiagnosticsError(f"bpt_reliability needs posterior draws of {list(LINE_FLUXES)}")
    known = line_truth(idata, truth)
    fluxes = [known[name].values for name in LINE_FLUXES]
    outcome = physics.bpt_class_of_fluxes(*fluxes)
    probabilities = bpt_probabilities(idata.posterior).values
    has_truth = np.all([np.isfinite(f) for f in fluxes], axis=0)
    ds = class_reliability(np.where(has_truth[:, None], probabilities, np.nan), outcome, bins)
    ds.attrs["variable"] = "BPT class"
    return ds
