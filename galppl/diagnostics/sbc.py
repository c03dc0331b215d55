"""Simulation-based calibration (Talts et al. 2018, arXiv:1804.06788).

For each simulated galaxy the rank of the true parameter among the ``L`` posterior draws is
uniform on ``{0, ..., L}`` when the inference is calibrated and the truths were drawn from the
model's own prior and simulator. On real (held-out) data the same rank statistic is a
held-out PIT: it tests calibration against the catalog's values, not self-consistency of the
inference, so the result is labelled accordingly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from scipy import stats

from ._checks import GALAXY, DiagnosticsError, draws_and_truth, is_simulated, resolve_var_names
from .calibration import HELD_OUT_LABEL, SBC_LABEL, uniformity_test


def rank_statistics(draws: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank of ``truth`` (galaxy,) among ``draws`` (galaxy, L): ``#{draws < truth}`` plus a
    uniformly random share of the ties, in ``{0, ..., L}``; NaN where the truth is NaN."""
    less = (draws < truth[:, None]).sum(axis=1)
    equal = (draws == truth[:, None]).sum(axis=1)
    ranks = less + rng.integers(0, equal + 1)
    return np.where(np.isfinite(truth), ranks.astype(float), np.nan)


def rank_chi2(ranks: np.ndarray, n_draws: int, bins: int) -> tuple[float, float]:
    """Chi-square test of ranks in ``{0..n_draws}`` against the discrete uniform.

    Ranks are grouped into ``bins`` bins of (nearly) equal width; each bin's expected
    probability is its exact share of the ``n_draws + 1`` rank values, so the test is exact
    when ``n_draws + 1`` is not a multiple of ``bins``.
    """
    r = ranks[np.isfinite(ranks)].astype(int)
    if r.size < 2:
        return np.nan, np.nan
    which = (np.arange(n_draws + 1) * bins) // (n_draws + 1)
    expected_p = np.bincount(which, minlength=bins) / (n_draws + 1)
    observed = np.bincount(which[r], minlength=bins)
    res = stats.chisquare(observed, expected_p * r.size)
    return float(res.statistic), float(res.pvalue)


def sbc(
    idata,
    var_names: str | Sequence[str] | None = None,
    thin: int | None = None,
    bins: int | None = None,
    seed: int = 0,
    ci_prob: float = 0.99,
) -> xr.Dataset:
    """Rank statistics of the truth among the posterior draws, with uniformity tests.

    Parameters
    ----------
    idata : arviz.InferenceData
        Needs ``posterior`` and ``observed_data``. ``posterior.attrs["simulated"]`` true marks
        truths drawn from the simulator (SBC); otherwise the result is labelled
        "held-out PIT (not SBC)".
    thin : int, optional
        Keep every ``thin``-th draw of each chain (to reduce autocorrelated MCMC draws to
        near-independent ones, as SBC assumes; amortised flow draws are independent already).
    bins : int, optional
        Bins of the chi-square test; default ``min(20, n_galaxies // 10)`` (at least 2), so
        that each bin expects about 10 galaxies or more.
    seed : int
        Seed of the random tie-breaking and the simulated ECDF bands.
    ci_prob : float
        Probability of the simultaneous ECDF band used for ``ecdf_in_band``.

    Returns
    -------
    xarray.Dataset
        ``rank`` (parameter, galaxy) in ``{0..n_draws}`` (NaN without a truth); per parameter
        ``n`` (galaxies ranked), ``chi2``, ``chi2_pvalue`` (binned ranks vs uniform),
        ``ks_pvalue`` and ``ecdf_in_band`` (of the fractional ranks ``(rank + U)/(n_draws + 1)``,
        continuous uniform under calibration); ``n_draws`` and ``label`` in attrs.
    """
    names = resolve_var_names(idata, var_names, "sbc")
    rng = np.random.default_rng(seed)
    ranks, gal, n_draws = [], None, None
    for name in names:
        draws, truth, gal = draws_and_truth(idata, name, "sbc", thin=thin)
        n_draws = draws.shape[1]
        ranks.append(rank_statistics(draws, truth, rng))
    ranks = np.array(ranks)
    n_ranked = np.isfinite(ranks).sum(axis=1)
    if bins is None:
        bins = int(np.clip(n_ranked.min() // 10, 2, 20))
    if int(bins) < 2 or int(bins) > n_draws + 1:
        raise DiagnosticsError(f"sbc: bins must be between 2 and n_draws + 1 = {n_draws + 1}, got {bins}")

    chi2, chi2_p, ks_p, in_band = [], [], [], []
    for i in range(len(names)):
        c, p = rank_chi2(ranks[i], n_draws, int(bins))
        frac = (ranks[i] + rng.uniform(size=ranks[i].shape)) / (n_draws + 1)
        u = uniformity_test(frac, ci_prob=ci_prob, seed=seed)
        chi2.append(c)
        chi2_p.append(p)
        ks_p.append(u["ks_pvalue"])
        in_band.append(u["ecdf_in_band"])
    simulated = is_simulated(idata)
    ds = xr.Dataset(
        {
            "rank": (("parameter", GALAXY), ranks),
            "n": ("parameter", n_ranked),
            "chi2": ("parameter", np.array(chi2)),
            "chi2_pvalue": ("parameter", np.array(chi2_p)),
            "ks_pvalue": ("parameter", np.array(ks_p)),
            "ecdf_in_band": ("parameter", np.array(in_band)),
        },
        coords={"parameter": names, GALAXY: gal},
        attrs={
            "label": SBC_LABEL if simulated else HELD_OUT_LABEL,
            "simulated": int(simulated),
            "n_draws": int(n_draws),
            "bins": int(bins),
            "ci_prob": ci_prob,
            "thin": 0 if thin is None else int(thin),
        },
    )
    ds["rank"].attrs = {"description": "rank of the truth among the posterior draws"}
    return ds
