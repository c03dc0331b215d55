"""The fitted image VAE users keep: encode, decode, reconstruct, save and load.

``FittedVAE`` holds the trained encoder (``galppl.guides.encoder.Encoder``), the
generative model (``galppl.models.vae.model.VAEModel``), the ``ImageScaler`` fitted on
the training images, the settings and the training history. ``fit_vae``
(``galppl.models.vae.training``) builds one; ``FittedVAE.load`` reads one back.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
import xarray as xr

import galppl
from galppl.data.prepare import ImageError, ImageScaler, image_stack
from galppl.guides.encoder import Encoder
from galppl.models.vae.config import VAEConfig
from galppl.models.vae.model import VAEModel
from galppl.train import TrainHistory

__all__ = ["FittedVAE", "build_networks"]

CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.pt"


def build_networks(config: VAEConfig) -> tuple[Encoder, VAEModel]:
    """A freshly initialised (encoder, generative model) pair for ``config``, on its device."""
    encoder = Encoder(
        config.image_size, config.latent_dim, config.channels, config.conv_channels, config.hidden, config.norm
    )
    return encoder.to(config.device), VAEModel(config).to(config.device)


class FittedVAE:
    """A trained image VAE: encoder, decoder, image scaler, settings and training history.

    Build it with :func:`fit_vae` or :meth:`load`. Every method runs the networks in eval
    mode without gradients, so results are deterministic.
    """

    def __init__(
        self,
        config: VAEConfig,
        encoder: Encoder,
        vae_model: VAEModel,
        scaler: ImageScaler,
        history: TrainHistory,
        info: dict | None = None,
    ):
        self.config, self.encoder, self.vae_model = config, encoder, vae_model
        self.scaler, self.history, self.info = scaler, history, dict(info or {})
        self.encoder.eval()
        self.vae_model.eval()

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def _prepare(self, data) -> tuple[np.ndarray, np.ndarray, xr.Dataset | None]:
        images, usable, units, catalog = image_stack(data)
        if catalog is None:
            units = None  # a bare array is taken to be in the units the model was fitted on
        if images.shape[-1] != self.config.image_size:
            raise ImageError(f"this VAE takes {self.config.image_size} px images, got {images.shape[-1]} px")
        scaled = np.full(images.shape, np.nan, dtype=np.float32)
        if usable.any():
            scaled[usable] = self.scaler.transform(images[usable], units=units)
        return scaled, usable, catalog

    @torch.no_grad()
    def _batched(self, fn, x: np.ndarray, batch_size: int) -> list[np.ndarray]:
        out = []
        for start in range(0, x.shape[0], batch_size):
            chunk = torch.as_tensor(x[start : start + batch_size], device=self.device)
            result = fn(chunk)
            out.append(tuple(r.cpu().numpy() for r in result) if isinstance(result, tuple) else result.cpu().numpy())
        return out

    def encode(self, data, batch_size: int = 512) -> xr.Dataset:
        """Latent posterior per galaxy: Dataset with ``latent_mean`` and ``latent_std`` (galaxy, latent).

        ``data`` is a catalog (``image`` variable, its units must match the fit) or an array
        (galaxy, channel, y, x) in the fitted pixel units. Galaxy coords (and ra/dec) are
        copied from a catalog; an array gets 0..n-1. Galaxies of a catalog whose image is
        unusable (``bad_image`` flag or NaN/inf pixels) get NaN rows: carried, not dropped.
        """
        scaled, usable, catalog = self._prepare(data)
        n, k = scaled.shape[0], self.config.latent_dim
        mean = np.full((n, k), np.nan, dtype=np.float32)
        std = np.full((n, k), np.nan, dtype=np.float32)
        if usable.any():
            parts = self._batched(self.encoder, scaled[usable], batch_size)
            mean[usable] = np.concatenate([p[0] for p in parts])
            std[usable] = np.concatenate([p[1] for p in parts])
        if catalog is not None:
            coords = {name: c for name, c in catalog.coords.items() if c.dims == ("galaxy",)}
        else:
            coords = {"galaxy": np.arange(n)}
        coords["latent"] = np.arange(k)
        attrs = {"units": "", "description": "posterior mean of the VAE latent vector q(z | image)"}
        return xr.Dataset(
            {
                "latent_mean": (("galaxy", "latent"), mean, attrs),
                "latent_std": (
                    ("galaxy", "latent"),
                    std,
                    {"units": "", "description": "posterior standard deviation of the VAE latent vector"},
                ),
                "image_usable": ("galaxy", usable, {"units": "", "description": "image passed the quality checks"}),
            },
            coords=coords,
            attrs={"model": "galppl VAE", "latent_dim": k, "image_size": self.config.image_size},
        )

    def decode(self, z, batch_size: int = 512, *, scaled: bool = False) -> np.ndarray:
        """Mean images (n, channels, S, S) for latent vectors ``z`` (n, latent_dim).

        In the fitted pixel units (the scaler's inverse), or in scaled units when
        ``scaled``. ``z`` may be an array, a DataArray or an ``encode`` Dataset (its
        ``latent_mean``). NaN rows give NaN images.
        """
        if isinstance(z, xr.Dataset):
            z = z["latent_mean"]
        z = np.asarray(z.values if isinstance(z, xr.DataArray) else z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"z must have shape (n, {self.config.latent_dim}), got {z.shape}")
        size, channels = self.config.image_size, self.config.channels
        out = np.full((z.shape[0], channels, size, size), np.nan, dtype=np.float32)
        finite = np.isfinite(z).all(axis=1)
        if finite.any():
            out[finite] = np.concatenate(self._batched(self.vae_model.decoder, z[finite], batch_size))
        if scaled:
            return out
        return self.scaler.inverse_transform(out)

    def reconstruct(self, data, batch_size: int = 512, *, scaled: bool = False) -> np.ndarray:
        """``decode(encode(data).latent_mean)``: the images as the VAE sees them."""
        return self.decode(self.encode(data, batch_size), batch_size, scaled=scaled)

    def reconstruction_mse(self, data, batch_size: int = 512) -> float:
        """Mean squared error per pixel in scaled units (stretched, standardised) over usable images."""
        scaled, usable, _ = self._prepare(data)
        if not usable.any():
            return float("nan")
        latent_mean = np.concatenate([mean for mean, _ in self._batched(self.encoder, scaled[usable], batch_size)])
        recon = np.concatenate(self._batched(self.vae_model.decoder, latent_mean, batch_size))
        return float(np.mean((recon - scaled[usable]) ** 2))

    # -- persistence -------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the model to directory ``path``: config.json (settings, scaler, history) and weights.pt."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "kind": "vae",
            "galppl_version": galppl.__version__,
            "config": self.config.to_dict(),
            "scaler": self.scaler.to_dict(),
            "history": self.history.to_dict(),
            "info": self.info,
        }
        (path / CONFIG_FILE).write_text(json.dumps(meta, indent=2, allow_nan=False))
        weights = {"encoder": self.encoder.state_dict(), "vae_model": self.vae_model.state_dict()}
        torch.save({k: {n: t.detach().cpu() for n, t in sd.items()} for k, sd in weights.items()}, path / WEIGHTS_FILE)
        return path

    @classmethod
    def load(cls, path, device: str = "cpu") -> FittedVAE:
        """Read a model written by :meth:`save` onto ``device`` (weights loaded with weights_only)."""
        path = Path(path)
        if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
            raise FileNotFoundError(f"{str(path)!r} is not a saved galppl VAE (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
        meta = json.loads((path / CONFIG_FILE).read_text())
        if meta.get("kind") != "vae":
            raise ValueError(f"{str(path)!r} holds a {meta.get('kind')!r} model, not a 'vae'")
        config = dataclasses.replace(VAEConfig.from_dict(meta["config"]), device=device)
        encoder, vae_model = build_networks(config)
        weights = torch.load(path / WEIGHTS_FILE, map_location=device, weights_only=True)
        encoder.load_state_dict(weights["encoder"])
        vae_model.load_state_dict(weights["vae_model"])
        return cls(
            config,
            encoder,
            vae_model,
            ImageScaler.from_dict(meta["scaler"]),
            TrainHistory.from_dict(meta["history"]),
            meta.get("info"),
        )

    def __repr__(self) -> str:
        h = self.history
        return (
            f"FittedVAE(image_size={self.config.image_size}, latent_dim={self.config.latent_dim}, "
            f"units={self.scaler.units!r}, epochs_run={h.epochs_run}, best_epoch={h.best_epoch})"
        )
