"""``galppl.fit``, ``galppl.fit_vae`` and ``galppl.load``: from a catalog (or the embedded mock sky) to a fitted model.

The pipeline of ``fit`` (settings: :class:`~galppl.config.FitConfig`):

1. the catalog is split once, seeded, into ``vae`` / ``train`` / ``val`` / ``test`` galaxies:
   ``test`` and ``val`` take ``fractions[2]`` and ``fractions[1]``; of the rest, a share
   ``vae_fraction`` trains only the VAE, so that, as in the paper, the image encoder and the
   flows are fitted on disjoint galaxies;
2. the VAE is fitted on its galaxies (or a given one reused) and frozen; the
   :class:`~galppl.features.Featurizer` (input variant, VAE, feature names, training input
   ranges, and their density, whose out-of-distribution threshold is set on ``val``) is built once;
3. features = [latents, colours, magnitudes] (per ``inputs``); galaxies with incomplete
   inputs are left out of training and counted, never filled;
4. the chain is trained by maximum likelihood (flow log-likelihood + MSE of the mean heads +
   Bernoulli cross-entropy) with early stopping on ``val``, then each block's residual spread
   is recalibrated (location shift and temperature) on ``val`` (the test galaxies are never touched).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import xarray as xr

from galppl.config import FitConfig
from galppl.data.schema import validate
from galppl.features import Featurizer, build_features, catalog_tensors, uses_images
from galppl.models import CHAINS, chain_blocks
from galppl.models.chain import ChainModel
from galppl.posterior import GalaxyPosterior
from galppl.train import train_loss_fn


def default_catalog(config: FitConfig, progress: bool = True) -> xr.Dataset:
    """The embedded default data set: the mock SDSS sky (cached on disk after the first call)."""
    from galppl.data import simulate

    image_size = config.data.image_size if uses_images(config.chain.inputs) else None
    return simulate(config.data.n_galaxies, seed=config.data_seed, image_size=image_size, progress=progress)


def split_galaxies(data: xr.Dataset, config: FitConfig) -> dict[str, np.ndarray]:
    """Seeded disjoint split of the galaxy ids into ``vae``, ``train``, ``val`` and ``test``."""
    ids = data["galaxy"].values
    fractions = config.data.fractions
    order = np.random.default_rng(config.data_seed).permutation(len(ids))
    n_test = int(round(fractions[2] * len(ids)))
    n_val = int(round(fractions[1] * len(ids)))
    test, val, rest = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    n_vae = int(round(config.data.vae_fraction * len(rest))) if uses_images(config.chain.inputs) else 0
    split = {"vae": rest[:n_vae], "train": rest[n_vae:], "val": val, "test": test}
    for name, rows in split.items():
        if name != "vae" and len(rows) < 2:
            raise ValueError(f"the {name!r} split has {len(rows)} galaxies: give a larger catalog")
    return {name: ids[np.sort(rows)] for name, rows in split.items()}


def fit(model="props", data: xr.Dataset | None = None, *, config: FitConfig | None = None,
        vae=None, progress: bool = True, **options) -> GalaxyPosterior:
    """Fit a chain posterior model and return it as a :class:`~galppl.posterior.GalaxyPosterior`.

    model: ``"props"``, ``"lines"`` or ``"joint"``, or your own chain: a sequence of
        :class:`~galppl.models.chain.Block` (e.g. ``props_blocks() + (Block(...),)``).
    data: a catalog in galppl's data model; None uses the embedded mock sky
        (``config.data.n_galaxies`` galaxies with ``config.data.image_size`` px stamps).
    config: a :class:`~galppl.config.FitConfig` (default: ``FitConfig()``).
    options: keyword shortcuts applied on top of ``config``: a field of ``data``, ``chain``
        or ``train`` by its name (``inputs="photometry"``, ``max_epochs=20``,
        ``split_seed=0``), a field of ``vae`` prefixed ``vae_`` (``vae_max_epochs=5``), or
        ``seed``; anything else is a TypeError naming the valid ones.
    vae: a fitted VAE to reuse (frozen) instead of fitting one.
    progress: show progress bars.
    """
    if isinstance(model, str) and model == "vae":
        raise ValueError("galppl.fit('vae') was removed in galppl 0.3.0: fit the image VAE alone with "
                         "galppl.fit_vae(data, ...)")
    if isinstance(model, str) and model not in CHAINS:
        raise ValueError(f"unknown model {model!r}: choose one of {CHAINS}, or pass a sequence of Blocks")
    config = (config or FitConfig()).with_options(**options)
    blocks = chain_blocks(model, num_couplings=config.chain.num_couplings, oh_flow=config.chain.oh_flow)
    name = model if isinstance(model, str) else "custom"
    data = default_catalog(config, progress) if data is None else validate(data)
    for block in blocks:
        absent = [v for v in block.variables if v not in data]
        if absent:
            raise ValueError(f"block {block.name!r} needs catalog variables {absent}, absent from the catalog")

    start = time.perf_counter()
    split = split_galaxies(data, config)
    if not uses_images(config.chain.inputs):
        vae = None  # photometry alone: a VAE given for reuse has nothing to read
    elif vae is None:
        vae = fit_vae(data.sel(galaxy=split["vae"]), config.vae_training(), progress=progress)
    features = build_features(data, config.chain.inputs, vae)
    featurizer = Featurizer.from_training(config.chain.inputs, vae, features.sel(galaxy=split["train"]),
                                          features.sel(galaxy=split["val"]), ood_quantile=config.chain.ood_quantile,
                                          seed=config.seed)
    tensors = catalog_tensors(features, data, blocks)
    train, val = (tensors.select(split[part]).usable_rows() for part in ("train", "val"))

    chain = ChainModel(blocks, featurizer.feature_dim, seed=config.seed, **config.chain.model_options())
    chain.set_standardisation(train.features, train.targets)
    # The chain's Pyro model, scored in plain torch (tested equal to its Trace_ELBO loss).
    history = train_loss_fn(chain.negative_log_likelihood, {"chain": chain}, train.batch(), val.batch(),
                            config.chain_training(progress), desc=name)
    calibration = chain.calibrate(val.features, val.targets) if config.chain.calibrate else None
    excluded = {part: int((~tensors.select(ids).usable).sum()) for part, ids in split.items()}
    record = {**history.to_dict(), "calibration": calibration, "excluded_incomplete_inputs": excluded,
              "fit_seconds": time.perf_counter() - start, "n_train": len(train.features),
              "n_val": len(val.features)}
    return GalaxyPosterior(chain, featurizer, model=name, config=config, history=record, split=split)


def fit_vae(data, config=None, *, progress: bool = True, **options):
    """Fit the image VAE alone and return the :class:`~galppl.models.vae.FittedVAE`.

    data: a catalog with ``image`` (or an array (galaxy, channel, y, x) in nanomaggies).
    config: a :class:`~galppl.models.vae.VAEConfig`; default: the settings ``galppl.fit``
        uses (:data:`galppl.config.VAE_TRAINING`), so the result can be passed on as
        ``galppl.fit(..., vae=...)``.
    options: fields of ``VAEConfig`` by name (``max_epochs=5``, ``seed=1``, ``lr=...``);
        anything else is a TypeError naming the valid ones.
    """
    from galppl.models import vae as vae_module

    config = config or FitConfig().vae_training()
    valid = [f.name for f in dataclasses.fields(vae_module.VAEConfig)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"unknown fit_vae option(s) {unknown}; VAEConfig has {valid}")
    return vae_module.fit_vae(data, dataclasses.replace(config, **options), progress=progress)


def load(path):
    """Load anything ``.save`` wrote: a ``GalaxyPosterior`` or a ``FittedVAE``."""
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"{str(path)!r} is not a saved galppl model (no config.json)")
    kind = json.loads(config_file.read_text()).get("kind")
    if kind == "posterior":
        return GalaxyPosterior.load(path)
    if kind == "vae":
        from galppl.models.vae import FittedVAE

        return FittedVAE.load(path)
    raise ValueError(f"{str(config_file)!r} has kind {kind!r}; expected 'posterior' or 'vae'")
