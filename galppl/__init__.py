"""galppl: calibrated posteriors of galaxy physics from SDSS images and photometry.

``galppl.simulate(n, seed=..., image_size=...)`` draws a mock SDSS catalog;
``galppl.fit(model="props")`` fits the chain-rule posterior model on it (or on a catalog you
pass, or on the embedded mock sky), ``galppl.fit_vae(data)`` the image VAE alone;
``.predict(catalog)`` returns an ``arviz.InferenceData``, ``.log_prob(catalog)`` per-galaxy
log densities; ``galppl.load`` reads what ``.save`` wrote. ``galppl.fit(catalog, init=posterior)``
fine-tunes a fitted model on a small labelled catalog and ``posterior.recalibrate(catalog)``
re-fits its calibration; ``galppl.fit(..., ensemble=k)`` returns an ``EnsemblePosterior``.
``galppl.predict_catalog`` writes per-galaxy posterior summaries of a catalog of any size to
zarr, resumably.
"""

# The one version source: pyproject.toml reads it from here (setuptools dynamic version).
__version__ = "0.12.0"

from galppl.config import ChainConfig, DataConfig, FitConfig  # noqa: E402
from galppl.data import simulate  # noqa: E402
from galppl.ensemble import EnsemblePosterior  # noqa: E402
from galppl.fit import fit, fit_vae, load  # noqa: E402
from galppl.scale import predict_catalog  # noqa: E402

__all__ = ["ChainConfig", "DataConfig", "EnsemblePosterior", "FitConfig", "__version__", "fit", "fit_vae", "load",
           "predict_catalog", "simulate"]
