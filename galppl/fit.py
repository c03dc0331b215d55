"""``galppl.fit`` and ``galppl.load``: from a catalog (or the embedded mock sky) to a fitted model.

The pipeline for the chain models ("props", "lines", "joint"):

1. the catalog is split once, seeded, into ``vae`` / ``train`` / ``val`` / ``test`` galaxies:
   ``test`` and ``val`` take ``fractions[2]`` and ``fractions[1]``; of the rest, a share
   ``vae_fraction`` trains only the VAE, so that, as in the paper, the image encoder and the
   flows are fitted on disjoint galaxies;
2. the VAE is fitted on its galaxies (or a given one reused) and frozen; every galaxy is
   encoded into latent means and standard deviations;
3. features = [latents, colours, magnitudes] (per ``inputs``); galaxies with incomplete
   inputs are left out of training and counted, never filled;
4. the chain is trained by maximum likelihood (flow log-likelihood + MSE of the mean heads +
   Bernoulli cross-entropy) with early stopping on ``val``, then each block's residual spread
   is temperature-scaled on ``val`` (the test galaxies are never touched).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from galppl.data.schema import validate
from galppl.features import INPUTS, build_features, usable, uses_images
from galppl.models import chain_blocks
from galppl.models.chain import ChainModel, check_blocks
from galppl.posterior import GalaxyPosterior
from galppl.train import TrainConfig, train_svi

MODELS = ("vae", "props", "lines", "joint")


@dataclass(frozen=True)
class FitConfig:
    """Everything ``galppl.fit`` needs, checked on construction.

    Data: ``n_galaxies`` and ``image_size`` of the embedded mock catalog when no data is given.
    Splits: ``fractions`` (train, val, test) and ``vae_fraction`` of the train share kept for
    the VAE alone. Chain: ``inputs``, ``hidden_dim`` (of h), ``dropout`` (in the representation MLP,
    during training only), ``num_couplings``, ``oh_flow``,
    ``lr``, ``batch_size``, ``max_epochs``, ``patience``, ``max_seconds``; ``calibrate``:
    temperature-scale each block's residual on the validation galaxies after training
    (:meth:`~galppl.models.chain.ChainModel.calibrate`). VAE: ``vae_epochs``,
    ``vae_patience``, ``vae_max_seconds``, ``vae_lr`` (the paper's 1e-4). ``seed`` seeds all;
    ``split_seed``, if given, seeds the split (and the embedded mock sky) instead, so that fits
    with different ``seed`` s (an ensemble, or a check of fit-to-fit variation) can share one
    data set, one split and one VAE.
    """

    n_galaxies: int = 20000
    image_size: int = 64
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)
    vae_fraction: float = 0.3
    inputs: str = "image+photometry"
    hidden_dim: int = 256
    dropout: float = 0.2
    num_couplings: int = 12
    oh_flow: str = "affine"
    lr: float = 1e-3
    batch_size: int = 256
    max_epochs: int = 300
    patience: int = 20
    max_seconds: float | None = None
    vae_lr: float = 1e-4
    vae_epochs: int = 40
    vae_patience: int = 5
    vae_max_seconds: float | None = None
    calibrate: bool = True
    seed: int = 0
    split_seed: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "fractions", tuple(float(f) for f in self.fractions))
        if len(self.fractions) != 3 or any(f <= 0 for f in self.fractions) or abs(sum(self.fractions) - 1) > 1e-6:
            raise ValueError(f"fractions must be 3 positive shares (train, val, test) summing to 1, got {self.fractions}")
        if not 0 <= self.vae_fraction < 1:
            raise ValueError(f"vae_fraction must be in [0, 1), got {self.vae_fraction}")
        if self.inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, got {self.inputs!r}")
        for name in ("n_galaxies", "hidden_dim", "num_couplings", "batch_size", "max_epochs", "patience",
                     "vae_epochs", "vae_patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("seed", "split_seed"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {self.image_size}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.lr <= 0 or self.vae_lr <= 0:
            raise ValueError(f"learning rates must be > 0, got lr={self.lr}, vae_lr={self.vae_lr}")

    @property
    def data_seed(self) -> int:
        """The seed of the embedded mock sky and of the split."""
        return self.seed if self.split_seed is None else self.split_seed

    def to_dict(self) -> dict:
        return asdict(self)


def default_catalog(config: FitConfig, progress: bool = True) -> xr.Dataset:
    """The embedded default data set: the mock SDSS sky (cached on disk after the first call)."""
    from galppl.data import simulate

    image_size = config.image_size if uses_images(config.inputs) else None
    return simulate(config.n_galaxies, seed=config.data_seed, image_size=image_size, progress=progress)


def split_galaxies(data: xr.Dataset, config: FitConfig) -> dict[str, np.ndarray]:
    """Seeded disjoint split of the galaxy ids into ``vae``, ``train``, ``val`` and ``test``."""
    ids = data["galaxy"].values
    order = np.random.default_rng(config.data_seed).permutation(len(ids))
    n_test = int(round(config.fractions[2] * len(ids)))
    n_val = int(round(config.fractions[1] * len(ids)))
    test, val, rest = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    n_vae = int(round(config.vae_fraction * len(rest))) if uses_images(config.inputs) else 0
    split = {"vae": rest[:n_vae], "train": rest[n_vae:], "val": val, "test": test}
    for name, rows in split.items():
        if name != "vae" and len(rows) < 2:
            raise ValueError(f"the {name!r} split has {len(rows)} galaxies: give a larger catalog")
    return {name: ids[np.sort(rows)] for name, rows in split.items()}


def block_targets(data: xr.Dataset, blocks) -> dict[str, np.ndarray]:
    """Block name -> (galaxy, block dim) target values from the catalog (NaN where missing)."""
    out = {}
    for block in blocks:
        missing = [v for v in block.variables if v not in data]
        if missing:
            raise ValueError(f"block {block.name!r} needs catalog variables {missing}, absent from the catalog")
        out[block.name] = np.stack([data[v].values.astype(np.float64) for v in block.variables], axis=-1)
    return out


def fit(model: str = "props", data: xr.Dataset | None = None, *, config: FitConfig | None = None,
        vae=None, progress: bool = True, **overrides):
    """Fit a galppl model and return it.

    model: ``"vae"`` (returns a ``FittedVAE``), ``"props"``, ``"lines"`` or ``"joint"``
        (return a :class:`~galppl.posterior.GalaxyPosterior`), or your own chain: a sequence
        of :class:`~galppl.models.chain.Block` (e.g. ``props_blocks() + (Block(...),)``).
    data: a catalog in galppl's data model; None uses the embedded mock sky
        (``config.n_galaxies`` galaxies with ``config.image_size`` stamps).
    config / overrides: a :class:`FitConfig`, or its fields as keyword arguments.
    vae: a fitted VAE to reuse (frozen) instead of fitting one.
    """
    custom = not isinstance(model, str)
    if custom:
        blocks = check_blocks(model)
        model = "custom"
    elif model not in MODELS:
        raise ValueError(f"unknown model {model!r}: choose one of {MODELS}, or pass a sequence of Blocks")
    config = config or FitConfig()
    if overrides:
        unknown = set(overrides) - {f.name for f in fields(FitConfig)}
        if unknown:
            raise TypeError(f"unknown fit option(s) {sorted(unknown)}; FitConfig has {[f.name for f in fields(FitConfig)]}")
        config = FitConfig(**{**config.to_dict(), **overrides})
    data = default_catalog(config, progress) if data is None else validate(data)
    if model == "vae":
        return _fit_vae(data, config, progress)

    start = time.perf_counter()
    split = split_galaxies(data, config)
    if uses_images(config.inputs) and vae is None:
        vae = _fit_vae(data.sel(galaxy=split["vae"]), config, progress)
    encoding = vae.encode(data) if uses_images(config.inputs) else None
    features = build_features(data, encoding, config.inputs)
    if not custom:
        blocks = chain_blocks(model, num_couplings=config.num_couplings, oh_flow=config.oh_flow)
    targets = block_targets(data, blocks)

    ok = usable(features)
    position = {gid: i for i, gid in enumerate(data["galaxy"].values)}

    def tensors(name):
        rows = np.array([position[g] for g in split[name]], dtype=int)
        rows = rows[ok[rows]]
        return {"features": torch.as_tensor(features.values[rows], dtype=torch.float32),
                **{k: torch.as_tensor(v[rows], dtype=torch.float32) for k, v in targets.items()}}

    train, val = tensors("train"), tensors("val")
    chain_options = {"hidden_dim": config.hidden_dim, "dropout": config.dropout}
    chain = ChainModel(blocks, features.sizes["feature"], seed=config.seed, **chain_options)
    chain.set_standardisation(train["features"], {k: v for k, v in train.items() if k != "features"})
    train_config = TrainConfig(lr=config.lr, batch_size=config.batch_size, max_epochs=config.max_epochs,
                               patience=config.patience, seed=config.seed, max_seconds=config.max_seconds,
                               progress=progress)
    history = train_svi(chain.model, chain.guide, {"chain": chain}, train, val, train_config, desc=model)
    temperatures = chain.calibrate(val["features"], {k: v for k, v in val.items() if k != "features"}) \
        if config.calibrate else None
    excluded = {name: int((~ok[[position[g] for g in split[name]]]).sum()) for name in split}
    record = {**history.to_dict(), "temperatures": temperatures, "excluded_incomplete_inputs": excluded,
              "fit_seconds": time.perf_counter() - start, "n_train": len(train["features"]),
              "n_val": len(val["features"])}
    return GalaxyPosterior(chain, model=model, inputs=config.inputs, feature_names=features["feature"].values,
                           vae=vae, config=config.to_dict(), history=record, split=split,
                           chain_options=chain_options)


def _fit_vae(data: xr.Dataset, config: FitConfig, progress: bool):
    from galppl.models.vae import VAEConfig, fit_vae

    vae_config = VAEConfig(image_size=data.sizes.get("y"), lr=config.vae_lr, max_epochs=config.vae_epochs,
                           patience=config.vae_patience, max_seconds=config.vae_max_seconds, seed=config.seed)
    return fit_vae(data, vae_config, progress=progress)


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
