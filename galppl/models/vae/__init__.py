"""The image VAE: a Pyro generative model p(image | z) p(z) and the fitted object users keep.

- ``config``: ``VAEConfig``, the settings (architecture, likelihood, training, arithmetic);
- ``model``: ``Decoder`` and ``VAEModel`` (the Pyro model and its ELBO in plain torch);
  the amortized guide q(z | image) is ``galppl.guides.encoder.Encoder``;
- ``training``: ``fit_vae``, which trains both by SVI and returns a
- ``fitted``: ``FittedVAE`` with ``encode``/``decode``/``reconstruct``/``save``/``load``.
"""

from galppl.models.vae.config import VAEConfig
from galppl.models.vae.fitted import FittedVAE
from galppl.models.vae.model import Decoder, VAEModel
from galppl.models.vae.training import fit_vae

__all__ = ["Decoder", "FittedVAE", "VAEConfig", "VAEModel", "fit_vae"]
