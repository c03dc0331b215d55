"""galppl: calibrated posteriors of galaxy physics from SDSS images and photometry."""

__version__ = "0.1.0"
