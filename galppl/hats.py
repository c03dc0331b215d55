"""Posterior summaries of a HATS catalog (Rubin-scale surveys) through LSDB: the optional extra
``pip install galppl[lsdb]``.

``predict_hats(posterior, "survey_hats/", "summaries_hats/")`` maps every HEALPix partition of
an LSDB catalog through the per-chunk step of :func:`galppl.predict_catalog`
(:func:`galppl.scale.catalog_summaries`: ``predict`` then :func:`~galppl.scale.summarise`) and
writes the result as a new HATS catalog with the same partitions, one row per galaxy:

- the input's id column, right ascension and declination (deg), and HATS' ``_healpix_29`` index;
- per continuous variable ``v`` and summary ``s`` (:data:`galppl.scale.SUMMARIES`), a column
  ``v_s`` in the variable's catalog units, e.g. ``log_mstar_mean``, ``log_mstar_q0.5``;
- ``p_<gate>``, ``p_bpt_<class>``, ``usable``, ``quality``, ``ood_score``, ``out_of_distribution``.

The partitions' rows are SDSS-style tables (:func:`~galppl.data.loaders.load_sdss_table` reads
them: ``objID``, ``modelMag_<band>``, ...). The partition of HEALPix order ``k`` and pixel ``p``
draws with the seed ``chunk_seed(seed, p * 4**(29 - k))`` (its first order-29 cell), so a
galaxy's draws do not depend on which other partitions are computed (a cone search of the
same catalog gives the same numbers), and the single order-0 pixel-0 partition draws exactly as
chunk 0 of :func:`~galppl.scale.predict_catalog`.

Which engine: ``posterior.predict`` up to ~1e4 galaxies (every draw in memory);
``predict_catalog`` on a file (zarr/netCDF/FITS/parquet) up to ~1e8 galaxies, locally or on a
Dask cluster; ``predict_hats`` for catalogs already in HATS (LSST, Gaia, ZTF via LSDB), whose
spatial partitions also let a cone or box search predict a region only.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from galppl.scale import SUMMARIES, catalog_summaries, chunk_seed, model_fingerprint, summary_labels

RUN_FILE = "galppl_run.json"
# HATS' finest HEALPix order: its _healpix_29 index numbers cells at this order.
HATS_ORDER = 29


def partition_seed(seed: int, order: int, pixel: int) -> int:
    """The torch seed of the partition at HEALPix ``order``, nested ``pixel``: the chunk seed of
    its first order-29 cell (unique among a catalog's partitions, which never overlap)."""
    return chunk_seed(seed, int(pixel) << (2 * (HATS_ORDER - int(order))))


def predict_hats(posterior, catalog, out, num_samples: int = 1000, *, summaries=SUMMARIES, seed: int = 0,
                 max_batch_size: int = 256, client=None, progress: bool = True):
    """Posterior summaries of every galaxy of a HATS catalog, written as the HATS catalog ``out``
    (a directory); returns it opened with ``lsdb.open_catalog``. See the module docstring.

    posterior: a :class:`~galppl.posterior.GalaxyPosterior`. catalog: a HATS catalog's path or an
    ``lsdb.Catalog`` (e.g. after a cone search). num_samples: draws per galaxy. summaries: as in
    :func:`~galppl.predict_catalog`. seed: see :func:`partition_seed`. client: a
    ``dask.distributed.Client`` whose workers run one thread each (Pyro's handler stack and
    the seeded generator are per process); default: one local thread.

    Resumable: called again with the same arguments, only the partitions not yet written are
    computed (LSDB's ``resume``); another model or other settings are a ValueError naming them.
    """
    import dask

    lsdb = _lsdb()
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    if not isinstance(catalog, lsdb.catalog.Catalog):
        catalog = lsdb.open_catalog(catalog)
    out = Path(out)
    labels = summary_labels(summaries)
    run = {"model_sha256": model_fingerprint(posterior), "catalog": catalog.hc_structure.catalog_name,
           "pixels": [str(p) for p in catalog.get_healpix_pixels()], "num_samples": int(num_samples),
           "summaries": labels, "seed": int(seed), "max_batch_size": int(max_batch_size)}
    _start_or_resume(out, run)
    settings = {"num_samples": int(num_samples), "max_batch_size": int(max_batch_size), "keep_draws": False}
    arguments = (posterior, settings, list(summaries), int(seed), catalog.hc_structure.catalog_info)
    probe = catalog.head(2)  # the output's columns, from two galaxies (the pixel only seeds them)
    if len(probe) == 0:
        raise ValueError(f"the catalog {run['catalog']!r} holds no galaxies")
    meta = _partition_summaries(probe, catalog.get_healpix_pixels()[0], *arguments).iloc[:0]
    result = catalog.map_partitions(_partition_summaries, *arguments, meta, meta=meta, include_pixel=True)
    scheduler = client if client is not None else "synchronous"
    with dask.config.set(scheduler=scheduler):
        result.write_catalog(out, catalog_name=f"{run['catalog']}_galppl", resume=True, progress_bar=progress,
                             as_collection=False)
    return lsdb.open_catalog(out)


def _lsdb():
    try:
        import lsdb
    except ImportError as err:
        raise ImportError("predict_hats needs LSDB: pip install 'galppl[lsdb]' (lsdb and hats)") from err
    return lsdb


def _start_or_resume(out: Path, run: dict) -> None:
    """Record the run in ``out`` (new) or check it is the recorded one (existing)."""
    record = out / RUN_FILE
    if out.exists() and any(out.iterdir()):
        if not record.exists():
            raise ValueError(f"{str(out)!r} exists and holds no predict_hats run: choose a new path")
        before = json.loads(record.read_text())
        changed = [f"{key} was {before.get(key)!r}, now {value!r}" for key, value in run.items()
                   if before.get(key) != value]
        if changed:
            raise ValueError(f"{str(out)!r} holds a run with other settings ({'; '.join(changed)}): to resume it, "
                             "call with the same model, catalog and settings; otherwise choose a new path")
        return
    out.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(run, indent=1))


def _partition_summaries(frame: pd.DataFrame, pixel, posterior, settings: dict, summaries: list, seed: int,
                         info, empty: pd.DataFrame | None = None) -> pd.DataFrame:
    """One partition's rows (an SDSS-style table indexed by ``_healpix_29``) -> one row of
    summaries per galaxy, same index, with the id, ra and dec columns kept; ``empty`` (the
    output's columns, no rows) for an empty partition."""
    from galppl.data.loaders import load_sdss_table
    from galppl.ood import OutOfDistributionWarning

    if len(frame) == 0:  # a partition a search left empty: the output's columns, no rows
        return empty.set_axis(frame.index[:0])
    positions = frame[[info.ra_column, info.dec_column]]
    data = load_sdss_table(frame.reset_index(drop=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDistributionWarning)  # the flags are columns of the output
        ds = catalog_summaries(posterior, data, settings, summaries, partition_seed(seed, pixel.order, pixel.pixel))
    columns = {"galaxy": ds["galaxy"].values, **{name: positions[name].values for name in positions}}
    for name, values in ds.data_vars.items():
        if "summary" in values.dims:
            for label in ds["summary"].values:
                columns[f"{name}_{label}"] = values.sel(summary=label).values
        else:
            columns[name] = values.values
    return pd.DataFrame(columns, index=frame.index)
