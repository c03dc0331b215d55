"""``galppl.fit``, ``galppl.fit_vae`` and ``galppl.load``: from a catalog (or the embedded mock sky) to a fitted model.

The pipeline of ``fit`` (settings: :class:`~galppl.config.FitConfig`):

1. the catalog is split once, seeded, into ``vae`` / ``train`` / ``val`` / ``calibration`` /
   ``test`` galaxies: ``test`` and ``val`` take ``fractions[2]`` and ``fractions[1]``, and a
   share ``calibration_fraction`` of the latter is kept apart as ``calibration`` (by default
   half, where that leaves enough galaxies to calibrate on: :data:`HELD_OUT_CALIBRATION_MIN`); of the rest,
   a share ``vae_fraction`` trains only the VAE, so that, as in the paper, the image encoder
   and the flows are fitted on disjoint galaxies;
2. the VAE is fitted on its galaxies (or a given one reused) and frozen; the
   :class:`~galppl.features.Featurizer` (input variant, VAE, feature names, training input
   ranges, and their density, whose out-of-distribution threshold is set on ``val``) is built once;
3. features = [latents, colours, magnitudes] (per ``inputs``); galaxies with incomplete
   inputs are left out of training and counted, never filled;
4. the chain is trained by maximum likelihood (flow log-likelihood + MSE of the mean heads +
   Bernoulli cross-entropy) with early stopping on ``val``, then each block's residual spread
   is recalibrated (location shift and temperature) on the ``calibration`` and ``vae``
   galaxies, which no step of the chain's training saw (the test galaxies are never touched).

``fit(..., ensemble=k)`` runs steps 1-3 once and step 4 for k seeds (one
:class:`~galppl.ensemble.EnsemblePosterior`); ``fit(data, init=posterior)`` skips steps 2-3
(the featurizer and the chain's standardisation are ``init``'s) and runs step 4 from
``init``'s weights (:func:`fine_tune`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import numbers
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from galppl.augment import band_to_feature_map, check_magnitude_errors, magnitude_errors, with_magnitude_noise
from galppl.checkpoint import checkpoints, clear_checkpoints
from galppl.config import FINE_TUNING, FitConfig
from galppl.data.files import read_json
from galppl.data.schema import validate
from galppl.ensemble import EnsemblePosterior
from galppl.features import CatalogTensors, Featurizer, build_features, catalog_tensors, uses_images
from galppl.models import CHAINS, chain_blocks
from galppl.models.chain import Block, ChainModel
from galppl.models.marginal import marginal_score_loss
from galppl.models.props import PROPS_VARIABLES
from galppl.posterior import GalaxyPosterior
from galppl.train import train_loss_fn


# The residual flows' refit after a chain's training with dropout (``ChainModel.residuals_only``)
# fine-tunes trained flows: at a tenth of the training's learning rate, within what is left of
# the training's time budget (at least one epoch). Measured on the 0.6.0 main job's chain, scored
# on 30,000 fresh mock galaxies (benchmarks/calibration_at_scale.py): the full rate and a tenth
# both reach their best validation loss in 3 epochs with similar per-bin coverage; a tenth gave
# a little higher R^2 and a smaller TARP ATC (0.006 against 0.0095).
RESIDUAL_REFIT_LR_FACTOR = 0.1


def default_catalog(config: FitConfig, progress: bool = True) -> xr.Dataset:
    """The embedded default data set: the mock SDSS sky (cached on disk after the first call)."""
    from galppl.data import simulate

    image_size = config.data.image_size if uses_images(config.chain.inputs) else None
    return simulate(config.data.n_galaxies, seed=config.data_seed, image_size=image_size, progress=progress)


# The default calibration split (``DataConfig.calibration_fraction`` None): half the val galaxies,
# where that leaves at least HELD_OUT_CALIBRATION_MIN galaxies (with the VAE's) to calibrate on;
# else none, and all the val galaxies stop the chain's training and calibrate it. Calibrating on
# galaxies that early stopping did not read takes out a ~4% over-confidence in width (the main
# job: 5,700 such galaxies; README, Calibration at scale), but a temperature fitted on n
# galaxies scatters by ~1/sqrt(2n) (4% at 300) and the centring by as much, and early stopping
# reads half as many. Measured on the real DR9 file (benchmarks/small_catalogs.py: log M* and z
# from photometry, catalogs of N galaxies, scored on 1,500 other real galaxies): at N = 300 (28
# galaxies to calibrate on) and 1,000 (95) the split's coverage was further from nominal and
# spread more over the catalogs, at R^2 no higher; at 3,000 (285) the two tied.
DEFAULT_CALIBRATION_FRACTION = 0.5
HELD_OUT_CALIBRATION_MIN = 500


def _calibration_count(config: FitConfig, n_val: int, n_vae: int) -> int:
    """How many of the ``n_val`` val galaxies are kept apart to calibrate on (see above)."""
    share = config.data.calibration_fraction
    if share is not None:
        return int(round(share * n_val))
    n_calibration = int(round(DEFAULT_CALIBRATION_FRACTION * n_val))
    return n_calibration if n_calibration + n_vae >= HELD_OUT_CALIBRATION_MIN else 0


def split_galaxies(data: xr.Dataset, config: FitConfig) -> dict[str, np.ndarray]:
    """Seeded disjoint split of the galaxy ids into ``vae``, ``train``, ``val``, ``calibration``
    and ``test`` (``vae`` and ``calibration`` may be empty: where their shares are 0, and
    ``calibration`` by default on a small catalog, :data:`HELD_OUT_CALIBRATION_MIN`)."""
    ids = data["galaxy"].values
    fractions = config.data.fractions
    order = np.random.default_rng(config.data_seed).permutation(len(ids))
    n_test = int(round(fractions[2] * len(ids)))
    n_val = int(round(fractions[1] * len(ids)))
    test, val, rest = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    n_vae = int(round(config.data.vae_fraction * len(rest))) if uses_images(config.chain.inputs) else 0
    n_calibration = _calibration_count(config, n_val, n_vae)
    split = {"vae": rest[:n_vae], "train": rest[n_vae:], "val": val[n_calibration:],
             "calibration": val[:n_calibration], "test": test}
    for name, rows in split.items():
        allowed = name == "vae" or name == "calibration" and len(rows) == 0  # shares that may be 0
        if len(rows) < 2 and not allowed:
            halved = name in ("val", "calibration") and split["calibration"].size
            hint = " (or calibration_fraction=0: stop and calibrate on the same val galaxies)" if halved else ""
            raise ValueError(f"the {name!r} split has {len(rows)} galaxies: give a larger catalog{hint}")
    return {name: ids[np.sort(rows)] for name, rows in split.items()}


def fit(model=None, data: xr.Dataset | None = None, *, config: FitConfig | None = None, vae=None,
        init: GalaxyPosterior | None = None, ensemble: int | None = None, progress: bool = True,
        checkpoint_dir=None, **options) -> GalaxyPosterior | EnsemblePosterior:
    """Fit a chain posterior model and return it as a :class:`~galppl.posterior.GalaxyPosterior`
    (an :class:`~galppl.ensemble.EnsemblePosterior` with ``ensemble=k``).

    model: ``"props"`` (the default), ``"lines"`` or ``"joint"``, or your own chain: a sequence of
        :class:`~galppl.models.chain.Block` (e.g. ``props_blocks() + (Block(...),)``).
    data: a catalog in galppl's data model; None uses the embedded mock sky
        (``config.data.n_galaxies`` galaxies with ``config.data.image_size`` px stamps).
    config: a :class:`~galppl.config.FitConfig` (default: ``FitConfig()``).
    options: keyword shortcuts applied on top of ``config``: a field of ``data``, ``chain``
        or ``train`` by its name (``inputs="photometry"``, ``max_epochs=20``,
        ``split_seed=0``), a field of ``vae`` prefixed ``vae_`` (``vae_max_epochs=5``), or
        ``seed``; anything else is a TypeError naming the valid ones.
    vae: a fitted VAE to reuse (frozen) instead of fitting one.
    init: a fitted posterior to fine-tune on ``data`` instead of fitting from scratch (see
        :func:`fine_tune`); ``model`` then defaults to its chain.
    ensemble: an integer k >= 2 fits k chains with seeds ``seed .. seed + k - 1`` on one split,
        reading one featurizer (one frozen VAE), and returns them as one
        :class:`~galppl.ensemble.EnsemblePosterior`.
    progress: show progress bars.
    checkpoint_dir: a folder where every training of the fit saves its state after each epoch
        (:mod:`galppl.checkpoint`): a fit killed and run again with the same arguments resumes
        from there to the result an uninterrupted fit gives; the files are removed when it ends.
    """
    if checkpoint_dir is not None:
        with checkpoints(checkpoint_dir):
            result = fit(model, data, config=config, vae=vae, init=init, ensemble=ensemble, progress=progress,
                         **options)
        clear_checkpoints(checkpoint_dir)
        return result
    if init is not None:
        if ensemble is not None:
            raise ValueError("galppl.fit got both init= and ensemble=: fine-tune each member of an ensemble "
                             "with its own galppl.fit(data, init=member)")
        return fine_tune(init, data, model=model, config=config, vae=vae, progress=progress, **options)
    model = "props" if model is None else model
    _check_fit_arguments(model, data, vae)
    if isinstance(model, str) and model == "vae":
        raise ValueError("galppl.fit('vae') was removed in galppl 0.3.0: fit the image VAE alone with "
                         "galppl.fit_vae(data, ...)")
    if isinstance(model, str) and model not in CHAINS:
        raise ValueError(f"unknown model {model!r}: choose one of {CHAINS}, or pass a sequence of Blocks")
    config = (config or FitConfig()).with_options(**options)
    seeds = [config.seed] if ensemble is None else _ensemble_seeds(ensemble, config.seed)
    if ensemble is not None:  # every member reads one mock sky and one split, whatever its own seed
        config = config.with_options(split_seed=config.data_seed)
    blocks = chain_blocks(model, num_couplings=config.chain.num_couplings, oh_flow=config.chain.oh_flow)
    name = model if isinstance(model, str) else "custom"
    data = default_catalog(config, progress) if data is None else validate(data)
    if config.chain.mag_noise > 0:
        check_magnitude_errors(data)  # before a VAE is fitted for nothing
    for block in blocks:
        absent = [v for v in block.variables if v not in data]
        if absent:
            labelled = [v for v in PROPS_VARIABLES if v in data]
            hint = (f"; the catalog labels {labelled}: fit a chain of those alone (galppl.models.props.subset_blocks, "
                    f"or galppl fit --variables {','.join(labelled)})" if name == "props" and labelled else "")
            raise ValueError(f"block {block.name!r} needs catalog variables {absent}, absent from the catalog{hint}")

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
    train, val, calibration = _usable_parts(tensors, split)
    calibration, left_out = featurizer.in_distribution(calibration, features)
    shared_seconds = time.perf_counter() - start  # the split, VAE and featurizer: once for all members
    members = []
    for seed in seeds:
        start = time.perf_counter()
        member_config = dataclasses.replace(config, seed=seed)
        chain = ChainModel(blocks, featurizer.feature_dim, seed=seed, **config.chain.model_options())
        chain.set_standardisation(train.features, train.targets)
        record = _train(chain, train, val, member_config, progress, desc=f"{name} (seed {seed})", data=data,
                        feature_names=featurizer.feature_names, calibration_set=calibration)
        record.update(excluded_incomplete_inputs=_excluded(tensors, split),
                      calibration_left_out_of_distribution=left_out,
                      fit_seconds=shared_seconds + time.perf_counter() - start)
        members.append(GalaxyPosterior(chain, featurizer, model=name, config=member_config, history=record,
                                       split=split))
    return members[0] if ensemble is None else EnsemblePosterior(members)


def fine_tune(init: GalaxyPosterior, data: xr.Dataset, *, model=None, config: FitConfig | None = None, vae=None,
              progress: bool = True, **options) -> GalaxyPosterior:
    """Fine-tune a fitted posterior (mock-trained, say) on a labelled catalog; return a new one.

    ``galppl.fit(data, init=posterior)`` calls this. ``init`` is left as it is. The new model
    keeps everything of ``init`` that the small catalog should not refit: its chain's
    architecture and feature and target standardisation, and its featurizer (input variant,
    frozen VAE, feature names, input ranges and out-of-distribution density). ``data`` may
    hold any subset of the modelled variables (e.g. only ``z`` and ``log_mstar``); missing
    values drop out of the likelihood as in any fit. ``data`` is split as ``galppl.fit`` splits
    (no VAE share: the VAE is ``init``'s); the chain is trained from ``init``'s weights with
    early stopping on the ``val`` galaxies, then recalibrated on the ``calibration`` ones
    (:meth:`~galppl.posterior.GalaxyPosterior.recalibrate`'s calibration).

    What moves: the representation MLP (shared by every block) and the weights of each block
    with a value for some training galaxy. The weights of a block with none (its head, flow and
    embedding) are frozen, hence bitwise unchanged; such a block's posterior still moves
    through the shared representation. A galaxy with only some of a block's variables (``z``
    and ``log_mstar`` of the props core, without ``log_sfr``) has no flow likelihood (the
    flow's density is joint, its marginals have no closed form); it is scored instead by the
    CRPS of each labelled variable's marginal from reparameterised draws of the block
    (:func:`~galppl.models.marginal.marginal_score_loss`), a proper score that trains the
    flow, head and representation together, so the flow follows the representation as it
    moves rather than being left to drift with it. The recalibration then refits
    the labelled variables' shift and temperature (and outlier share and the temperature's
    slopes on the mean, as ``recalibrate`` does: the flow's shape is still the first sky's) on
    their marginals and keeps the others' (:func:`~galppl.models.calibration.calibration_plan`).

    config: default ``init.config`` with the training settings
    :data:`~galppl.config.FINE_TUNING` (a tenth of the learning rate) and no noise augmentation
    (``mag_noise=...`` asks for it with this catalog's errors); ``options`` as for
    ``galppl.fit``. The chain settings (inputs, sizes, flows) must be ``init``'s: a different
    one is a ValueError naming it, as is a catalog whose features differ from ``init``'s.
    """
    if not isinstance(init, GalaxyPosterior):
        raise TypeError(f"init must be a fitted GalaxyPosterior (galppl.fit or galppl.load), got {type(init).__name__}")
    if data is None:
        raise ValueError("fine-tuning needs a labelled catalog: galppl.fit(data=catalog, init=posterior)")
    if vae is not None and vae is not init.vae:
        raise ValueError("a fine-tune reads init's frozen VAE (init.vae); do not pass vae= with init=")
    _check_same_model(init, model)
    # Noise augmentation is asked for per catalog (mag_noise=...): a small real one often has no errors;
    # so is the calibration split (calibration_fraction=...), by default chosen for this catalog's size.
    base = config or dataclasses.replace(init.config, train=FINE_TUNING,
                                         chain=dataclasses.replace(init.config.chain, mag_noise=0.0),
                                         data=dataclasses.replace(init.config.data, calibration_fraction=None))
    # No galaxies are kept apart for a VAE: the VAE is init's.
    config = base.with_options(**options).with_options(vae_fraction=0.0)
    _check_same_chain(init, config)
    data = validate(data)
    if not any(v in data for v in init.variables):
        raise ValueError(f"the catalog has none of the variables {list(init.variables)} that init models: "
                         "nothing to fine-tune on")
    if init.featurizer.reads_images and "image" not in data:
        raise ValueError(f"init reads images (inputs {init.inputs!r}); the catalog has no 'image'")

    start = time.perf_counter()
    split = split_galaxies(data, config)
    features = init.features(data)  # init's featurizer: a catalog giving other features is refused here
    tensors = catalog_tensors(features, data, init.chain.blocks)
    train, val, calibration = _usable_parts(tensors, split)
    calibration, left_out = init.featurizer.in_distribution(calibration, features)
    chain = copy.deepcopy(init.chain)
    frozen = _unobserved_blocks(chain, train)
    if len(frozen) == len(chain.blocks):
        raise ValueError(f"no training galaxy has a value of any of {list(init.variables)}: nothing to fine-tune on")
    parameters = [p for name in frozen for part in (chain.heads, chain.embeds, chain.flows) if name in part
                  for p in part[name].parameters()]
    for parameter in parameters:
        parameter.requires_grad_(False)
    loss = functools.partial(marginal_score_loss, chain)
    try:
        record = _train(chain, train, val, config, progress, desc=f"fine-tune {init.model}", data=data,
                        feature_names=init.featurizer.feature_names, loss=loss,
                        calibration_set=calibration, outliers=True,
                        from_trained=True)
    finally:
        for parameter in parameters:
            parameter.requires_grad_(True)
    record.update(frozen_blocks=frozen, excluded_incomplete_inputs=_excluded(tensors, split),
                  calibration_left_out_of_distribution=left_out,
                  fit_seconds=time.perf_counter() - start, init_history=init.history)
    return GalaxyPosterior(chain, init.featurizer, model=init.model, config=config, history=record, split=split)


def _check_fit_arguments(model, data, vae) -> None:
    """TypeErrors naming ``fit``'s arguments of the wrong kind, before any work."""
    from galppl.models.vae import FittedVAE

    if not isinstance(model, str):
        try:
            blocks = list(model)
        except TypeError:
            blocks = None
        if blocks is None or not all(isinstance(b, Block) for b in blocks):
            raise TypeError(f"model must be 'props', 'lines', 'joint' or a sequence of galppl Blocks, got "
                            f"{type(model).__name__} {model!r:.60}")
    if data is not None and not isinstance(data, xr.Dataset):
        raise TypeError(f"data must be a galppl catalog (an xarray.Dataset, e.g. from galppl.data.read_catalog) "
                        f"or None for the mock sky, got {type(data).__name__}")
    if data is not None and data.sizes.get("galaxy", 0) == 0:
        raise ValueError("the catalog has 0 galaxies: nothing to fit")
    if vae is not None and not isinstance(vae, FittedVAE):
        raise TypeError(f"vae must be a fitted VAE (galppl.fit_vae or galppl.load of a saved VAE) or None, got "
                        f"{type(vae).__name__} {vae!r:.60}")


def _ensemble_seeds(ensemble, seed: int) -> list[int]:
    if isinstance(ensemble, bool) or not isinstance(ensemble, numbers.Integral) or ensemble < 2:
        raise ValueError(f"ensemble must be an integer >= 2 (the number of members), got {ensemble!r}; "
                         "leave it None for one model")
    return list(range(seed, seed + int(ensemble)))


def _check_same_model(init: GalaxyPosterior, model) -> None:
    """``model`` given with ``init`` must name ``init``'s chain."""
    if model is None:
        return
    if isinstance(model, str):
        if model != init.model:
            raise ValueError(f"model {model!r} differs from init's model {init.model!r}: a fine-tune keeps "
                             "init's chain (leave model out)")
        return
    chain = init.config.chain
    given = chain_blocks(model, num_couplings=chain.num_couplings, oh_flow=chain.oh_flow)
    if [b.to_dict() for b in given] != [b.to_dict() for b in init.chain.blocks]:
        raise ValueError("the blocks given as model differ from init's chain: a fine-tune keeps init's chain "
                         "(leave model out)")


def _check_same_chain(init: GalaxyPosterior, config: FitConfig) -> None:
    """The chain settings that fix the architecture and the inputs must be ``init``'s."""
    for name in ("inputs", "hidden_dim", "dropout", "num_couplings", "oh_flow"):
        ours, theirs = getattr(config.chain, name), getattr(init.config.chain, name)
        if ours != theirs:
            raise ValueError(f"a fine-tune keeps init's chain, fitted with {name}={theirs!r}; got {name}={ours!r}")


def _unobserved_blocks(chain: ChainModel, train: CatalogTensors) -> list[str]:
    """Names of the blocks without a value for any of the ``train`` galaxies."""
    return [b.name for b in chain.blocks if not torch.isfinite(train.targets[b.name]).any()]


def _usable_parts(tensors: CatalogTensors, split: dict) -> tuple[CatalogTensors, CatalogTensors, CatalogTensors]:
    """The ``train``, ``val`` and calibration galaxies with complete inputs.

    The chain is calibrated on the galaxies that none of its training saw: the ``calibration``
    split and the ``vae`` one (they trained the image encoder, never the chain); on ``val``
    only where the calibration share is 0. The VAE's galaxies are as hard for the chain as new
    ones (the 0.8.0 main job's model, temperatures refitted on 4,200 of them: 1.055 / 1.020 /
    1.062 for log M*, log SFR, z; on 12,000 fresh galaxies 1.037 / 1.040 / 1.046), and with them
    the main job calibrates on 5,700 galaxies instead of 1,500 (the temperature's and the
    centring's noise shrink as the square root)."""
    train, val = (tensors.select(split[part]).usable_rows() for part in ("train", "val"))
    if len(split["calibration"]) == 0:
        return train, val, val
    unseen = np.concatenate([split["calibration"], split["vae"]])
    return train, val, tensors.select(unseen).usable_rows()


def _excluded(tensors: CatalogTensors, split: dict) -> dict[str, int]:
    """Per split, the galaxies left out for incomplete inputs."""
    return {part: int((~tensors.select(ids).usable).sum()) for part, ids in split.items()}


def _train(chain: ChainModel, train: CatalogTensors, val: CatalogTensors, config: FitConfig, progress: bool,
           desc: str, *, data: xr.Dataset, feature_names, calibration_set: CatalogTensors, loss=None,
           outliers: bool = False, from_trained: bool = False) -> dict:
    """Train ``chain`` on ``loss`` (default: its negative log-likelihood) with early stopping on
    ``val`` (``from_trained``: its starting weights kept unless an epoch beats them), with
    ``data``'s magnitude errors as noise where ``config.chain.mag_noise`` asks
    (:mod:`galppl.augment`, features named ``feature_names``), refit its residual flows
    without dropout where it has dropout (from the trained weights), then calibrate it on
    ``calibration_set`` (see :func:`_usable_parts`), with a temperature that follows the
    block's mean and, where ``outliers``, an outlier share (see
    :func:`~galppl.models.calibration.recalibrate_blocks`); what to record."""
    # The chain's Pyro model, scored in plain torch (tested equal to its Trace_ELBO loss).
    loss = chain.negative_log_likelihood if loss is None else loss
    train_batch, val_batch = train.batch(), val.batch()
    if config.chain.mag_noise > 0:
        loss = with_magnitude_noise(loss, chain, band_to_feature_map(feature_names), config.chain.mag_noise)
        train_batch["mag_err"] = magnitude_errors(data, train.galaxy)
        val_batch["mag_err"] = magnitude_errors(data, val.galaxy)  # read, unused: validation is noiseless
    training = config.chain_training(progress)
    history = train_loss_fn(loss, {"chain": chain}, train_batch, val_batch, training, desc=desc,
                            from_trained=from_trained)
    record = history.to_dict()
    if chain.dropout > 0:  # refit the residual flows on the representation prediction uses
        left = None if training.max_seconds is None else max(training.max_seconds - history.wall_seconds, 1e-3)
        refit_config = dataclasses.replace(training, lr=RESIDUAL_REFIT_LR_FACTOR * training.lr, max_seconds=left)
        with chain.residuals_only():
            refit = train_loss_fn(loss, {"chain": chain}, train_batch, val_batch, refit_config,
                                  desc=f"{desc}: residual flows without dropout", from_trained=True)
        record["residual_refit"] = refit.to_dict()
        record["wall_seconds"] += refit.wall_seconds
    calibration = (chain.calibrate(calibration_set.features, calibration_set.targets, outliers=outliers,
                                   conditional=True)
                   if config.chain.calibrate else None)
    return {**record, "calibration": calibration, "n_train": len(train.features),
            "n_val": len(val.features), "n_calibration": len(calibration_set.features)}


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
    """Load anything ``.save`` wrote: a ``GalaxyPosterior``, an ``EnsemblePosterior`` or a ``FittedVAE``."""
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"{str(path)!r} is not a saved galppl model (no config.json)")
    kind = read_json(config_file, "saved model's config.json", required=("kind",))["kind"]
    if kind == "posterior":
        return GalaxyPosterior.load(path)
    if kind == "ensemble":
        return EnsemblePosterior.load(path)
    if kind == "vae":
        from galppl.models.vae import FittedVAE

        return FittedVAE.load(path)
    raise ValueError(f"{str(config_file)!r} has kind {kind!r}; expected 'posterior', 'ensemble' or 'vae'")
