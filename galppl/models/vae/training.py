"""``fit_vae``: split, scale and train the image VAE, returning the ``FittedVAE``.

Two trainers optimise the same objective (``VAEConfig.trainer``): Pyro's SVI on
``VAEModel.model`` / ``Encoder.guide``, and, by default, the identical loss written in
plain torch (``VAEModel.negative_elbo``) in ``galppl.train.train_loss_fn``. The plain
path skips Pyro's per-step tracing and lets the networks run with channels-last
convolutions and, where the CPU has native bfloat16, in bfloat16 under autocast: on a
CPU the convolutions are the whole cost (``benchmarks/train_speed.py`` measures both).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from galppl.data.prepare import ImageError, ImageScaler, image_stack
from galppl.guides.encoder import Encoder
from galppl.models.vae.config import VAEConfig
from galppl.models.vae.fitted import FittedVAE, build_networks
from galppl.models.vae.model import VAEModel
from galppl.train import TrainConfig, TrainHistory, train_loss_fn, train_svi

__all__ = ["fit_vae", "train_networks"]


def fit_vae(data, config: VAEConfig = VAEConfig(), progress: bool = True) -> FittedVAE:
    """Train the image VAE on ``data`` by SVI and return the ``FittedVAE``.

    ``data``: a catalog (xarray Dataset with ``image`` in "nanomaggy" or "relative" units)
    or an array (galaxy, channel, y, x) in nanomaggies. Catalog galaxies with unusable
    images (``bad_image`` flag, NaN/inf pixels) are left out of training and counted in
    ``info["n_excluded"]``; arrays must be clean (``check_images`` errors otherwise).
    A seeded ``val_fraction`` of the usable images is held out for early stopping; the
    ``ImageScaler`` is fitted on the training part only. ``info["val_mse"]`` is the
    held-out reconstruction MSE per pixel in scaled units; ``info["trainer"]`` and
    ``info["precision"]`` say how it was trained (see ``VAEConfig``).
    """
    if not isinstance(config, VAEConfig):
        raise TypeError(f"config must be a VAEConfig, got {type(config).__name__}")
    images, usable, units, _ = image_stack(data)
    size = images.shape[-1]
    if config.image_size is None:
        config = dataclasses.replace(config, image_size=size)
    elif config.image_size != size:
        raise ImageError(f"VAEConfig.image_size is {config.image_size} but the images are {size} px")
    if images.shape[1] != config.channels:
        raise ImageError(f"VAEConfig.channels is {config.channels} but the images have {images.shape[1]}")
    good = np.flatnonzero(usable)
    if good.size < 2:
        raise ImageError(f"need at least 2 usable images to train and validate, got {good.size}")
    order = np.random.default_rng(config.seed).permutation(good)
    n_val = min(max(1, round(config.val_fraction * good.size)), good.size - 1)
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])

    scaler = ImageScaler().fit(images[train_idx], units=units)
    device = torch.device(config.device)
    train = torch.as_tensor(scaler.transform(images[train_idx]), device=device)
    val = torch.as_tensor(scaler.transform(images[val_idx]), device=device)

    # Seed the weight initialisation without touching the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        encoder, vae_model = build_networks(config)
    history = train_networks(encoder, vae_model, train, val, config, progress)
    info = {
        "n_train": int(train_idx.size),
        "n_val": int(n_val),
        "n_excluded": int((~usable).sum()),
        "trainer": config.trainer,
        "precision": str(config.training_dtype()).removeprefix("torch."),
    }
    fitted = FittedVAE(config, encoder, vae_model, scaler, history, info)
    fitted.info["val_mse"] = fitted.reconstruction_mse(images[val_idx])
    return fitted


def train_networks(
    encoder: Encoder,
    vae_model: VAEModel,
    train: torch.Tensor,
    val: torch.Tensor | None,
    config: VAEConfig,
    progress: bool = True,
) -> TrainHistory:
    """Train ``encoder`` and ``vae_model`` in place on scaled image tensors with ``config.trainer``.

    ``train`` and ``val`` are (galaxy, channel, S, S) in ``ImageScaler`` units. On
    return the networks hold the best epoch's weights, in eval mode and in the default
    (contiguous) memory format, whichever trainer ran.
    """
    modules = {"encoder": encoder, "vae_model": vae_model}
    train_config: TrainConfig = config.train_config(progress)
    desc = f"VAE {train.shape[-1]}px"
    if config.trainer == "pyro":
        val_data = None if val is None else {"images": val}
        return train_svi(vae_model.model, encoder.guide, modules, {"images": train}, val_data, train_config, desc=desc)

    dtype = config.training_dtype()
    device_type = torch.device(config.device).type

    def loss_fn(images: torch.Tensor, n_total: int) -> torch.Tensor:
        with torch.autocast(device_type, dtype=dtype, enabled=dtype != torch.float32):
            return vae_model.negative_elbo(encoder, images, n_total)

    # Channels-last convolutions are ~15-20% faster on a CPU (oneDNN's native layout);
    # the weights go back to the default layout so saved files and inference are unchanged.
    fast = torch.channels_last
    for module in modules.values():
        module.to(memory_format=fast)
    train_data = {"images": train.contiguous(memory_format=fast)}
    val_data = None if val is None else {"images": val.contiguous(memory_format=fast)}
    try:
        return train_loss_fn(loss_fn, modules, train_data, val_data, train_config, desc=desc)
    finally:
        for module in modules.values():
            module.to(memory_format=torch.contiguous_format)
