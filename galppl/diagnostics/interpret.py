"""Latent-space interpretability: what the VAE's 32 latents say about galaxy physics.

The paper's section "Latent Space Interpretability" (its Figures 3 and 4), as functions that
take the latent means (``FittedVAE.encode(catalog)``) and a catalog and return xarray objects:

- :func:`latent_regression`: ordinary least squares from the latent means to each physical
  parameter; its R^2 (cross-validated, on held-out galaxies), coefficients (parameter,
  latent), and the latents with the largest standardised coefficients;
- :func:`perturbation_strip`: move those latents one at a time over a range, hold the rest
  at a galaxy's (or the mean) latent vector, and decode through the VAE's decoder: the
  images show what the latent direction the regression reads for a parameter looks like;
- :func:`latent_embeddings`: 2-d UMAP (or, without umap-learn, PCA) embeddings of the
  latents alone and of latents + photometry, and how well a k-nearest-neighbour classifier
  separates high from low values of a parameter (M*, M_BH) in each.

Plots of these (:func:`plot_perturbation_strip`, :func:`plot_latent_embeddings`) are in
:mod:`galppl.diagnostics.interpret_plots`.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from galppl.data.prepare import photometry_features
from galppl.data.schema import CHANNELS, PROPERTIES

__all__ = [
    "EMBEDDING_INPUTS",
    "EMBEDDING_METHODS",
    "latent_embedding",
    "latent_embeddings",
    "latent_regression",
    "perturbation_strip",
    "separation_accuracy",
]

EMBEDDING_INPUTS = ("latents", "latents+photometry")
EMBEDDING_METHODS = ("auto", "umap", "pca")
# Offsets along a latent, in standard deviations of that latent over the galaxies: the
# encoder's latents are close to N(0, 1) under the prior, so +-2.5 sd spans the population.
DEFAULT_STEPS = (-2.5, -1.5, -0.5, 0.5, 1.5, 2.5)


def _latent_means(latents) -> xr.DataArray:
    """The (galaxy, latent) latent means from an ``encode`` Dataset or a DataArray."""
    if isinstance(latents, xr.Dataset):
        if "latent_mean" not in latents:
            raise ValueError(f"a latents Dataset must hold 'latent_mean' (FittedVAE.encode), has {list(latents.data_vars)}")
        latents = latents["latent_mean"]
    if not isinstance(latents, xr.DataArray) or set(latents.dims) != {"galaxy", "latent"}:
        raise ValueError("latents must be FittedVAE.encode(catalog) or a DataArray with dims (galaxy, latent), got "
                         f"{type(latents).__name__} with dims {getattr(latents, 'dims', None)}")
    return latents.transpose("galaxy", "latent")


def _catalog_values(catalog: xr.Dataset, name: str, galaxy: np.ndarray) -> np.ndarray:
    if name not in catalog:
        raise ValueError(f"parameter {name!r} is not in the catalog (it has {sorted(map(str, catalog.data_vars))})")
    return catalog[name].sel(galaxy=galaxy).values.astype(np.float64)


def _least_squares(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[float, np.ndarray]:
    """Intercept and coefficients of y ~ x: least squares on standardised x, plus ``ridge``
    times the squared norm of the standardised coefficients (0: ordinary least squares)."""
    center, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    standardised, centred = (x - center) / scale, y - y.mean()
    if ridge > 0:
        gram = standardised.T @ standardised + ridge * np.eye(x.shape[1])
        beta = np.linalg.solve(gram, standardised.T @ centred)
    else:
        beta = np.linalg.lstsq(standardised, centred, rcond=None)[0]
    coefficients = beta / scale
    return float(y.mean() - center @ coefficients), coefficients


def _cross_validated_r2(x: np.ndarray, y: np.ndarray, folds: int, ridge: float, rng: np.random.Generator) -> float:
    """R^2 of the held-out predictions pooled over ``folds`` folds (an honest, out-of-sample R^2)."""
    predicted = np.empty_like(y)
    for held_out in np.array_split(rng.permutation(len(y)), folds):
        train = np.setdiff1d(np.arange(len(y)), held_out)
        intercept, coefficients = _least_squares(x[train], y[train], ridge)
        predicted[held_out] = intercept + x[held_out] @ coefficients
    return float(1.0 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2))


def latent_regression(latents, catalog: xr.Dataset, parameters: Sequence[str] = PROPERTIES, *,
                      num_top: int = 3, ridge: float = 0.0, folds: int = 5, seed: int = 0) -> xr.Dataset:
    """Linear regression from the VAE latent means to each physical parameter.

    latents: ``FittedVAE.encode(catalog)`` (its ``latent_mean``) or a (galaxy, latent)
        DataArray; galaxies with NaN latents (unusable images) are left out.
    catalog: holds each parameter for the latents' galaxies (NaN where unmeasured: such
        galaxies are left out of that parameter's fit only).
    parameters: catalog variables to regress (default: log M*, log SFR, z, log M_BH, O/H).
    num_top: how many latents to name per parameter (the paper's three).
    ridge: penalty on the squared standardised coefficients, in units of galaxies (0: ordinary
        least squares, the paper's). VAE latents can be nearly collinear, and then least
        squares spreads a parameter over large coefficients of opposite sign; a ridge of order
        1-10% of the galaxy count keeps the named latents those that carry the signal.
    folds: folds of the cross-validated R^2. seed: seeds the folds.

    Returns an ``xarray.Dataset``:

    - ``coefficient`` (parameter, latent): d parameter / d latent, in the parameter's units
      per unit latent; ``intercept`` (parameter,);
    - ``standardized_coefficient`` (parameter, latent): the coefficient times sd(latent) /
      sd(parameter), unitless: the change of the parameter, in its standard deviations, per
      standard deviation of the latent; comparable across latents and parameters;
    - ``r2`` (parameter,): R^2 of held-out predictions (``folds``-fold cross-validation);
      ``r2_in_sample`` (parameter,): R^2 of the fit on all galaxies; ``count``: galaxies used;
    - ``top_latent`` (parameter, rank): the ``num_top`` latents with the largest
      |standardised coefficient|, largest first;
    - ``latent_center``, ``latent_scale`` (latent,): mean and standard deviation of each
      latent over the galaxies with usable latents (the units of :func:`perturbation_strip`'s
      steps).
    """
    means = _latent_means(latents)
    z = means.values.astype(np.float64)
    usable = np.isfinite(z).all(axis=1)
    n_latent = z.shape[1]
    if not 1 <= num_top <= n_latent:
        raise ValueError(f"num_top must be between 1 and the {n_latent} latents, got {num_top}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    if not (np.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be a finite penalty >= 0, got {ridge!r}")
    center, scale = z[usable].mean(axis=0), z[usable].std(axis=0)
    rows = {key: [] for key in ("coefficient", "standardized", "intercept", "r2", "r2_in_sample", "count")}
    for name in parameters:
        y = _catalog_values(catalog, name, means["galaxy"].values)
        keep = usable & np.isfinite(y)
        if keep.sum() < max(2 * folds, n_latent + 2):
            raise ValueError(f"parameter {name!r} has {int(keep.sum())} galaxies with usable latents and a value; "
                             f"the regression needs at least {max(2 * folds, n_latent + 2)}")
        intercept, coefficients = _least_squares(z[keep], y[keep], ridge)
        residual = y[keep] - intercept - z[keep] @ coefficients
        rows["coefficient"].append(coefficients)
        rows["standardized"].append(coefficients * scale / y[keep].std())
        rows["intercept"].append(intercept)
        rows["r2"].append(_cross_validated_r2(z[keep], y[keep], folds, ridge, np.random.default_rng(seed)))
        rows["r2_in_sample"].append(1.0 - np.sum(residual**2) / np.sum((y[keep] - y[keep].mean()) ** 2))
        rows["count"].append(int(keep.sum()))
    standardized = np.array(rows["standardized"])
    top = np.argsort(-np.abs(standardized), axis=1, kind="stable")[:, :num_top]
    latent_ids = means["latent"].values
    units = [str(catalog[name].attrs.get("units", "")) for name in parameters]
    return xr.Dataset(
        {
            "coefficient": (("parameter", "latent"), np.array(rows["coefficient"]),
                            {"description": "d parameter / d latent (parameter units per unit latent)"}),
            "standardized_coefficient": (("parameter", "latent"), standardized,
                                         {"units": "", "description": "coefficient x sd(latent) / sd(parameter)"}),
            "intercept": ("parameter", np.array(rows["intercept"]), {"description": "in parameter units"}),
            "r2": ("parameter", np.array(rows["r2"]), {"units": "", "description": f"{folds}-fold cross-validated R^2"}),
            "r2_in_sample": ("parameter", np.array(rows["r2_in_sample"]), {"units": "", "description": "R^2 of the fit"}),
            "count": ("parameter", np.array(rows["count"]), {"units": "", "description": "galaxies in the fit"}),
            "top_latent": (("parameter", "rank"), latent_ids[top],
                           {"description": "latents with the largest |standardised coefficient|, largest first"}),
            "latent_center": ("latent", center, {"units": "", "description": "mean latent over the galaxies"}),
            "latent_scale": ("latent", scale, {"units": "", "description": "sd of each latent over the galaxies"}),
        },
        coords={"parameter": list(parameters), "latent": latent_ids, "rank": np.arange(1, num_top + 1),
                "units": ("parameter", units)},
        attrs={"description": "linear regression of physical parameters on the VAE latent means",
               "ridge": float(ridge), "seed": seed},
    )


def perturbation_strip(vae, regression: xr.Dataset, parameter: str, *, base=None,
                       steps: Sequence[float] = DEFAULT_STEPS, latents: Sequence[int] | None = None) -> xr.DataArray:
    """Decoded images along the latents a parameter's regression reads (the paper's Figure 3).

    Each of ``latents`` (default: the parameter's ``top_latent`` from
    :func:`latent_regression`) is moved in turn by ``step`` standard deviations (its
    ``latent_scale``) while the others stay at ``base``, and every latent vector is decoded
    by ``vae`` (a :class:`~galppl.models.vae.FittedVAE`). Each latent moves in the direction
    of its coefficient's sign, so that along a row the regression predicts the parameter to
    rise.

    base: the latent vector held fixed: ``None`` (the mean latent over the galaxies), one
        galaxy's latent means (a DataArray with dim ``latent``, e.g.
        ``encode(catalog)["latent_mean"].sel(galaxy=g)``), or an array of the latent size.
    steps: offsets in standard deviations of each latent.

    Returns a DataArray (latent, step, channel, y, x) of decoded images in the VAE's pixel
    units (``attrs["units"]``, nanomaggies for SDSS stamps), with coordinate
    ``predicted_shift`` (latent, step): the regression's change of the parameter, in its
    units, for that move; attrs name the parameter, the base and the stretch softening
    (per channel) the VAE's scaler uses, which :func:`plot_perturbation_strip` shows them with.
    """
    if parameter not in regression["parameter"].values:
        raise ValueError(f"parameter {parameter!r} is not in the regression (it has {list(regression['parameter'].values)})")
    fit = regression.sel(parameter=parameter)
    chosen = list(fit["top_latent"].values) if latents is None else list(latents)
    unknown = [k for k in chosen if k not in regression["latent"].values]
    if unknown:
        raise ValueError(f"latents {unknown} are not among the regression's latents 0..{regression.sizes['latent'] - 1}")
    if base is None:
        start, base_label = fit["latent_center"].values, "mean latent over the galaxies"
    else:
        start = np.asarray(base.values if isinstance(base, xr.DataArray) else base, dtype=np.float64).ravel()
        base_label = (f"galaxy {base['galaxy'].item()}" if isinstance(base, xr.DataArray) and "galaxy" in base.coords
                      else "given latent vector")
    if start.shape != (regression.sizes["latent"],) or not np.isfinite(start).all():
        raise ValueError(f"base must be a finite latent vector of size {regression.sizes['latent']}, got shape {start.shape}")
    steps = np.asarray(steps, dtype=np.float64)
    vectors, shifts = [], []
    for k in chosen:
        coefficient = float(fit["coefficient"].sel(latent=k))
        move = np.sign(coefficient) * steps * float(fit["latent_scale"].sel(latent=k))
        z = np.repeat(start[None], len(steps), axis=0)
        z[:, list(regression["latent"].values).index(k)] += move
        vectors.append(z)
        shifts.append(coefficient * move)
    decoded = vae.decode(np.concatenate(vectors))
    images = decoded.reshape(len(chosen), len(steps), *decoded.shape[1:])
    softening = vae.scaler.softening
    return xr.DataArray(
        images,
        dims=("latent", "step", "channel", "y", "x"),
        coords={"latent": chosen, "step": steps, "channel": list(CHANNELS),
                "predicted_shift": (("latent", "step"), np.array(shifts))},
        name="decoded_image",
        attrs={"units": str(vae.scaler.units), "parameter": parameter, "parameter_units": str(fit["units"].item()),
               "base": base_label, "softening": [] if softening is None else [float(s) for s in softening],
               "description": "VAE decoder means along the latents with the largest standardised coefficients"},
    )


def _standardised(values: np.ndarray) -> np.ndarray:
    finite = np.isfinite(values).all(axis=1)
    scale = values[finite].std(axis=0)
    return (values - values[finite].mean(axis=0)) / np.where(scale > 0, scale, 1.0)


def _embedding_method(method: str) -> str:
    if method not in EMBEDDING_METHODS:
        raise ValueError(f"method must be one of {EMBEDDING_METHODS}, got {method!r}")
    has_umap = importlib.util.find_spec("umap") is not None
    if method == "umap" and not has_umap:
        raise ImportError("method='umap' needs umap-learn: pip install 'galppl[interpret]' (or use method='pca')")
    if method == "auto" and not has_umap:
        warnings.warn("umap-learn is not installed (pip install 'galppl[interpret]'): embedding with PCA instead",
                      stacklevel=3)
        return "pca"
    return "umap" if method == "auto" else method


def latent_embedding(latents, catalog: xr.Dataset | None = None, *, with_photometry: bool = False,
                     method: str = "auto", seed: int = 0, n_neighbors: int = 15) -> xr.DataArray:
    """A 2-d embedding (galaxy, component) of the latent means, optionally with the photometry.

    Features (the latent means, and with ``with_photometry`` the extinction-corrected colours
    and magnitudes of ``catalog``) are standardised, then embedded by UMAP (``method="umap"``,
    umap-learn, ``n_neighbors``, seeded) or PCA (``"pca"``); ``"auto"`` takes UMAP where
    umap-learn is installed and PCA with a warning elsewhere. ``attrs["method"]`` says which
    was used. Galaxies with a NaN feature get NaN coordinates.
    """
    means = _latent_means(latents)
    parts = [means.values.astype(np.float64)]
    if with_photometry:
        if catalog is None:
            raise ValueError("with_photometry=True needs the catalog holding 'mag' (and 'extinction')")
        parts.append(photometry_features(catalog.sel(galaxy=means["galaxy"].values)).values)
    features = _standardised(np.concatenate(parts, axis=1))
    finite = np.isfinite(features).all(axis=1)
    used = _embedding_method(method)
    if used == "umap":
        import umap

        # a seed makes UMAP single-threaded (n_jobs=1): reproducible, and said here so it does not warn
        reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, random_state=seed, n_jobs=1)
    else:
        reducer = PCA(n_components=2, random_state=seed)
    coordinates = np.full((len(features), 2), np.nan)
    coordinates[finite] = reducer.fit_transform(features[finite])
    return xr.DataArray(
        coordinates,
        dims=("galaxy", "component"),
        coords={"galaxy": means["galaxy"].values, "component": [0, 1]},
        name="embedding",
        attrs={"method": used, "inputs": EMBEDDING_INPUTS[int(with_photometry)], "seed": seed,
               "description": f"2-d {used.upper()} embedding of the standardised "
                              + ("latent means and photometry" if with_photometry else "latent means")},
    )


def separation_accuracy(embedding: xr.DataArray, values, *, threshold: float | None = None, k: int = 15,
                        folds: int = 5, seed: int = 0) -> float:
    """How well a position in the embedding tells high from low values of a parameter.

    The galaxies with a finite embedding and value are split at ``threshold`` (default:
    their median) into high and low; the result is the ``folds``-fold cross-validated
    accuracy of a ``k``-nearest-neighbour classifier of that split from the 2-d coordinates:
    0.5 is no separation (balanced classes), 1 a perfect one.
    """
    coordinates = embedding.transpose("galaxy", "component").values
    values = np.asarray(values.values if isinstance(values, xr.DataArray) else values, dtype=np.float64)
    if values.shape != (len(coordinates),):
        raise ValueError(f"values must have one entry per galaxy ({len(coordinates)}), got shape {values.shape}")
    keep = np.isfinite(coordinates).all(axis=1) & np.isfinite(values)
    cut = float(np.median(values[keep])) if threshold is None else float(threshold)
    high = values[keep] > cut
    if min(high.sum(), (~high).sum()) < folds:
        raise ValueError(f"threshold {cut} leaves {int(high.sum())} high and {int((~high).sum())} low galaxies; "
                         f"each side needs at least folds={folds}")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(KNeighborsClassifier(n_neighbors=k), coordinates[keep], high, cv=splitter)
    return float(np.mean(scores))


def latent_embeddings(latents, catalog: xr.Dataset, parameters: Sequence[str] = ("log_mstar", "log_mbh"), *,
                      method: str = "auto", seed: int = 0, n_neighbors: int = 15, k: int = 15) -> xr.Dataset:
    """The paper's Figure 4: embeddings of the latents alone and of latents + photometry.

    Returns a Dataset with ``embedding`` (inputs, galaxy, component), inputs
    :data:`EMBEDDING_INPUTS`; each parameter's catalog values (galaxy,) to colour by; and
    ``separation`` (inputs, parameter): :func:`separation_accuracy` of the high/low (median)
    split of each parameter in each embedding, so ``separation.sel(inputs="latents+photometry")
    - separation.sel(inputs="latents")`` says how much the photometry separates high from low
    mass. ``attrs["method"]`` is the embedding method used (``"umap"`` or ``"pca"``).
    """
    means = _latent_means(latents)
    galaxy = means["galaxy"].values
    embeddings = [latent_embedding(means, catalog, with_photometry=with_photometry, method=method, seed=seed,
                                   n_neighbors=n_neighbors) for with_photometry in (False, True)]
    values = {name: _catalog_values(catalog, name, galaxy) for name in parameters}
    separation = [[separation_accuracy(e, values[name], k=k, seed=seed) for name in parameters] for e in embeddings]
    data_vars = {
        "embedding": xr.concat(embeddings, dim=xr.DataArray(list(EMBEDDING_INPUTS), dims="inputs"), combine_attrs="drop"),
        "separation": (("inputs", "parameter"), np.array(separation),
                       {"units": "", "description": f"{k}-NN cross-validated accuracy of the median split (0.5: none)"}),
    }
    for name in parameters:
        data_vars[name] = ("galaxy", values[name], dict(catalog[name].attrs))
    return xr.Dataset(data_vars, coords={"galaxy": galaxy, "inputs": list(EMBEDDING_INPUTS), "parameter": list(parameters)},
                      attrs={"method": embeddings[0].attrs["method"], "seed": seed})
