"""The image VAE: a Pyro generative model p(image | z) p(z) and the fitted object users keep.

Per galaxy, under the galaxy plate (with minibatch subsampling, see ``galppl.train``)::

    z     ~ Normal(0, I_latent_dim)
    image ~ Normal(decoder(z), sigma_c).to_event(3)

in the scaled pixel space of ``galppl.data.prepare.ImageScaler`` (arcsinh-stretched,
standardised per channel). A fixed ``sigma`` makes the reconstruction term a scaled mean
squared error, the paper's MSE loss; ``likelihood_scale="learned"`` learns one sigma per
channel instead. The amortized guide q(z | image) is ``galppl.guides.encoder.Encoder``.

``fit_vae`` trains both by SVI (``galppl.train.train_svi``) and returns a ``FittedVAE``
with ``encode``/``decode``/``reconstruct``/``save``; ``FittedVAE.load`` reads it back.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import xarray as xr
from torch import nn

import galppl
from galppl.data.prepare import ImageError, ImageScaler, check_images, image_quality, image_units
from galppl.guides.encoder import Encoder, conv_block_norm
from galppl.models.plate import galaxy_plate
from galppl.train import TrainConfig, TrainHistory, train_svi

__all__ = ["Decoder", "FittedVAE", "VAEConfig", "VAEModel", "fit_vae"]

CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.pt"


@dataclass(frozen=True)
class VAEConfig:
    """Architecture and training settings of the image VAE, checked on construction.

    image_size: stamp side in pixels (multiple of 8); ``None`` takes it from the data.
    latent_dim: size of z. channels: image channels (gri: 3). conv_channels: widths of
    the encoder's three convolutions (mirrored by the decoder). hidden: width of the fully
    connected layer. norm: "none", "group" or "batch" normalisation after convolutions.
    likelihood_scale: the fixed sigma of the Gaussian likelihood in scaled pixel units
    (standard deviations of the stretched training pixels), or "learned" (per channel).
    lr, batch_size, max_epochs, patience, seed, max_seconds: see ``TrainConfig``.
    val_fraction: share of the usable images held out for early stopping.
    device: torch device to train on ("cpu", "cuda", ...).
    """

    image_size: int | None = None
    latent_dim: int = 32
    channels: int = 3
    conv_channels: tuple[int, int, int] = (32, 64, 128)
    hidden: int = 256
    norm: str = "none"
    likelihood_scale: float | str = 0.1
    lr: float = 1e-4
    batch_size: int = 128
    max_epochs: int = 100
    patience: int = 8
    seed: int = 0
    max_seconds: float | None = None
    val_fraction: float = 0.15
    device: str = "cpu"

    def __post_init__(self):
        def integer(name, value, low=1):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"VAEConfig.{name} must be an integer >= {low}, got {value!r}")

        if self.image_size is not None:
            integer("image_size", self.image_size, 8)
            if self.image_size % 8:
                raise ValueError(f"VAEConfig.image_size must be a multiple of 8 (e.g. 64, 160), got {self.image_size}")
        integer("latent_dim", self.latent_dim)
        integer("channels", self.channels)
        integer("hidden", self.hidden)
        object.__setattr__(self, "conv_channels", tuple(self.conv_channels))
        if len(self.conv_channels) != 3:
            raise ValueError(f"VAEConfig.conv_channels must name 3 widths, got {self.conv_channels!r}")
        for width in self.conv_channels:
            integer("conv_channels", width)
        if self.norm not in ("none", "group", "batch"):
            raise ValueError(f"VAEConfig.norm must be 'none', 'group' or 'batch', got {self.norm!r}")
        scale = self.likelihood_scale
        if isinstance(scale, str):
            if scale != "learned":
                raise ValueError(f"VAEConfig.likelihood_scale must be a positive number or 'learned', got {scale!r}")
        elif isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"VAEConfig.likelihood_scale must be a positive number or 'learned', got {scale!r}")
        if not isinstance(self.val_fraction, (int, float)) or not 0 < self.val_fraction < 1:
            raise ValueError(f"VAEConfig.val_fraction must lie strictly between 0 and 1, got {self.val_fraction!r}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"VAEConfig.device {self.device!r} is not a torch device: {err}") from err
        try:
            self.train_config(progress=False)  # lr, batch_size, ...: TrainConfig's checks
        except ValueError as err:
            raise ValueError(str(err).replace("TrainConfig.", "VAEConfig.")) from None

    def train_config(self, progress: bool = True) -> TrainConfig:
        """The ``TrainConfig`` these settings imply."""
        return TrainConfig(
            lr=self.lr,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            patience=self.patience,
            seed=self.seed,
            progress=progress,
            max_seconds=self.max_seconds,
        )

    def to_dict(self) -> dict:
        """JSON-able dict."""
        out = dataclasses.asdict(self)
        out["conv_channels"] = list(self.conv_channels)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> VAEConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown VAEConfig field(s): {', '.join(sorted(unknown))}")
        return cls(**data)


class Decoder(nn.Module):
    """z (batch, latent_dim) -> image means (batch, channels, S, S) in scaled pixel units.

    Mirrors the encoder: fully connected layers to (conv_channels[-1], S/8, S/8) maps,
    then three transposed convolutions (kernel 4, stride 2, padding 1) doubling the side.
    """

    def __init__(
        self,
        image_size: int = 64,
        latent_dim: int = 32,
        channels: int = 3,
        conv_channels: tuple[int, int, int] = (32, 64, 128),
        hidden: int = 256,
        norm: str = "none",
    ):
        super().__init__()
        if image_size % 8 or image_size <= 0:
            raise ValueError(f"image_size must be a positive multiple of 8, got {image_size}")
        self.start = (conv_channels[-1], image_size // 8, image_size // 8)
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, math.prod(self.start)),
            nn.LeakyReLU(0.2),
        )
        widths = list(reversed(conv_channels))  # 128, 64, 32
        layers = []
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1), conv_block_norm(norm, w_out), nn.LeakyReLU(0.2)]
        layers.append(nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Mean image for each latent vector."""
        return self.deconv(self.fc(z).view(-1, *self.start))


