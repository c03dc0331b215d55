"""galppl: calibrated posteriors of galaxy physics from SDSS images and photometry.

``galppl.fit(model="props")`` fits the chain-rule posterior model on the embedded mock SDSS
sky (or on a catalog you pass); ``.predict(catalog)`` returns an ``arviz.InferenceData``.
"""

__version__ = "0.2.0"

from galppl.fit import FitConfig, fit, load  # noqa: E402

__all__ = ["FitConfig", "__version__", "fit", "load"]
