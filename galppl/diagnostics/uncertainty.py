"""Aleatoric vs epistemic uncertainty from an ensemble of fits (the paper's Table 2).

K models fitted with different seeds (or on bootstrap resamples) predict posteriors for the
same galaxies. For galaxy ``g`` and model ``k`` let ``m_k(g)`` and ``v_k(g)`` be the posterior
mean and variance. By the law of total variance the ensemble's predictive variance splits into

- aleatoric ``mean_k v_k(g)``: spread each model assigns (noise the data cannot resolve);
- epistemic ``var_k m_k(g)``: disagreement between models (what more data/training would fix),

(Lakshminarayanan et al. 2017; Kendall & Gal 2017). Per parameter the table reports
``sigma_ale = sqrt(mean_g mean_k v_k(g))`` and ``sigma_epi = sqrt(mean_g var_k m_k(g))``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from ._checks import GALAXY, DiagnosticsError, draws_of, galaxy_coord, require, resolve_var_names


def split_variance(means: np.ndarray, variances: np.ndarray) -> dict[str, float]:
    """Aleatoric/epistemic split of K models' per-galaxy posterior means and variances
    (arrays ``(K, galaxy)``; numpy core). Variances across models use ``ddof=0`` so that
    ``sigma_total^2 = sigma_ale^2 + sigma_epi^2`` is the mixture's variance exactly; as an
    estimate of the spread of the population of models this makes ``sigma_epi`` low by
    ``sqrt((K-1)/K)`` on average (0.89 for K = 5)."""
    if means.shape[1] == 0:
        return dict.fromkeys(("sigma_ale", "sigma_epi", "sigma_total", "frac_ale", "frac_epi"), np.nan)
    ale2 = float(np.mean(np.mean(variances, axis=0)))
    epi2 = float(np.mean(np.var(means, axis=0)))
    tot2 = ale2 + epi2
    return {
        "sigma_ale": np.sqrt(ale2),
        "sigma_epi": np.sqrt(epi2),
        "sigma_total": np.sqrt(tot2),
        "frac_ale": ale2 / tot2 if tot2 > 0 else np.nan,
        "frac_epi": epi2 / tot2 if tot2 > 0 else np.nan,
    }


def _check_same_galaxies(idatas) -> np.ndarray:
    ref = None
    for k, idata in enumerate(idatas):
        post = require(idata, "uncertainty_split", "posterior")
        if GALAXY not in post.dims:
            raise DiagnosticsError(f"uncertainty_split: idatas[{k}].posterior has no 'galaxy' dim")
        gal = galaxy_coord(post[next(iter(post.data_vars))]) if post.data_vars else np.array([])
        if ref is None:
            ref = gal
        elif gal.shape != ref.shape or not np.array_equal(gal, ref):
            raise DiagnosticsError(
                f"uncertainty_split: idatas[{k}] has galaxies that differ from idatas[0] "
                f"({gal.size} vs {ref.size} galaxies, or different ids/order); every fit of the "
                "ensemble must predict the same galaxies in the same order"
            )
    return ref


def uncertainty_split(idatas: Sequence, var_names: str | Sequence[str] | None = None) -> xr.Dataset:
    """Aleatoric and epistemic uncertainty per parameter from an ensemble of K >= 2 fits.

    Parameters
    ----------
    idatas : list of arviz.InferenceData
        One per ensemble member, each with ``posterior`` draws of the same galaxies.
    var_names : str or list of str, optional
        Parameters; default the continuous posterior variables of ``idatas[0]``.

    Returns
    -------
    xarray.Dataset
        Dim ``parameter``: ``sigma_ale``, ``sigma_epi``, ``sigma_total`` (parameter units; the
        square root of the sum of squares), ``frac_ale`` and ``frac_epi`` (shares of the total
        variance, summing to 1), ``count`` (galaxies with finite draws in every fit, the ones
        used). ``n_models`` and ``n_galaxies`` in attrs.
    """
    idatas = list(idatas)
    if len(idatas) < 2:
        raise DiagnosticsError(
            f"uncertainty_split needs an ensemble of at least 2 fits, got {len(idatas)}"
        )
    names = resolve_var_names(idatas[0], var_names, "uncertainty_split", need_truth=False)
    for k, idata in enumerate(idatas[1:], start=1):
        try:
            require(idata, "uncertainty_split", "posterior", names)
        except DiagnosticsError as err:
            raise DiagnosticsError(f"idatas[{k}]: {err}") from None
    gal = _check_same_galaxies(idatas)
    rows, units, n_used = [], [], []
    for name in names:
        draws = np.array([draws_of(idata, name, "uncertainty_split") for idata in idatas])
        # Galaxies with non-finite draws in any fit (unusable inputs) are left out and counted.
        usable = np.isfinite(draws).all(axis=(0, 2))
        draws = draws[:, usable]
        rows.append(split_variance(draws.mean(axis=2), draws.var(axis=2)))
        units.append(str(idatas[0].posterior[name].attrs.get("units", "")))
        n_used.append(int(usable.sum()))
    keys = ("sigma_ale", "sigma_epi", "sigma_total", "frac_ale", "frac_epi")
    ds = xr.Dataset(
        {k: ("parameter", np.array([r[k] for r in rows])) for k in keys}
        | {"count": ("parameter", np.array(n_used))},
        coords={"parameter": names, "units": ("parameter", units)},
        attrs={"n_models": len(idatas), "n_galaxies": int(gal.size)},
    )
    ds["sigma_ale"].attrs = {"description": "sqrt(mean over galaxies of the mean within-model variance)"}
    ds["sigma_epi"].attrs = {"description": "sqrt(mean over galaxies of the variance of model means)"}
    ds["frac_epi"].attrs = {"description": "sigma_epi^2 / sigma_total^2"}
    return ds
