"""The VAE's amortized guide: a convolutional encoder for q(z | image).

Three stride-2 convolutions (kernel 4, padding 1) halve the stamp side three times, so
any side divisible by 8 works (64 px -> 8 x 8 feature maps, 160 px -> 20 x 20); fully
connected layers then give the mean and log-variance of a diagonal Gaussian over the
latent vector (Kingma & Welling 2014). Images enter already scaled by
``galppl.data.prepare.ImageScaler``.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from galppl.models.plate import galaxy_plate

__all__ = ["Encoder", "conv_block_norm"]

# Log-variances are clamped so that exp() can neither overflow nor reach a zero scale.
LOGVAR_MIN, LOGVAR_MAX = -12.0, 8.0


def conv_block_norm(norm: str, channels: int) -> nn.Module:
    """The normalisation layer after a convolution: "none", "group" or "batch"."""
    if norm == "none":
        return nn.Identity()
    if norm == "group":
        # 8 groups (or fewer for narrow layers): batch-independent, so eval == train behaviour.
        return nn.GroupNorm(min(8, channels), channels)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"norm must be 'none', 'group' or 'batch', got {norm!r}")


class Encoder(nn.Module):
    """Images (batch, channels, S, S) -> (loc, scale) of q(z | image), each (batch, latent_dim).

    ``conv_channels`` are the widths of the three convolutions, ``hidden`` the width of
    the fully connected layer. ``image_size`` must be divisible by 8.
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
        if len(conv_channels) != 3:
            raise ValueError(f"conv_channels must name 3 widths, got {conv_channels}")
        self.image_size, self.latent_dim = image_size, latent_dim
        layers, width = [], channels
        for out in conv_channels:
            layers += [nn.Conv2d(width, out, kernel_size=4, stride=2, padding=1), conv_block_norm(norm, out)]
            layers.append(nn.LeakyReLU(0.2))
            width = out
        self.conv = nn.Sequential(*layers, nn.Flatten())
        flat = width * (image_size // 8) ** 2
        self.fc = nn.Sequential(nn.Linear(flat, hidden), nn.LeakyReLU(0.2))
        self.loc = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation of the latent vector."""
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            raise ValueError(f"this encoder takes {self.image_size} px images, got {tuple(images.shape[-2:])}")
        h = self.fc(self.conv(images))
        logvar = self.logvar(h).clamp(LOGVAR_MIN, LOGVAR_MAX)
        return self.loc(h), torch.exp(0.5 * logvar)

    def guide(self, images: torch.Tensor, n_total: int | None = None) -> None:
        """Pyro guide: z ~ Normal(loc, scale) per galaxy, amortized over ``images``.

        Follows ``galppl.train``'s convention (minibatch ``images``, ``n_total`` galaxies).
        """
        pyro.module("encoder", self)
        with galaxy_plate(images.shape[0], n_total, device=images.device):
            loc, scale = self(images)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))
