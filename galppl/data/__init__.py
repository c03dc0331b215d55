"""Catalogs: the data model, the mock SDSS sky, real-data loaders and feature preparation."""

from galppl.data.io import load_catalog, save_catalog
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
    "load_catalog",
    "save_catalog",
    "validate",
]
