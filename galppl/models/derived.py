"""Derived quantities: draws of physical quantities computed draw by draw from a block's draws.

A block declares what is derived from it by name (``Block.derived``); ``DERIVED`` maps each
name to a function ``(posterior, data) -> xarray.Dataset`` of derived draws on the
posterior's (chain, draw, galaxy) coords, and :func:`add_derived` merges the declared ones
into a posterior. Uncertainties propagate draw by draw: users get probabilities and
posterior draws, not labels.

Registered:

- ``"emission_lines"`` (the lines blocks): the BPT class and its probabilities (Kauffmann et
  al. 2003, Kewley et al. 2001), the Balmer decrement, the H-alpha attenuation (Cardelli et al.
  1989, case B) and the H-alpha star formation rate (Kennicutt & Evans 2012), see
  :func:`derived_quantities`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import xarray as xr

from galppl import physics
from galppl.data.schema import LINE_FLUXES

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
    dims = fluxes[LINE_FLUXES[0]].dims
    sample_dims = [d for d in DRAW_DIMS if d in dims]
    if not sample_dims:
        raise ValueError(f"{LINE_FLUXES[0]} has dims {dims}; expected draws along (chain, draw)")

    ha, hb, nii, oiii = (fluxes[name].transpose(*dims).values for name in LINE_FLUXES)
    finite = np.isfinite(ha) & np.isfinite(hb) & np.isfinite(nii) & np.isfinite(oiii)
    classes = physics.bpt_class_of_fluxes(ha, hb, nii, oiii)
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
        log_sfr = physics.log_sfr_from_halpha(ha, a_halpha, redshift)
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


def emission_line_quantities(posterior: xr.Dataset, data: xr.Dataset) -> xr.Dataset:
    """:func:`derived_quantities` of a posterior with line draws, for the galaxies of ``data``.

    The H-alpha SFR needs a redshift: the posterior's own z draws when the chain models z
    (the joint model, so the redshift uncertainty propagates), else the catalog's ``z``
    (galaxy,) where ``data`` has one (the lines model).
    """
    z = None
    if "z" not in posterior and "z" in data and data["z"].dims == ("galaxy",):
        z = data["z"].astype(np.float64)
    return derived_quantities(posterior, z=z)


DerivedFunction = Callable[[xr.Dataset, xr.Dataset], xr.Dataset]
# Name (as a block's ``derived`` lists it) -> function (posterior, catalog) -> derived draws.
DERIVED: dict[str, DerivedFunction] = {"emission_lines": emission_line_quantities}


def add_derived(posterior: xr.Dataset, blocks: Iterable, data: xr.Dataset) -> xr.Dataset:
    """The posterior with every block's declared derived quantities merged in.

    posterior: draws (chain, draw, galaxy) of the chain's variables, in catalog units.
    blocks: the chain's blocks (``galppl.models.chain.Block``); each names its derived
        quantities in ``derived``, keys of ``DERIVED``, applied in block order.
    data: the catalog the draws are for (e.g. its ``z``, which the lines' SFR needs).

    A chain whose blocks declare nothing gets the posterior back unchanged. Raises
    ValueError naming the block and the registered names if a block declares an unknown
    name (checked for every block before anything is computed).
    """
    blocks = tuple(blocks)
    for block in blocks:
        unknown = [name for name in block.derived if name not in DERIVED]
        if unknown:
            raise ValueError(f"block {block.name!r} declares derived quantities {unknown}, which are not "
                             f"registered; registered names: {sorted(DERIVED)}")
    for block in blocks:
        for name in block.derived:
            posterior = posterior.merge(DERIVED[name](posterior, data))
    return posterior
