"""``galppl.data.simulate``: the mock SDSS Main Galaxy Sample as a galppl catalog (see SIMULATOR.md).

Each galaxy's hidden state (mass, redshift, star formation, metallicity, dust, morphology,
dynamics, AGN) is drawn first, then its observables (ugriz magnitudes, fibre line fluxes,
MPA-JHU-like catalog values, gri image) are drawn from it with noise. Galaxies are drawn in
batches from phi(M*) dV/dz and kept if they pass the Main Galaxy Sample selection, until
``n`` are accepted. Everything is vectorised numpy driven by one ``np.random.Generator``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import xarray as xr

from galppl.data.io import load_catalog, save_catalog
from galppl.data.mock import lines as ml
from galppl.data.mock import photometry as mp
from galppl.data.mock import population as mpop
from galppl.data.mock import properties as mprop
from galppl.data.mock.d4000 import BREAK_NOISE, BreakEstimator
from galppl.data.schema import BANDS, CHANNELS, FLUX_UNIT, attrs_for, flag, new_catalog, validate
from galppl.physics import H0, OMEGA_M, log_mbh_from_sigma

SIMULATOR_VERSION = "galppl-mock-sky 0.6"
CACHE_ENV = "GALPPL_CACHE"
PIXEL_SCALE = 0.396  # arcsec / pixel (SDSS)
_MAX_BATCH = 200_000
MSTAR_FIT_NOISE = 0.04  # dex: SED-fit mass scatter at fixed photometry (model grid, noise)

CITATIONS = (
    "Baldry et al. 2012, MNRAS 421, 621 (stellar mass function)",
    "Strauss et al. 2002, AJ 124, 1810 (Main Galaxy Sample selection)",
    "Speagle et al. 2014, ApJS 214, 15 (star-forming main sequence)",
    "Tremonti et al. 2004, ApJ 613, 898 (mass-metallicity relation)",
    "Mannucci et al. 2010, MNRAS 408, 2115 (fundamental metallicity relation and its 0.05 dex scatter)",
    "McConnell & Ma 2013, ApJ 764, 184 (M_BH-sigma)",
    "Shen et al. 2003, MNRAS 343, 978 (size-mass relations)",
    "Kennicutt & Evans 2012, ARA&A 50, 531 (H-alpha SFR)",
    "Garn & Best 2010, MNRAS 409, 421 (dust vs mass)",
    "Cardelli, Clayton & Mathis 1989, ApJ 345, 245 (extinction curve)",
    "Calzetti et al. 2000, ApJ 533, 682 (continuum attenuation)",
    "Pettini & Pagel 2004, MNRAS 348, L59 (N2 calibration)",
    "Kewley & Ellison 2008, ApJ 681, 1183 (metallicity scale offsets)",
    "Kauffmann et al. 2003, MNRAS 346, 1055 (BPT star-forming line)",
    "Kewley et al. 2001, ApJ 556, 121 (BPT maximum starburst line)",
    "Brinchmann et al. 2004, MNRAS 351, 1151 (line S/N and BPT classes)",
    "Bell et al. 2003, ApJS 149, 289 (colour-based M/L)",
    "Gallazzi et al. 2005, MNRAS 362, 41 (stellar metallicity at fixed mass)",
    "Schlafly & Finkbeiner 2011, ApJ 737, 103 (Milky Way extinction coefficients)",
    "Lupton, Gunn & Szalay 1999, AJ 118, 1406 (asinh magnitudes)",
    "Brammer, van Dokkum & Coppi 2008, ApJ 686, 1503 (template error: SED variety beyond a template set)",
)


class SimulationError(ValueError):
    """Bad arguments to ``simulate`` (the message names the argument and what is allowed)."""


def _check_args(n, seed, image_size) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise SimulationError(f"n must be a positive integer number of galaxies, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SimulationError(f"seed must be a non-negative integer, got {seed!r}")
    if image_size is None or image_size == 0:
        return 0
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise SimulationError(f"image_size must be None, 0 or a positive multiple of 8, got {image_size!r}")
    if image_size < 0 or image_size % 8:
        raise SimulationError(f"image_size must be a positive multiple of 8 (e.g. 64, 160), got {image_size}")
    return int(image_size)


def cache_key(n: int, seed: int, image_size: int) -> str:
    """sha256 of the arguments and the simulator version: the disk-cache key."""
    blob = json.dumps({"n": int(n), "seed": int(seed), "image_size": int(image_size or 0), "version": SIMULATOR_VERSION})
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_path(n: int, seed: int, image_size: int, cache_dir=None) -> Path:
    """Where ``simulate`` caches a catalog: cache_dir, else $GALPPL_CACHE, else ~/.cache/galppl."""
    folder = cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "galppl"
    return Path(folder).expanduser() / f"simulate-{cache_key(n, seed, image_size)}.nc"


class _Tables:
    """Deterministic lookup tables (frozen dataclasses) shared by all batches and calls."""

    def __init__(self):
        self.dist = mpop.DistanceTable.build()
        self.grid = mpop.PopulationGrid.build(self.dist)
        self.sed = mp.SEDTable.build()
        self.break_estimator = BreakEstimator.build(self.grid, self.dist, self.sed)


@cache
def _tables() -> _Tables:
    """The tables, built once per process (0.7 s, most of a small catalog's time)."""
    return _Tables()


def draw_batch(rng: np.random.Generator, size: int, tables: _Tables) -> dict[str, np.ndarray]:
    """Hidden state and noisy observables of ``size`` galaxies drawn from the proposal
    (before the Main Galaxy Sample selection). Returns a dict of arrays keyed by variable name."""
    dist = tables.dist
    z, log_m = tables.grid.draw(rng, size)
    age = dist.age_gyr(z)
    quenched = mprop.draw_quenched(rng, log_m)
    log_sfr = mprop.draw_log_sfr(rng, log_m, quenched, age)
    oh = mprop.draw_oh(rng, log_m, log_sfr, age)
    bt = mprop.draw_bulge_to_total(rng, log_m, quenched)
    log_sigma = mprop.draw_log_sigma(rng, log_m, quenched)
    true_sigma = 10.0**log_sigma
    true_log_mbh = mprop.draw_true_log_mbh(rng, true_sigma)
    a_ha = mprop.draw_a_halpha(rng, log_m)
    ebv_star = mprop.ebv_stellar_from_a_halpha(a_ha, quenched)
    early = bt > 0.5  # Shen et al. 2003 split early/late types by concentration (c > 2.86)
    r50_kpc = mprop.draw_r50_kpc(rng, log_m, early)
    r50 = r50_kpc / dist.kpc_per_arcsec(z)  # arcsec
    r50_b, r50_d = mprop.split_radii(r50, bt)
    q_disc, q_bulge, pa = mprop.draw_axis_ratios(rng, size)
    log_ssfr = log_sfr - log_m
    clump = mprop.clumpiness(log_ssfr, bt)
    # seeing: SDSS median r FWHM ~1.4", g broader and i narrower (Kolmogorov lambda^-0.2)
    psf_r = np.clip(1.4 * np.exp(0.15 * rng.standard_normal(size)), 0.9, 2.5)
    psf = psf_r[:, None] * (np.array([4686.0, 6166.0, 7480.0]) / 6166.0) ** -0.2

    ebv_mw = mp.draw_mw_ebv(rng, size)
    dm = dist.distance_modulus(z)

    fib_tot, fib_b, _ = ml.fibre_fraction(r50_b, r50_d, q_bulge, q_disc, bt, psf_r)
    fib_pt = ml.point_source_fraction(psf_r)
    agn = ml.draw_agn_type(rng, log_m, bt)
    dl = dist.luminosity_distance(z)
    true_lines, total_lines = ml.true_line_fluxes(
        rng, log_sfr=log_sfr, log_mstar=log_m, oh=oh, a_halpha=a_ha, lum_dist_mpc=dl,
        fibre_total=fib_tot, fibre_bulge=fib_b, fibre_point=fib_pt, agn_type=agn, quenched=quenched,
        total=True,
    )  # fmt: skip

    # stellar continuum, then the whole galaxy's emission lines in the bands they fall in
    ml_offset = mp.ML_INTRINSIC_SCATTER * rng.standard_normal(size)
    z_star = mprop.draw_stellar_metallicity_offset(rng, size)
    sed_offset = mp.sed_variety(log_ssfr, rng.standard_normal((size, len(BANDS))))
    phot = mp.galaxy_photometry(tables.sed, z, dm, log_m, log_ssfr, ebv_star, bt, ebv_mw, ml_offset, z_star,
                                sed_offset)
    phot = mp.add_emission_lines(phot, mp.line_band_fluxes(z, total_lines.as_dict_short(), a_ha), quenched)
    mag, mag_err = mp.observe_magnitudes(rng, phot.mag, r50, psf_r)

    # Petrosian r: captures ~99% of an exponential and ~82% of a de Vaucouleurs profile
    # (Blanton et al. 2001; Strauss et al. 2002).
    petro_frac = 0.82 * bt + 0.99 * (1.0 - bt)
    mag_petro_r = phot.mag[:, 2] - 2.5 * np.log10(petro_frac) + (mag[:, 2] - phot.mag[:, 2]) - phot.extinction[:, 2]
    mu50_r = mag_petro_r + 2.5 * np.log10(2.0 * np.pi * r50**2)

    line_err = ml.line_errors(rng, true_lines)
    lines = ml.measure_lines(rng, true_lines, line_err)
    detected = ml.metallicity_detectable(lines, line_err)
    oh_cat, oh_err = ml.measure_oh(rng, oh, lines, line_err, detected)

    sigma, sigma_err, sigma_spurious, sigma_missing = mprop.measure_sigma(rng, true_sigma)
    # MPA-JHU-like catalog values. Stellar mass is fitted to the photometry: the colour-based
    # estimate (blind to the galaxy's own M/L offset) plus a small fitting noise; its quoted
    # error (0.07-0.12 dex) covers both. SFR of star-forming galaxies (from H-alpha): truth +
    # the quoted error (0.1-0.25 dex); of quenched ones: from the 4000 A break (d4000 module),
    # the median sSFR at their measured break times their catalog mass.
    mstar_err = rng.uniform(0.07, 0.12, size)
    log_mstar_cat = log_m - ml_offset + MSTAR_FIT_NOISE * rng.standard_normal(size)
    # (galppl-mock-sky 0.3 drew a quenched galaxy's SFR error uniform in 0.35-0.7 dex here: the
    # draw is kept, unused, so that every other value of a seed's catalog is as it was.)
    rng.uniform(size=size)
    line_sfr_err = rng.uniform(0.1, 0.25, size)
    ra, dec = mpop.sky_positions(rng, size)
    # Redshift errors of SDSS spectra are ~3e-5 (Bolton et al. 2012)
    z_obs = z + 3e-5 * rng.standard_normal(size)
    sfr_noise = rng.standard_normal(size)  # of the H-alpha SFR, or of the break
    measured_break = mp.break_colour(tables.sed, log_ssfr, bt, log_m, z_star) + BREAK_NOISE * sfr_noise
    break_log_ssfr, break_sfr_err = tables.break_estimator(measured_break)
    log_sfr_cat = np.where(quenched, log_mstar_cat + break_log_ssfr, log_sfr + line_sfr_err * sfr_noise)
    sfr_err = np.where(quenched, break_sfr_err, line_sfr_err)

    out = {
        "ra": ra, "dec": dec,
        "mag": mag, "mag_err": mag_err, "extinction": phot.extinction,
        "log_mstar": log_mstar_cat, "log_mstar_err": mstar_err,
        "log_sfr": log_sfr_cat, "log_sfr_err": sfr_err,
        "z": z_obs,
        "sigma": sigma, "sigma_err": sigma_err,
        "log_mbh": log_mbh_from_sigma(sigma),
        "oh": oh_cat, "oh_err": oh_err, "oh_detected": detected.astype(np.int8),
        **lines.as_dict(),
        **{f"{k}_err": v for k, v in line_err.as_dict().items()},
        "true_log_mstar": log_m, "true_log_sfr": log_sfr, "true_z": z,
        "true_sigma": true_sigma, "true_log_mbh": true_log_mbh, "true_oh": oh,
        **{f"true_{k}": v for k, v in true_lines.as_dict().items()},
        "true_mag": phot.mag, "rest_abs_mag": phot.rest_mag, "log_ml_r": phot.log_ml_r,
        "quenched": quenched.astype(np.int8), "agn_type": agn,
        "sigma_spurious": sigma_spurious.astype(np.int8), "sigma_missing": sigma_missing,
        "bulge_to_total": bt, "r50": r50, "r50_kpc": r50_kpc, "r50_bulge": r50_b, "r50_disc": r50_d,
        "axis_ratio": q_disc, "axis_ratio_bulge": q_bulge, "position_angle": pa, "clumpiness": clump,
        "stellar_metallicity_offset": z_star, "sed_offset": sed_offset,
        "a_halpha": a_ha, "ebv_stellar": ebv_star, "ebv": ebv_mw,
        "fibre_fraction": fib_tot, "psf_fwhm": psf,
        "mag_petro_r": mag_petro_r, "mu50_r": mu50_r,
        "bulge_flux": phot.bulge_flux[:, 1:4], "disc_flux": phot.disc_flux[:, 1:4],
    }  # fmt: skip
    out["_selected"] = mpop.mgs_selected(mag_petro_r, mu50_r)
    return out


# units and descriptions of the simulator's own (non-schema) variables
_EXTRA = {
    "true_log_mstar": ("dex(Msun)", "true log10 stellar mass (Kroupa IMF)"),
    "true_log_sfr": ("dex(Msun yr-1)", "true log10 total star formation rate"),
    "true_z": ("", "true (cosmological) redshift"),
    "true_sigma": ("km s-1", "true stellar velocity dispersion"),
    "true_log_mbh": ("dex(Msun)", "true log10 black-hole mass: McConnell & Ma 2013 on true sigma + 0.38 dex scatter"),
    "true_oh": ("dex", "true gas-phase 12+log(O/H) (Tremonti 2004 scale), defined for every galaxy"),
    "true_flux_halpha": (FLUX_UNIT, "noiseless H-alpha 6563 fibre flux"),
    "true_flux_hbeta": (FLUX_UNIT, "noiseless H-beta 4861 fibre flux"),
    "true_flux_nii": (FLUX_UNIT, "noiseless [N II] 6584 fibre flux"),
    "true_flux_oiii": (FLUX_UNIT, "noiseless [O III] 5007 fibre flux"),
    "true_mag": ("mag", "noiseless observed AB magnitude (Milky Way extinction applied)"),
    "rest_abs_mag": ("mag", "rest-frame absolute AB magnitude (internal dust included, no k-correction)"),
    "log_ml_r": ("dex(Msun Lsun-1)", "Bell et al. 2003 r-band mass-to-light ratio (Kroupa)"),
    "quenched": ("", "1 if the galaxy is quenched (off the main sequence)"),
    "agn_type": ("", "optical AGN class: 0 none, 1 Seyfert, 2 LINER"),
    "sigma_spurious": ("", "1 if the measured sigma is a catalog glitch unrelated to the galaxy"),
    "bulge_to_total": ("", "bulge-to-total r-band light ratio"),
    "r50": ("arcsec", "r-band half-light radius of the whole galaxy (semi-major axis)"),
    "r50_kpc": ("kpc", "r-band half-light radius (Shen et al. 2003 + scatter)"),
    "r50_bulge": ("arcsec", "bulge (Sersic n=4) half-light radius"),
    "r50_disc": ("arcsec", "disc (Sersic n=1) half-light radius"),
    "axis_ratio": ("", "disc axis ratio b/a (inclination with 0.15 thickness floor)"),
    "axis_ratio_bulge": ("", "bulge axis ratio b/a"),
    "position_angle": ("deg", "position angle of the major axis"),
    "clumpiness": ("", "0..1 strength of star-forming clumps / spiral structure in the image"),
    "stellar_metallicity_offset": ("dex", "stellar [Z/H] minus the mean at the galaxy's mass (Gallazzi et al. 2005)"),
    "sed_offset": ("mag", "the galaxy's own departure from the SED family per band (star-forming SEDs' variety)"),
    "a_halpha": ("mag", "internal dust attenuation at H-alpha (Garn & Best 2010)"),
    "ebv_stellar": ("mag", "internal E(B-V) of the stellar continuum (Calzetti 2000)"),
    "ebv": ("mag", "Milky Way E(B-V) (SFD scale) towards the galaxy"),
    "fibre_fraction": ("", "share of the galaxy's light inside the 3-arcsec spectroscopic fibre"),
    "psf_fwhm": ("arcsec", "PSF full width at half maximum per image channel"),
    "mag_petro_r": ("mag", "measured Petrosian r, Milky Way extinction-corrected (MGS selection magnitude)"),
    "mu50_r": ("mag arcsec-2", "r-band Petrosian half-light surface brightness (MGS selection)"),
    "bulge_flux": ("nanomaggy", "noiseless observed bulge flux per channel (MW extinction applied)"),
    "disc_flux": ("nanomaggy", "noiseless observed disc flux per channel (MW extinction applied)"),
}
_CHANNEL_VARS = ("psf_fwhm", "bulge_flux", "disc_flux")
_BAND_VARS = ("mag", "mag_err", "extinction", "true_mag", "rest_abs_mag", "sed_offset")
_INTERNAL = ("ra", "dec", "sigma_missing", "_selected")


def _assemble(cols: dict[str, np.ndarray], n: int, seed: int, image_size: int) -> xr.Dataset:
    ds = new_catalog(
        np.arange(n, dtype=np.int64),
        cols["ra"],
        cols["dec"],
        source="galppl.simulate",
        attrs={
            "seed": int(seed),
            "n": int(n),
            "image_size": int(image_size),
            "simulator_version": SIMULATOR_VERSION,
            "cosmology": f"FlatLambdaCDM(H0={H0:g} km/s/Mpc, Om0={OMEGA_M:g})",
            "citations": "; ".join(CITATIONS),
            "agn_type_meanings": "0 none, 1 Seyfert, 2 LINER",
        },
    )
    for name, values in cols.items():
        if name in _INTERNAL:
            continue
        if name in _EXTRA:
            units, desc = _EXTRA[name]
            attrs = {"units": units, "description": desc}
        else:
            attrs = attrs_for(name)
        if name == "agn_type":
            attrs["flag_values"] = np.array([0, 1, 2], dtype=np.int8)
            attrs["flag_meanings"] = "none seyfert liner"
        dims = ("galaxy", "band") if name in _BAND_VARS else ("galaxy", "channel") if name in _CHANNEL_VARS else ("galaxy",)
        ds[name] = (dims, values, attrs)
    flag(ds, "spurious_sigma", cols["sigma_missing"])
    return ds


def _renderer():
    try:
        from galppl.data.mock import images
    except ImportError as err:  # the renderer is written separately; never fake images
        raise NotImplementedError(
            f"image rendering needs galppl.data.mock.images.render_stamps ({err}); "
            "call simulate(..., image_size=None) for a catalog without images"
        ) from err
    return images


def stamp_params(ds: xr.Dataset):
    """The renderer's ``StampParams`` (galppl.data.mock.images) for the galaxies of a simulated
    catalog: bulge/disc fluxes per channel (nanomaggies), radii (arcsec), axis ratios, position
    angle (deg), PSF FWHM (arcsec) and clumpiness."""
    images = _renderer()
    return images.StampParams(
        flux_bulge=ds["bulge_flux"].values,
        flux_disc=ds["disc_flux"].values,
        r50_bulge=ds["r50_bulge"].values,
        r50_disc=ds["r50_disc"].values,
        q_bulge=ds["axis_ratio_bulge"].values,
        q_disc=ds["axis_ratio"].values,
        position_angle=ds["position_angle"].values,
        psf_fwhm=ds["psf_fwhm"].values,
        clumpiness=ds["clumpiness"].values,
    )


def _render(ds: xr.Dataset, image_size: int, seed: int) -> np.ndarray:
    images = _renderer()
    depth = {b: mp.DEPTH_5SIGMA[b] for b in CHANNELS}
    return images.render_stamps(
        stamp_params(ds), image_size, seed, noise=True, pixel_scale=PIXEL_SCALE, depth_5sigma=depth
    )


def _generate(n: int, seed: int, image_size: int, progress: bool) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    tables = _tables()
    kept: list[dict[str, np.ndarray]] = []
    n_kept = 0
    acceptance = 0.25  # first guess; updated from each batch (deterministic given the seed)
    while n_kept < n:
        need = n - n_kept
        size = int(min(_MAX_BATCH, max(1024, 1.15 * need / acceptance + 256)))
        batch = draw_batch(rng, size, tables)
        sel = batch.pop("_selected")
        acceptance = max(sel.mean(), 1e-3)
        take = np.flatnonzero(sel)[:need]
        kept.append({k: v[take] for k, v in batch.items()})
        n_kept += take.size
        if progress:
            print(f"simulate: {n_kept}/{n} galaxies (acceptance {acceptance:.2f})", file=sys.stderr)
    cols = {k: np.concatenate([b[k] for b in kept]) for k in kept[0]}
    render_seed = int(rng.integers(0, 2**63 - 1))
    ds = _assemble(cols, n, seed, image_size)
    if image_size:
        img = _render(ds, image_size, render_seed)
        ds["image"] = (("galaxy", "channel", "y", "x"), np.asarray(img, dtype=np.float32), attrs_for("image"))
        ds.attrs["pixel_scale_arcsec"] = PIXEL_SCALE
    return validate(ds)


def simulate(
    n: int,
    seed: int = 0,
    image_size: int | None = 64,
    *,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """A mock SDSS Main Galaxy Sample catalog of ``n`` galaxies (after selection).

    Parameters
    ----------
    n : number of galaxies passing Petrosian r < 17.77 and mu50 < 24.5 mag arcsec-2.
    seed : seed of the one ``np.random.Generator`` behind everything (same args -> same catalog).
    image_size : side of the gri stamps in pixels (0.396"/pixel; a multiple of 8), or None / 0
        for a catalog without images (fast).
    cache : read from / write to the disk cache (key: sha256 of n, seed, image_size and the
        simulator version); directory ``cache_dir``, else $GALPPL_CACHE, else ~/.cache/galppl.
    progress : print batch progress to stderr.

    Returns
    -------
    xarray.Dataset following galppl's data model: observables ``mag``/``mag_err``/
    ``extinction`` (galaxy, band) and ``image`` (galaxy, channel, y, x; nanomaggies), the
    MPA-JHU-like targets (``log_mstar``, ``log_sfr``, ``z``, ``sigma``, ``log_mbh``, ``oh``,
    ``oh_detected``, ``flux_*``, with ``*_err``), the hidden state (``true_*``, morphology,
    dust, AGN class, PSF...) and the ``quality`` bitmask (``spurious_sigma`` where sigma is
    missing). Every variable has ``units`` and ``description`` attrs.
    """
    image_size = _check_args(n, seed, image_size)
    path = cache_path(n, seed, image_size, cache_dir) if cache else None
    if path is not None and path.exists():
        return load_catalog(path)
    ds = _generate(int(n), int(seed), image_size, progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # write to a temporary file in the same folder, then rename: readers never see half a file
        fd, tmp = tempfile.mkstemp(prefix=".simulate-", suffix=".nc", dir=path.parent)
        os.close(fd)
        try:
            save_catalog(ds, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return ds
