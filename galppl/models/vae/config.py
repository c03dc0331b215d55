"""The image VAE's settings: architecture, likelihood, training and arithmetic, checked on construction."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from galppl.train import TrainConfig

__all__ = ["PRECISIONS", "TRAINERS", "VAEConfig"]

TRAINERS = ("torch", "pyro")
PRECISIONS = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class VAEConfig:
    """Architecture and training settings of the image VAE, checked on construction.

    image_size: stamp side in pixels (multiple of 8); ``None`` takes it from the data.
    latent_dim: size of z. channels: image channels (gri: 3). conv_channels: widths of
    the encoder's three convolutions (mirrored by the decoder). hidden: width of the fully
    connected layer. norm: "none", "group" or "batch" normalisation after convolutions.
    likelihood_scale: the fixed sigma of the Gaussian likelihood in scaled pixel units
    (standard deviations of the stretched training pixels), or "learned" (per channel).
    lr, batch_size, max_epochs, patience, min_rel_delta, seed, max_seconds: see ``TrainConfig``.
    val_fraction: share of the usable images held out for early stopping.
    device: torch device to train on ("cpu", "cuda", ...).
    trainer: how the ELBO is optimised. "torch" (default): ``VAEModel.negative_elbo``,
    the Pyro model's Trace_ELBO written in plain torch (tested equal to it), in
    ``galppl.train.train_loss_fn``; "pyro": Pyro's SVI on ``VAEModel.model`` and
    ``Encoder.guide`` (``galppl.train.train_svi``), the reference, slower on a CPU.
    precision: the arithmetic of the networks while training (the "torch" trainer only;
    densities and the optimiser stay float32, and a fitted VAE always encodes in
    float32). "bfloat16" runs the convolutions and dense layers in bfloat16 under
    ``torch.autocast`` (about 2x faster on CPUs with native bfloat16, e.g. AVX512-BF16);
    "float32" is exact; "auto" takes bfloat16 where the device supports it natively and
    float32 elsewhere (and always with the "pyro" trainer).
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
    min_rel_delta: float = 0.0
    seed: int = 0
    max_seconds: float | None = None
    val_fraction: float = 0.15
    device: str = "cpu"
    trainer: str = "torch"
    precision: str = "auto"

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
        if self.trainer not in TRAINERS:
            raise ValueError(f"VAEConfig.trainer must be one of {TRAINERS}, got {self.trainer!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"VAEConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.trainer == "pyro" and self.precision == "bfloat16":
            raise ValueError("VAEConfig.precision 'bfloat16' needs trainer='torch'; the 'pyro' trainer runs in float32")
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
            min_rel_delta=self.min_rel_delta,
            seed=self.seed,
            progress=progress,
            max_seconds=self.max_seconds,
        )

    def training_dtype(self) -> torch.dtype:
        """The dtype the networks train in: ``precision`` with "auto" resolved on ``device``."""
        if self.precision == "float32" or self.trainer == "pyro":
            return torch.float32
        if self.precision == "bfloat16":
            return torch.bfloat16
        device = torch.device(self.device)
        if device.type == "cuda":
            native = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
        else:
            # Without these instructions oneDNN emulates bfloat16, which is slower than float32.
            native = device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        return torch.bfloat16 if native else torch.float32

    def to_dict(self) -> dict:
        """JSON-able dict."""
        out = dataclasses.asdict(self)
        out["conv_channels"] = list(self.conv_channels)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> VAEConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them.

        Configs saved by galppl 0.2.0 lack ``trainer`` and ``precision``; they take the
        defaults (which only matter for training, not for a loaded model).
        """
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown VAEConfig field(s): {', '.join(sorted(unknown))}")
        return cls(**data)