class VAEModel(nn.Module):
    """The generative model: a ``Decoder`` plus the likelihood scale, with a Pyro ``model``."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        if config.image_size is None:
            raise ValueError("VAEModel needs a config with image_size set")
        self.latent_dim = config.latent_dim
        self.decoder = Decoder(
            config.image_size, config.latent_dim, config.channels, config.conv_channels, config.hidden, config.norm
        )
        self.learned_scale = config.likelihood_scale == "learned"
        if self.learned_scale:
            self.log_scale = nn.Parameter(torch.zeros(config.channels))
        else:
            self.register_buffer("log_scale", torch.full((config.channels,), math.log(config.likelihood_scale)))

    def likelihood_scale(self) -> torch.Tensor:
        """sigma per channel (scaled pixel units); learned scales are kept within [1e-3, 10]."""
        return self.log_scale.clamp(math.log(1e-3), math.log(10.0)).exp()

    def model(self, images: torch.Tensor, n_total: int | None = None) -> None:
        """Pyro model of scaled ``images`` (galppl.train's calling convention)."""
        pyro.module("vae_model", self)
        batch = images.shape[0]
        with galaxy_plate(batch, n_total, device=images.device):
            zeros = images.new_zeros(batch, self.latent_dim)
            z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            scale = self.likelihood_scale()[:, None, None].expand(images.shape[1:])
            pyro.sample("image", dist.Normal(self.decoder(z), scale).to_event(3), obs=images)


def _as_images(data) -> tuple[np.ndarray, np.ndarray, str, xr.Dataset | None]:
    """(images, usable mask, pixel units, catalog or None) from a catalog or an array.

    Arrays must be clean (``check_images`` errors); catalogs may carry bad images, which
    the mask marks (``image_quality``) and ``check_images`` then sees only the good ones.
    """
    if isinstance(data, xr.Dataset):
        units = image_units(data)
        images = data["image"].transpose("galaxy", "channel", "y", "x").values
        usable = image_quality(data).values
        check_images(images, finite=False)  # shape errors always; bad pixels are flagged, not fatal
        return images, usable, units, data
    if isinstance(data, xr.DataArray):
        data = data.values
    images = check_images(data)
    return images, np.ones(images.shape[0], dtype=bool), "nanomaggy", None


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
        images, usable, units, catalog = _as_images(data)
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
        encoder, vae_model = _build(config)
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


def _build(config: VAEConfig) -> tuple[Encoder, VAEModel]:
    encoder = Encoder(
        config.image_size, config.latent_dim, config.channels, config.conv_channels, config.hidden, config.norm
    )
    return encoder.to(config.device), VAEModel(config).to(config.device)


def fit_vae(data, config: VAEConfig = VAEConfig(), progress: bool = True) -> FittedVAE:
    """Train the image VAE on ``data`` by SVI and return the ``FittedVAE``.

    ``data``: a catalog (xarray Dataset with ``image`` in "nanomaggy" or "relative" units)
    or an array (galaxy, channel, y, x) in nanomaggies. Catalog galaxies with unusable
    images (``bad_image`` flag, NaN/inf pixels) are left out of training and counted in
    ``info["n_excluded"]``; arrays must be clean (``check_images`` errors otherwise).
    A seeded ``val_fraction`` of the usable images is held out for early stopping; the
    ``ImageScaler`` is fitted on the training part only. ``info["val_mse"]`` is the
    held-out reconstruction MSE per pixel in scaled units.
    """
    if not isinstance(config, VAEConfig):
        raise TypeError(f"config must be a VAEConfig, got {type(config).__name__}")
    images, usable, units, _ = _as_images(data)
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
    train = {"images": torch.as_tensor(scaler.transform(images[train_idx]), device=device)}
    val = {"images": torch.as_tensor(scaler.transform(images[val_idx]), device=device)}

    # Seed the weight initialisation without touching the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        encoder, vae_model = _build(config)
    history = train_svi(
        vae_model.model,
        encoder.guide,
        {"encoder": encoder, "vae_model": vae_model},
        train,
        val,
        config.train_config(progress),
        desc=f"VAE {size}px",
    )
    info = {"n_train": int(train_idx.size), "n_val": int(n_val), "n_excluded": int((~usable).sum())}
    fitted = FittedVAE(config, encoder, vae_model, scaler, history, info)
    fitted.info["val_mse"] = fitted.reconstruction_mse(images[val_idx])
    return fitted
