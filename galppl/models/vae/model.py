"""The VAE's generative model p(image | z) p(z): the decoder network, the Pyro model, its ELBO.

Per galaxy, under the galaxy plate (with minibatch subsampling, see ``galppl.train``)::

    z     ~ Normal(0, I_latent_dim)
    image ~ Normal(decoder(z), sigma_c).to_event(3)

in the scaled pixel space of ``galppl.data.prepare.ImageScaler`` (arcsinh-stretched,
standardised per channel). A fixed ``sigma`` makes the reconstruction term a scaled mean
squared error, the paper's MSE loss; ``likelihood_scale="learned"`` learns one sigma per
channel instead. The amortized guide q(z | image) is ``galppl.guides.encoder.Encoder``.

``VAEModel.model`` is THE definition; ``VAEModel.negative_elbo`` computes the same
Trace_ELBO loss in plain torch for fast training (tests hold the two equal).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import Normal

from galppl.guides.encoder import Encoder, conv_block_norm
from galppl.models.plate import galaxy_plate, minibatch_scale
from galppl.models.vae.config import VAEConfig

__all__ = ["Decoder", "VAEModel"]


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

    def negative_elbo(self, encoder: Encoder, images: torch.Tensor, n_total: int | None = None) -> torch.Tensor:
        """Pyro's ``Trace_ELBO`` loss of ``model`` with ``encoder.guide``, in plain torch (nats).

        One reparameterised draw z ~ q(z | image) per galaxy, taken exactly as the guide's
        ``rsample`` takes it (same random numbers for the same torch random state), and
        ``-(n_total / batch) * sum[log p(z) + log p(image | z) - log q(z | image)]``:
        the loss value and gradients ``SVI.step`` computes, without its tracing. The
        networks may run under ``torch.autocast``; the densities are evaluated in float32.
        """
        weight = minibatch_scale(images.shape[0], n_total)
        loc, scale = (t.float() for t in encoder(images))
        posterior = Normal(loc, scale, validate_args=False)
        z = posterior.rsample()
        log_prior = Normal(torch.zeros_like(z), 1.0, validate_args=False).log_prob(z).sum()
        sigma = self.likelihood_scale()[:, None, None]
        log_likelihood = Normal(self.decoder(z).float(), sigma, validate_args=False).log_prob(images).sum()
        return -weight * (log_prior + log_likelihood - posterior.log_prob(z).sum())
