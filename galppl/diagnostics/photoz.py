"""Photometric-redshift quality as the field reports it (e.g. Hildebrandt et al. 2010,
Beck et al. 2016 for SDSS): statistics of ``dz / (1 + z)``."""

from __future__ import annotations

import numpy as np

# |dz| / (1 + z) above these is an outlier: 0.05 (SDSS-depth work), 0.15 (the catastrophic cut).
OUTLIER_CUTS = (0.05, 0.15)


def photoz_metrics(z_true, z_est) -> dict[str, float]:
    """NMAD, outlier fractions and bias of redshift estimates (dimensionless).

    ``z_true``: spectroscopic redshifts; ``z_est``: the estimates (a posterior median, say),
    arrays of one shape; pairs where either is NaN are left out and counted in ``n``.
    With ``dz = (z_est - z_true) / (1 + z_true)``: ``nmad`` = 1.4826 median |dz - median dz|,
    ``outliers_0.05`` and ``outliers_0.15`` the fractions with |dz| above 0.05 and 0.15,
    ``bias`` = mean dz, ``median_bias`` = median dz.
    """
    z_true, z_est = np.asarray(z_true, dtype=np.float64), np.asarray(z_est, dtype=np.float64)
    if z_true.shape != z_est.shape:
        raise ValueError(f"z_true and z_est must have one shape, got {z_true.shape} and {z_est.shape}")
    keep = np.isfinite(z_true) & np.isfinite(z_est)
    if not keep.any():
        raise ValueError("no pair of finite redshifts to compare")
    if (z_true[keep] <= -1).any():
        raise ValueError(f"z_true must be > -1, got {z_true[keep].min()}")
    dz = (z_est[keep] - z_true[keep]) / (1 + z_true[keep])
    out = {"n": float(keep.sum()), "nmad": float(1.4826 * np.median(np.abs(dz - np.median(dz))))}
    out.update({f"outliers_{cut:g}": float(np.mean(np.abs(dz) > cut)) for cut in OUTLIER_CUTS})
    out.update({"bias": float(dz.mean()), "median_bias": float(np.median(dz))})
    return out
