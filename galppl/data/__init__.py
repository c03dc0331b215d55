"""Catalogs: the data model, the mock SDSS sky (``simulate``), real-data loaders and feature preparation."""

from galppl.data.io import load_catalog, save_catalog
from galppl.data.loaders import (
    load_bh_compilation,
    load_fits_cutouts,
    load_galaxyzoo,
    load_gswlc,
    load_jpeg_cutouts,
    load_sdss_table,
)
from galppl.data.mock.sky import SimulationError, simulate
from galppl.data.paths import sdss_data_dir
from galppl.data.schema import (
    BANDS,
    CHANNELS,
    LINE_FLUXES,
    PROPERTIES,
    QUALITY_BITS,
    TARGETS,
    CatalogError,
    validate,
)

__all__ = [
    "BANDS",
    "CHANNELS",
    "LINE_FLUXES",
    "PROPERTIES",
    "QUALITY_BITS",
    "TARGETS",
    "CatalogError",
    "SimulationError",
    "load_bh_compilation",
    "load_catalog",
    "load_fits_cutouts",
    "load_galaxyzoo",
    "load_gswlc",
    "load_jpeg_cutouts",
    "load_sdss_table",
    "save_catalog",
    "sdss_data_dir",
    "simulate",
    "validate",
]
