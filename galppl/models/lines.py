"""The emission-line chain and the physics derived from its draws.

The chain is one block: a 4-d conditional RealNVP (12 affine couplings by default) over the
residuals of the H-alpha, H-beta, [N II] 6584 and [O III] 5007 fibre fluxes around an MLP
mean, conditioned on the representation h (and, in the joint model, optionally on the props
core draws).

The value transform is ``signed_log1p``, y = sign(f) log(1 + |f|) with f in units of
1e-17 erg s-1 cm-2. For the positive fluxes it is meant for it is log1p, i.e. close to
ln f for bright lines and linear near zero, so the flow sees a compact, roughly Gaussian
space spanning four decades of flux. Measured fluxes can be negative (noise, as in
MPA-JHU), even below -1, where plain log1p is NaN; the odd extension is monotone, finite
and exactly invertible (``sign(y) expm1(|y|)``) for every real flux, with derivative
1 / (1 + |f|) > 0, so no flux ever produces a NaN or an infinite Jacobian.

:func:`derived_quantities` turns line draws (chain, draw, galaxy) into draws of physical
quantities, so that uncertainties propagate draw by draw: the BPT class and its
probabilities (Kauffmann et al. 2003, Kewley et al. 2001), the Balmer decrement, the
H-alpha attenuation (Cardelli et al. 1989, case B) and the H-alpha star formation rate
(Kennicutt & Evans 2012). Users get probabilities, not labels.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from galppl import physics
from galppl.data.schema import LINE_FLUXES
from galppl.models.chain import Block

# Which flux plays which role in the BPT ratios.
HALPHA, HBETA, NII, OIII = LINE_FLUXES

# erg s-1 cm-2 per catalog flux unit.
FLUX_CGS = 1e-17
# Mpc in cm (IAU 2015 parsec).
MPC_CM = 3.0856775814913673e24
# Redshift nodes of the luminosity-distance interpolation.
INTERPOLATION_NODES = 4096


def lines_blocks(num_couplings: int = 12, parents: tuple[str, ...] = ()) -> tuple[Block, ...]:
    """The lines chain: one ``"lines"`` RealNVP block over the four line fluxes.

    num_couplings: affine couplings of the flow (the paper's 12).
    parents: earlier blocks the lines are conditioned on. ``()`` for the lines model; in
        the joint model ``("core",)`` makes the line draws depend on the drawn
        (log_mstar, log_sfr, z) (the props chain's ``core`` block), so that the per-galaxy
        posterior keeps the correlations between properties and lines rather than only
        sharing h.
    """
    return (
        Block(
            "lines",
            LINE_FLUXES,
            "realnvp",
            parents=tuple(parents),
            transform="signed_log1p",
            flow_options={"num_couplings": int(num_couplings)},
        ),
    )


# ---------------------------------------------------------------------------- numpy layer
def bpt_ratios(halpha, hbeta, nii, oiii):
    """log10([N II]/H-alpha) and log10([O III]/H-beta) (dimensionless).

    NaN where a ratio is undefined: a flux that is NaN or <= 0 (a noise-dominated
    measurement or draw) has no logarithm, and a ratio of such fluxes says nothing
    about the ionising source.
    """
    halpha, hbeta, nii, oiii = (np.asarray(f, dtype=np.float64) for f in (halpha, hbeta, nii, oiii))
    defined = (halpha > 0) & (hbeta > 0) & (nii > 0) & (oiii > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        n2 = np.where(defined, np.log10(nii / halpha), np.nan)
        o3 = np.where(defined, np.log10(oiii / hbeta), np.nan)
    return n2, o3


def bpt_class_of_fluxes(halpha, hbeta, nii, oiii) -> np.ndarray:
    """BPT class per element (int8): 0 star-forming, 1 composite, 2 AGN, -1 undefined.

    Classes as :func:`galppl.physics.bpt_class` (below Kauffmann et al. 2003: star-forming;
    above Kewley et al. 2001: AGN; between: composite). -1 where any of the four fluxes is
    NaN or <= 0, since then a line ratio has no logarithm.
    """
    n2, o3 = bpt_ratios(halpha, hbeta, nii, oiii)
    return physics.bpt_class(n2, o3).astype(np.int8)


def luminosity_distance_cm(z) -> np.ndarray:
    """Luminosity distance in cm for redshift(s) z in flat LambdaCDM (H0 = 70, Omega_m = 0.3).

    NaN where z is NaN or <= 0 (a line luminosity needs a distance). Posterior z draws are
    millions of distinct values, too many for astropy's per-value integral (tens of seconds),
    so astropy evaluates d_L on a grid of ``INTERPOLATION_NODES`` redshifts, log-spaced over
    the range of z, and log d_L is interpolated linearly in log z: log d_L is nearly linear
    in log z, and the interpolation error is below 1e-6 relative (tested against astropy).
    """
    from astropy.cosmology import FlatLambdaCDM

    z = np.asarray(z, dtype=np.float64)
    out = np.full(z.shape, np.nan)
    ok = np.isfinite(z) & (z > 0)
    if not ok.any():
        return out
    cosmology = FlatLambdaCDM(H0=physics.H0, Om0=physics.OMEGA_M)
    values = z[ok]
    low, high = values.min(), values.max()
    if values.size <= INTERPOLATION_NODES or low == high:
        out[ok] = cosmology.luminosity_distance(values).to_value("Mpc") * MPC_CM
        return out
    grid = np.geomspace(low, high, INTERPOLATION_NODES)
    log_d = np.log(cosmology.luminosity_distance(grid).to_value("Mpc") * MPC_CM)
    out[ok] = np.exp(np.interp(np.log(values), np.log(grid), log_d))
    return out


def log_sfr_from_halpha(flux_halpha, a_halpha, z) -> np.ndarray:
    """Kennicutt & Evans 2012 SFR, log10(Msun/yr), from an H-alpha flux in 1e-17 erg s-1 cm-2.

    L = 4 pi d_L(z)^2 F 10^(0.4 A(H-alpha)) [erg/s]; log SFR = log10 L - 41.27 (Kroupa IMF).
    For a fibre flux this is the SFR inside the fibre, not the galaxy's total. NaN where the
    flux is <= 0 or NaN, A(H-alpha) is NaN, or z is NaN or <= 0.
    """
    flux = np.asarray(flux_halpha, dtype=np.float64)
    a_halpha = np.asarray(a_halpha, dtype=np.float64)
    d_l = luminosity_distance_cm(z)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_l = (np.log10(4 * np.pi) + 2 * np.log10(d_l) + np.log10(np.where(flux > 0, flux, np.nan) * FLUX_CGS)
                 + 0.4 * a_halpha)
    return log_l - physics.KENNICUTT_HALPHA


# ---------------------------------------------------------------------------- xarray layer
DRAW_DIMS = ("chain", "draw")


def derived_quantities(posterior: xr.Dataset, z: xr.DataArray | None = None) -> xr.Dataset:
    """Physical quantities derived draw by draw from the line posterior.

    posterior: draws of ``flux_halpha``, ``flux_hbeta``, ``flux_nii``, ``flux_oiii``
        (1e-17 erg s-1 cm-2) with dims (chain, draw, galaxy); NaN draws (galaxies whose
        inputs are unusable) are carried as NaN.
    z: redshift per galaxy (galaxy,), e.g. the catalog's spectroscopic z. Used for the SFR
        when given; otherwise the posterior's own ``z`` draws are used (the joint model), so
        the redshift uncertainty propagates. With neither, ``log_sfr_halpha`` is left out and
        the returned Dataset's attrs say why.

    Returns an ``xarray.Dataset`` on the posterior's coords with:

    - ``bpt_class`` (chain, draw, galaxy), int8: 0 star-forming, 1 composite, 2 AGN, and -1
      where a draw's line ratio is undefined because one of its four fluxes is <= 0 (or NaN);
    - ``p_bpt_star_forming``, ``p_bpt_composite``, ``p_bpt_agn``, ``p_bpt_undefined``: per
      galaxy, the fraction of the galaxy's draws (over chain and draw) in each class; the
      four sum to 1. They are broadcast along (chain, draw), constant there, like
      ``p_oh_detected``: every variable of an ArviZ posterior group then has (chain, draw)
      and ``az.summary``/``az.plot_*`` treat them like any other (their mean is the
      probability, their sd 0). NaN for a galaxy without finite draws;
    - ``balmer_decrement`` (H-alpha/H-beta), NaN where either flux draw is <= 0;
    - ``a_halpha`` (mag), Cardelli et al. 1989 from the decrement, negative where the draw
      lies below case B (kept, not clipped, so posterior summaries stay unbiased);
    - ``log_sfr_halpha`` (dex(Msun yr-1)), Kennicutt & Evans 2012 from the dust-corrected
      H-alpha luminosity: a fibre (aperture) SFR, not the galaxy's total.

    The last three are NaN for draws where they are undefined (a flux <= 0); summarise
    them with ``az.summary(idata, skipna=True)`` or medians, which count only defined draws.
    """
    missing = [name for name in LINE_FLUXES if name not in posterior]
    if missing:
        raise ValueError(f"derived_quantities needs line draws {list(LINE_FLUXES)}; {missing} are absent "
                         "from the posterior")
    fluxes = {name: posterior[name] for name in LINE_FLUXES}
    for name, values in fluxes.items():
        if "galaxy" not in values.dims:
            raise ValueError(f"{name} has dims {values.dims}; expected (chain, draw, galaxy)")
    dims = fluxes[HALPHA].dims
    sample_dims = [d for d in DRAW_DIMS if d in dims]
    if not sample_dims:
        raise ValueError(f"{HALPHA} has dims {dims}; expected draws along (chain, draw)")

    ha, hb, nii, oiii = (fluxes[name].transpose(*dims).values for name in LINE_FLUXES)
    finite = np.isfinite(ha) & np.isfinite(hb) & np.isfinite(nii) & np.isfinite(oiii)
    classes = bpt_class_of_fluxes(ha, hb, nii, oiii)
    out = xr.Dataset(coords={k: v for k, v in posterior.coords.items() if set(v.dims) <= set(dims)})
    out["bpt_class"] = (dims, classes, {
        "units": "",
        "description": "BPT class draw from log [NII]/Ha and log [OIII]/Hb (Kauffmann+03, Kewley+01); "
                       "-1 where a flux draw is <= 0 or NaN so a ratio is undefined",
        "flag_values": np.array([-1, 0, 1, 2], dtype=np.int8),
        "flag_meanings": "undefined " + " ".join(physics.BPT_CLASSES),
    })

    axes = tuple(dims.index(d) for d in sample_dims)
    n_finite = finite.sum(axis=axes, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        def fraction(mask):
            p = np.where(n_finite > 0, mask.sum(axis=axes, keepdims=True) / n_finite, np.nan)
            return np.broadcast_to(p, classes.shape).astype(np.float32)

        for k, name in enumerate(physics.BPT_CLASSES):
            out[f"p_bpt_{name}"] = (dims, fraction(classes == k), {
                "units": "",
                "description": f"posterior probability that the galaxy is BPT {name.replace('_', '-')} "
                               "(fraction of draws; constant along chain, draw)",
            })
        out["p_bpt_undefined"] = (dims, fraction(finite & (classes == -1)), {
            "units": "",
            "description": "fraction of draws with a line flux <= 0, where the BPT ratios are undefined "
                           "(constant along chain, draw)",
        })

        decrement = np.where((ha > 0) & (hb > 0), ha / hb, np.nan)
        a_halpha = physics.a_halpha_from_balmer(decrement)
    out["balmer_decrement"] = (dims, decrement.astype(np.float32), {
        "units": "",
        "description": "Balmer decrement H-alpha/H-beta (case B intrinsic 2.86); NaN where a flux draw is <= 0",
    })
    out["a_halpha"] = (dims, a_halpha.astype(np.float32), {
        "units": "mag",
        "description": "H-alpha dust attenuation from the Balmer decrement (Cardelli+89, R_V=3.1, case B); "
                       "negative below case B, kept unclipped",
    })

    redshift, source = _redshift(posterior, z, dims)
    if redshift is None:
        out.attrs["log_sfr_halpha"] = ("not computed: the posterior has no z draws and no z was given; "
                                       "pass z=catalog['z'] to derived_quantities")
    else:
        log_sfr = log_sfr_from_halpha(ha, a_halpha, redshift)
        out["log_sfr_halpha"] = (dims, log_sfr.astype(np.float32), {
            "units": "dex(Msun yr-1)",
            "description": "fibre (aperture) SFR, not total: Kennicutt & Evans 2012 from the dust-corrected "
                           f"H-alpha luminosity, flat LCDM H0=70 Om=0.3, redshift from {source}; "
                           "NaN where H-alpha <= 0 or the Balmer decrement is undefined",
        })
    return out


def _redshift(posterior: xr.Dataset, z: xr.DataArray | None, dims) -> tuple[np.ndarray | None, str]:
    """The redshift broadcast to the draws' dims, and where it came from."""
    if z is not None:
        if not isinstance(z, xr.DataArray) or z.dims != ("galaxy",):
            raise ValueError(f"z must be an xarray.DataArray with dims ('galaxy',), got {type(z).__name__} "
                             f"with dims {getattr(z, 'dims', None)}")
        galaxies = posterior["galaxy"].values
        if "galaxy" in z.coords:
            absent = np.setdiff1d(galaxies, z["galaxy"].values)
            if absent.size:
                raise ValueError(f"z lacks galaxies {absent[:5].tolist()} of the posterior")
            z = z.sel(galaxy=galaxies)
        elif z.sizes["galaxy"] != galaxies.size:
            raise ValueError(f"z has {z.sizes['galaxy']} galaxies, the posterior {galaxies.size}")
        shape = [1] * len(dims)
        shape[dims.index("galaxy")] = galaxies.size
        values = np.broadcast_to(z.values.astype(np.float64).reshape(shape), tuple(posterior.sizes[d] for d in dims))
        return values, "the given z"
    if "z" in posterior and set(posterior["z"].dims) == set(dims):
        return posterior["z"].transpose(*dims).values, "the posterior z draws"
    return None, ""


# ---------------------------------------------------------------------------- summaries per galaxy
BPT_OUTCOMES = (*physics.BPT_CLASSES, "undefined")


def bpt_probabilities(posterior: xr.Dataset) -> xr.DataArray:
    """Class probabilities per galaxy, dims (galaxy, bpt_class) with classes ``BPT_OUTCOMES``.

    Read from the ``p_bpt_*`` variables if present (as :func:`derived_quantities` writes
    them), otherwise computed from the line draws. Rows sum to 1; NaN for galaxies without
    finite draws.
    """
    names = [f"p_bpt_{c}" for c in BPT_OUTCOMES]
    if not set(names) <= set(posterior.data_vars):
        posterior = derived_quantities(posterior)
    reduce = [d for d in DRAW_DIMS if d in posterior[names[0]].dims]
    probabilities = xr.concat([posterior[n].mean(reduce) for n in names], dim="bpt_class")
    probabilities = probabilities.assign_coords(bpt_class=list(BPT_OUTCOMES)).transpose("galaxy", "bpt_class")
    probabilities.attrs = {"units": "", "description": "posterior BPT class probabilities (fraction of draws)"}
    return probabilities.rename("p_bpt")


def mean_bpt_ratios(posterior: xr.Dataset) -> xr.Dataset:
    """Per galaxy posterior means of log10([N II]/H-alpha) (``n2``) and log10([O III]/H-beta) (``o3``).

    Averaged over the draws where both ratios are defined (all four fluxes > 0); NaN for a
    galaxy with no such draw. ``defined_fraction`` says how many draws that was.
    """
    dims = posterior[HALPHA].dims
    reduce = tuple(dims.index(d) for d in DRAW_DIMS if d in dims)
    n2, o3 = bpt_ratios(*(posterior[name].transpose(*dims).values for name in LINE_FLUXES))
    defined = np.isfinite(n2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice" for all-undefined galaxies
        n2_mean, o3_mean = np.nanmean(n2, axis=reduce), np.nanmean(o3, axis=reduce)
    galaxy = posterior["galaxy"].values
    return xr.Dataset(
        {
            "n2": ("galaxy", n2_mean, {"units": "dex", "description": "posterior mean of log10([NII]6584/H-alpha)"}),
            "o3": ("galaxy", o3_mean, {"units": "dex", "description": "posterior mean of log10([OIII]5007/H-beta)"}),
            "defined_fraction": ("galaxy", defined.mean(axis=reduce),
                                 {"units": "", "description": "fraction of draws with both ratios defined"}),
        },
        coords={"galaxy": galaxy},
    )
