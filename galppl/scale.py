"""Catalog-scale prediction: per-galaxy posterior summaries of a whole survey, into zarr.

``predict_catalog(posterior, "survey.parquet", "summaries.zarr")`` reads the catalog a chunk
of rows at a time (:class:`~galppl.data.io.CatalogRows`: zarr, netCDF, FITS tables,
parquet), runs :meth:`GalaxyPosterior.predict <galppl.posterior.GalaxyPosterior.predict>` on
each chunk as one Dask task, reduces its draws to summaries and writes them into the chunk's
region of one zarr store. Memory is bounded by ``chunk_size x num_samples`` draws, whatever
the catalog's size.

The store (open it with ``xarray.open_zarr(out, consolidated=False)``), dims ``galaxy``,
``summary`` and, with ``keep_draws``, ``draw``:

- one (galaxy, summary) variable per continuous posterior variable (``log_mstar``, ``oh``,
  line fluxes, derived quantities), in its catalog units: ``summary`` = ``"mean"``, ``"sd"``
  (over draws, ddof 1) and ``"q0.025"`` ... ``"q0.975"`` (linear-interpolated quantiles), over
  the finite draws of each galaxy;
- per galaxy: the probabilities ``p_<gate>`` (e.g. ``p_oh_detected``) and ``p_bpt_<class>``;
  ``usable``, ``quality`` (with the ``out_of_distribution`` bit), ``ood_score``,
  ``out_of_distribution`` as :meth:`~galppl.posterior.GalaxyPosterior.predict` gives them;
- ``<variable>_draws`` (galaxy, draw) of every drawn variable when ``keep_draws``;
- ``chunk_done`` (chunk,): the completion record, one zarr chunk per catalog chunk, set
  only after the chunk's rows are written.

A killed run, called again with the same arguments, does only the chunks not yet done: no
galaxy is lost or written twice. Chunk ``k`` draws with the seed ``(seed, k)``, so the result
is the same whether the run was interrupted or not, and whichever worker ran each chunk.

Parallelism: Pyro's effect-handler stack is global to a process, so galaxies are drawn by
one thread per process (torch's own threads work inside it). Without a ``client`` the tasks
run on Dask's local threaded scheduler, one at a time; with a ``dask.distributed.Client``
they run on its workers, processes sharing the file system (use ``threads_per_worker=1``).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

import galppl
from galppl.data.io import CatalogRows
from galppl.ood import OutOfDistributionWarning

SUMMARIES = ("mean", "sd", 0.025, 0.16, 0.5, 0.84, 0.975)
# Galaxies per task: 4096 galaxies x 1000 draws x ~10 variables are ~160 MB of draws.
DEFAULT_CHUNK_SIZE = 4096
# Per-galaxy variables of predict's constant_data that the summaries carry.
QUALITY_VARIABLES = ("usable", "quality", "ood_score", "out_of_distribution")
DONE = "chunk_done"


def summary_labels(summaries) -> list[str]:
    """Labels of the ``summary`` coordinate: ``"mean"``, ``"sd"``, ``"q<p>"`` for a quantile ``p``."""
    labels = []
    for item in summaries:
        if item in ("mean", "sd"):
            labels.append(item)
        elif isinstance(item, (int, float)) and not isinstance(item, bool) and 0 <= item <= 1:
            labels.append(f"q{float(item):g}")
        else:
            raise ValueError(f"summaries must be 'mean', 'sd' or quantiles in [0, 1], got {item!r}")
    if len(set(labels)) != len(labels) or not labels:
        raise ValueError(f"summaries must be distinct and not empty, got {list(summaries)!r}")
    return labels


def summarise_draws(draws: np.ndarray, summaries=SUMMARIES) -> np.ndarray:
    """(draw, galaxy) values -> (galaxy, summary) float32 over each galaxy's finite draws.

    Quantiles interpolate linearly between order statistics (numpy's default method);
    a galaxy without finite draws gets NaN (and ``"sd"`` needs two).
    """
    summary_labels(summaries)
    ordered = np.sort(np.asarray(draws, dtype=np.float64), axis=0)  # NaN sort last
    finite = np.isfinite(ordered).sum(axis=0)
    out = np.full((ordered.shape[1], len(summaries)), np.nan)
    has = finite > 0
    filled = np.where(np.isfinite(ordered), ordered, 0.0)
    mean = filled.sum(axis=0) / np.maximum(finite, 1)
    cols = np.arange(ordered.shape[1])
    for j, item in enumerate(summaries):
        if item == "mean":
            out[has, j] = mean[has]
        elif item == "sd":
            two = finite > 1
            squares = np.where(np.isfinite(ordered), (ordered - mean) ** 2, 0.0).sum(axis=0)
            out[two, j] = np.sqrt(squares[two] / (finite[two] - 1))
        else:
            position = item * np.maximum(finite - 1, 0)
            low = np.floor(position).astype(int)
            high = np.minimum(low + 1, np.maximum(finite - 1, 0))
            value = ordered[low, cols] + (ordered[high, cols] - ordered[low, cols]) * (position - low)
            out[has, j] = value[has]
    return out.astype(np.float32)


def summarise(idata, summaries=SUMMARIES, *, keep_draws: bool = False, gates=()) -> xr.Dataset:
    """Per-galaxy summaries of an InferenceData from :meth:`GalaxyPosterior.predict` (see the
    module docstring). ``gates``: the 0/1 variables of Bernoulli blocks, carried by their
    probabilities ``p_<gate>`` rather than summarised."""
    posterior = idata.posterior
    galaxy = posterior["galaxy"].values
    out = xr.Dataset(coords={"galaxy": galaxy, "summary": summary_labels(summaries)})
    for name, values in posterior.data_vars.items():
        draws = values.transpose("chain", "draw", "galaxy").values.reshape(-1, len(galaxy))
        attrs = dict(values.attrs)
        if name.startswith("p_"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN galaxies: NaN
                out[name] = ("galaxy", np.nanmean(draws, axis=0, dtype=np.float64).astype(np.float32), attrs)
            continue
        if name not in gates and draws.dtype.kind == "f":  # classes and 0/1 gates have their p_
            out[name] = (("galaxy", "summary"), summarise_draws(draws, summaries), attrs)
        if keep_draws:
            out[f"{name}_draws"] = (("galaxy", "draw"), draws.T, attrs)
    for name in QUALITY_VARIABLES:
        out[name] = idata.constant_data[name].variable.copy()
    out.attrs = dict(posterior.attrs)
    return out


def model_fingerprint(posterior) -> str:
    """sha256 of a posterior's chain weights and featurizer settings: which model wrote a store."""
    digest = hashlib.sha256()
    for name, tensor in posterior.chain.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(json.dumps(posterior.featurizer.to_dict(), sort_keys=True).encode())
    return digest.hexdigest()


def predict_catalog(posterior, source, out, num_samples: int = 1000, *, summaries=SUMMARIES,
                    keep_draws: bool = False, chunk_size: int = DEFAULT_CHUNK_SIZE, client=None,
                    seed: int = 0, max_batch_size: int = 256, progress: bool = True) -> xr.Dataset:
    """Posterior summaries of every galaxy of the catalog file ``source``, written to the zarr
    store ``out`` (a path ending in ``.zarr``) chunk by chunk; returns the store opened lazily.

    posterior: a :class:`~galppl.posterior.GalaxyPosterior`. num_samples: draws per galaxy.
    summaries: what to keep of each continuous variable (:data:`SUMMARIES`). keep_draws:
    also write the draws (``num_samples`` float32 per galaxy and variable). chunk_size:
    galaxies per task (memory ~ chunk_size x num_samples x variables x 4 bytes).
    client: a ``dask.distributed.Client`` to run the tasks on (default: local threads).
    seed: chunk ``k`` draws with the seed ``(seed, k)``. max_batch_size: as in
    :meth:`~galppl.posterior.GalaxyPosterior.sample`.

    Resumable: if ``out`` holds a run with the same model, catalog and settings, only its
    chunks not yet done are computed; different ones are a ValueError naming them. Warns
    (:class:`~galppl.ood.OutOfDistributionWarning`) with the count of out-of-distribution
    galaxies of the whole catalog.
    """
    import dask

    out = Path(out)
    if out.suffix != ".zarr":
        raise ValueError(f"out {str(out)!r} must be a zarr store, a path ending in .zarr")
    for name, value in (("num_samples", num_samples), ("chunk_size", chunk_size), ("max_batch_size", max_batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    rows = CatalogRows(source)
    run = {
        "galppl_version": galppl.__version__, "model_sha256": model_fingerprint(posterior),
        "source": str(Path(source).resolve()), "n_galaxies": rows.n_galaxies, "num_samples": int(num_samples),
        "summaries": summary_labels(summaries), "keep_draws": bool(keep_draws), "chunk_size": int(chunk_size),
        "seed": int(seed), "max_batch_size": int(max_batch_size),
    }
    n_chunks = math.ceil(rows.n_galaxies / chunk_size)
    if out.exists():
        _check_resumable(out, run)
    else:
        _create_store(posterior, rows, out, run, list(summaries))
    done = _done_chunks(out, n_chunks)
    pending = [k for k in range(n_chunks) if not done[k]]
    sizes = {f"galppl-chunk-{k}": min(chunk_size, rows.n_galaxies - k * chunk_size) for k in pending}
    model = dask.delayed(posterior, name=f"galppl-posterior-{run['model_sha256'][:16]}")
    task = dask.delayed(_predict_chunk, pure=False)
    tasks = [task(model, rows, str(out), k, run, list(summaries), dask_key_name=f"galppl-chunk-{k}") for k in pending]
    _run_tasks(tasks, sizes, client, total=rows.n_galaxies, progress=progress)
    result = xr.open_zarr(out, consolidated=False)
    outside = int(result["out_of_distribution"].sum())
    if outside:
        warnings.warn(f"{outside} of {rows.n_galaxies} galaxies have inputs unlike the training galaxies': their "
                      "posteriors are extrapolations (see 'out_of_distribution' and 'ood_score' in "
                      f"{str(out)!r})", OutOfDistributionWarning, stacklevel=2)
    return result


def _run_tasks(tasks, sizes: dict, client, *, total: int, progress: bool) -> None:
    """Compute the chunk tasks, advancing a progress bar (galaxies) as each finishes."""
    from tqdm.auto import tqdm

    with tqdm(total=total, initial=total - sum(sizes.values()), unit="galaxy", desc="predict_catalog",
              disable=not progress, smoothing=0.1) as bar:
        if client is None:
            import dask
            from dask.callbacks import Callback

            class _Progress(Callback):
                def _posttask(self, key, result, dsk, state, worker_id):
                    bar.update(sizes.get(key, 0))

            with _Progress():
                dask.compute(*tasks, scheduler="threads", num_workers=1)
            return
        from distributed import as_completed

        for future in as_completed(client.compute(tasks)):
            future.result()  # raises the task's error here
            bar.update(sizes[future.key])


def _create_store(posterior, rows: CatalogRows, out: Path, run: dict, summaries: list) -> None:
    """The store's layout from a two-galaxy probe, every array empty, the run in its attrs."""
    import dask.array
    import zarr

    probe = _chunk_summaries(posterior, rows, 0, min(2, rows.n_galaxies), run, summaries, seed=0)
    n, size = rows.n_galaxies, run["chunk_size"]
    template = xr.Dataset(coords={"summary": probe["summary"].values})
    for name, values in probe.data_vars.items():
        shape = tuple(n if d == "galaxy" else run["num_samples"] if d == "draw" else values.sizes[d]
                      for d in values.dims)
        chunks = tuple(size if d == "galaxy" else s for d, s in zip(values.dims, shape))
        template[name] = (values.dims, dask.array.zeros(shape, chunks=chunks, dtype=values.dtype), values.attrs)
    n_chunks = math.ceil(n / size)
    template[DONE] = ("chunk", dask.array.zeros(n_chunks, chunks=1, dtype=bool),
                      {"description": f"True once chunk k (galaxies k*{size} to (k+1)*{size}) is written"})
    template.attrs = {**probe.attrs, "galppl_run": json.dumps(run)}
    template.to_zarr(out, compute=False, mode="w-", consolidated=False, zarr_format=2)
    ids = probe["galaxy"].values
    dtype = ids.dtype if ids.dtype.kind in "iu" else np.dtype("<U64")  # string ids: up to 64 characters
    group = zarr.open_group(out, mode="r+", zarr_format=2)
    group.create_array("galaxy", shape=(n,), chunks=(size,), dtype=dtype, fill_value=None,
                       attributes={"_ARRAY_DIMENSIONS": ["galaxy"], "description": "galaxy id in the catalog"})


def _check_resumable(out: Path, run: dict) -> None:
    try:
        with xr.open_zarr(out, consolidated=False) as existing:
            before = json.loads(existing.attrs["galppl_run"])
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{str(out)!r} exists and is not a predict_catalog store ({err}): choose a new path") from err
    changed = {key: (before.get(key), value) for key, value in run.items()
               if key != "galppl_version" and before.get(key) != value}
    if changed:
        what = "; ".join(f"{key} was {old!r}, now {new!r}" for key, (old, new) in changed.items())
        raise ValueError(f"{str(out)!r} holds a run with other settings ({what}): to resume it, call with the "
                         "same model, catalog and settings; otherwise choose a new path")


def _done_chunks(out: Path, n_chunks: int) -> np.ndarray:
    import zarr

    return np.asarray(zarr.open_array(out / DONE, mode="r", zarr_format=2)[:n_chunks], dtype=bool)


def _chunk_summaries(posterior, rows: CatalogRows, start: int, stop: int, run: dict, summaries: list,
                     seed) -> xr.Dataset:
    data = rows.read(start, stop)
    if data.sizes["galaxy"] != stop - start:
        raise ValueError(f"{rows!r} gave {data.sizes['galaxy']} rows for rows {start}-{stop}")
    return catalog_summaries(posterior, data, run, summaries, seed)


def catalog_summaries(posterior, data: xr.Dataset, run: dict, summaries: list, seed) -> xr.Dataset:
    """The summaries of one chunk of galaxies (a validated catalog): :meth:`GalaxyPosterior.predict
    <galppl.posterior.GalaxyPosterior.predict>` with ``run``'s ``num_samples``, ``max_batch_size``
    and ``keep_draws`` and the torch ``seed``, reduced by :func:`summarise`. The one per-chunk step
    of :func:`predict_catalog` and :func:`predict_hats`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDistributionWarning)  # counted once for the whole catalog
        idata = posterior.predict(data, run["num_samples"], max_batch_size=run["max_batch_size"], seed=seed)
    gates = {v for block in posterior.chain.blocks if block.kind == "bernoulli" for v in block.variables}
    return summarise(idata, summaries, keep_draws=run["keep_draws"], gates=gates)


def chunk_seed(seed: int, index: int) -> int:
    """The torch seed of chunk ``index`` of a run seeded ``seed`` (independent streams per chunk)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> 1)


def _predict_chunk(posterior, rows: CatalogRows, out: str, index: int, run: dict, summaries: list) -> int:
    """One task: predict chunk ``index``, write its region, then mark it done."""
    import zarr

    size = run["chunk_size"]
    start, stop = index * size, min(rows.n_galaxies, (index + 1) * size)
    ds = _chunk_summaries(posterior, rows, start, stop, run, summaries, chunk_seed(run["seed"], index))
    ids = ds["galaxy"].values
    region = ds.drop_vars([name for name, v in ds.variables.items() if "galaxy" not in v.dims])
    region.drop_vars("galaxy").to_zarr(out, region={"galaxy": slice(start, stop)}, consolidated=False, zarr_format=2)
    galaxy = zarr.open_array(Path(out) / "galaxy", mode="r+", zarr_format=2)
    if ids.dtype.kind not in "iu" and max(map(len, ids.astype(str)), default=0) > 64:
        raise ValueError(f"galaxy ids of rows {start}-{stop} are longer than 64 characters")
    galaxy[start:stop] = ids
    zarr.open_array(Path(out) / DONE, mode="r+", zarr_format=2)[index] = True
    return stop - start
