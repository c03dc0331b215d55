"""Synthetic InferenceData with a known calibration, laid out as the galppl models write it.

For galaxy ``g`` and parameter ``theta`` a "true posterior" ``N(mu_g, s_g)`` is drawn (random
centre and width); the truth is one draw from it, and the reported posterior draws come from
``N(mu_g + bias * s_g, scale * s_g)``. ``scale=1, bias=0`` is calibrated by construction;
``scale < 1`` is over-confident, ``scale > 1`` under-confident, ``bias != 0`` shifted;
``faint_scale`` narrows (or widens) the posteriors of the faintest quarter in r only. Used by
the tests and the calibration benchmark to show that the diagnostics catch each failure.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import xarray as xr

from galppl.data.schema import BANDS, TARGETS

# Centre and spread of mu_g across galaxies, and the range of the posterior widths s_g.
PROPS_PRIOR = {
    "log_mstar": (10.2, 0.6, (0.08, 0.25)),
    "log_sfr": (0.0, 0.8, (0.15, 0.45)),
    "z": (0.1, 0.04, (0.005, 0.02)),
    "log_mbh": (7.6, 0.7, (0.25, 0.5)),
    "oh": (8.85, 0.15, (0.04, 0.12)),
}
LINES_PRIOR = {
    "flux_halpha": (150.0, 60.0, (8.0, 25.0)),
    "flux_hbeta": (45.0, 20.0, (4.0, 10.0)),
    "flux_nii": (60.0, 25.0, (5.0, 12.0)),
    "flux_oiii": (40.0, 20.0, (5.0, 12.0)),
}


def _attrs(name: str) -> dict:
    var = TARGETS.get(name)
    return {"units": var.units, "description": var.description} if var else {"units": "", "description": name}


def synthetic_idata(
    n_galaxies: int = 500,
    n_draws: int = 200,
    *,
    kind: str = "props",
    scale: float = 1.0,
    bias: float = 0.0,
    n_chains: int = 1,
    missing_mbh: float = 0.1,
    simulated: bool = True,
    faint_scale: float = 1.0,
    seed: int = 0,
) -> az.InferenceData:
    """An InferenceData with ``posterior``, ``observed_data`` and ``constant_data``.

    Parameters
    ----------
    kind : {"props", "lines"}
        "props": log_mstar, log_sfr, z, log_mbh, oh plus ``oh_detected`` (0/1 draws) and
        ``p_oh_detected``; oh's truth is NaN where undetected, log_mbh's for a fraction
        ``missing_mbh`` of galaxies. "lines": the four line fluxes, no detection head.
    scale, bias : float
        Posterior width multiplier and shift (in units of the true posterior width ``s_g``).
    simulated : bool
        Written to ``posterior.attrs["simulated"]`` (SBC vs held-out PIT labelling).
    faint_scale : float
        A further width multiplier for the galaxies fainter than the 75th percentile of the r
        magnitude (which is independent of every parameter here): miscalibration in one bin.
    """
    if kind not in ("props", "lines"):
        raise ValueError(f"synthetic_idata: kind must be 'props' or 'lines', got {kind!r}")
    rng = np.random.default_rng(seed)
    galaxy = np.arange(1000, 1000 + n_galaxies)
    prior = PROPS_PRIOR if kind == "props" else LINES_PRIOR
    post, obs, centres = {}, {}, {}
    for name, (centre, spread, (s_lo, s_hi)) in prior.items():
        mu = rng.normal(centre, spread, n_galaxies)
        s = rng.uniform(s_lo, s_hi, n_galaxies)
        truth = rng.normal(mu, s)
        centres[name] = mu + bias * s
        draws = rng.normal(centres[name], scale * s, size=(n_chains, n_draws, n_galaxies))
        post[name] = (("chain", "draw", "galaxy"), draws, _attrs(name))
        obs[name] = (("galaxy",), truth, _attrs(name))
    if kind == "props":
        # Detection head: a calibrated probability, the observed flag drawn from it.
        p = 1.0 / (1.0 + np.exp(-rng.normal(0.8, 1.5, n_galaxies)))
        detected = (rng.uniform(size=n_galaxies) < p).astype(int)
        flags = (rng.uniform(size=(n_chains, n_draws, n_galaxies)) < p).astype(int)
        post["oh_detected"] = (("chain", "draw", "galaxy"), flags, _attrs("oh_detected"))
        post["p_oh_detected"] = (
            ("chain", "draw", "galaxy"),
            np.broadcast_to(p, (n_chains, n_draws, n_galaxies)).copy(),
            {"units": "", "description": "predicted probability that 12+log(O/H) is measurable"},
        )
        obs["oh_detected"] = (("galaxy",), detected, _attrs("oh_detected"))
        obs["oh"][1][detected == 0] = np.nan
        obs["log_mbh"][1][rng.uniform(size=n_galaxies) < missing_mbh] = np.nan
    mag = rng.normal(17.0, 0.8, (n_galaxies, len(BANDS))) + np.linspace(1.0, -0.5, len(BANDS))
    r = mag[:, list(BANDS).index("r")]
    faint = r > np.quantile(r, 0.75)
    # After every random draw, so the other arguments give the same numbers as without it.
    for name, centre in centres.items() if faint_scale != 1.0 else ():
        draws = post[name][1]
        draws[..., faint] = centre[faint] + faint_scale * (draws[..., faint] - centre[faint])
    coords = {"galaxy": galaxy, "chain": np.arange(n_chains), "draw": np.arange(n_draws)}
    return az.InferenceData(
        posterior=xr.Dataset(post, coords=coords, attrs={"simulated": int(simulated)}),
        observed_data=xr.Dataset(obs, coords={"galaxy": galaxy}),
        constant_data=xr.Dataset(
            {
                "mag": (("galaxy", "band"), mag, {"units": "mag", "description": "AB magnitude"}),
                "quality": (("galaxy",), np.zeros(n_galaxies, dtype=np.int64)),
            },
            coords={"galaxy": galaxy, "band": list(BANDS)},
        ),
    )
