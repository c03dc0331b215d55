"""Real-data loaders: SDSS-based catalogs, FITS cutouts and JPEG colour composites.

Every loader returns a validated catalog in galppl's data model (see
``galppl.data.schema``) whose attrs say which file it read (``source_file``,
``source_sha256``), which loader (``loader``) and what it converted (``conversions``).
"""

from galppl.data.loaders.catalogs import load_bh_compilation, load_galaxyzoo, load_gswlc
from galppl.data.loaders.fits_cutouts import load_fits_cutouts
from galppl.data.loaders.jpeg import load_jpeg_cutouts
from galppl.data.loaders.sdss_table import DEFAULT_COLUMNS, load_sdss_table

__all__ = [
    "DEFAULT_COLUMNS",
    "load_bh_compilation",
    "load_fits_cutouts",
    "load_galaxyzoo",
    "load_gswlc",
    "load_jpeg_cutouts",
    "load_sdss_table",
]
