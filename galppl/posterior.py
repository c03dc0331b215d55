"""The fitted posterior model a user keeps: predict, save, load.

``GalaxyPosterior.predict(catalog)`` returns an ``arviz.InferenceData``:

- ``posterior``: draws (chain, draw, galaxy) of every modelled variable, in catalog units;
  for a Bernoulli gate such as ``oh_detected`` its 0/1 draws and its probability
  ``p_oh_detected`` (constant along draws); gated variables (``oh``) are drawn for every
  galaxy through the chain rule, i.e. what they would be were they measurable;
- ``observed_data``: the catalog's values of the same variables where it has them (NaN
  where missing), so diagnostics can compare with the truth;
- ``constant_data``: the inputs (magnitudes, extinction, the ``quality`` bitmask) and
  ``usable``, False for galaxies whose inputs are incomplete: their draws are NaN, carried
  rather than dropped; ``ood_score`` and ``out_of_distribution``, True for galaxies whose
  inputs are unlike the training galaxies' (:mod:`galppl.ood`): they get draws, but those
  are extrapolations; the ``quality`` bit ``out_of_distribution`` is set for them and
  ``predict`` warns with their count.

``GalaxyPosterior.log_prob(catalog)`` gives each galaxy's log density of its catalog values
per block, in the catalog's units. ``GalaxyPosterior.recalibrate(catalog)`` re-fits the
chain's calibration on labelled held-out galaxies (real ones, for a mock-trained model).
"""

from __future__ import annotations

import json
import pickle
import tempfile
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import torch
import xarray as xr

import galppl
from galppl.config import FitConfig
from galppl.data.files import CorruptFileError, atomic_path, file_sha256, read_json, tensor_checksums
from galppl.data.schema import KNOWN, CatalogError, flag, quality_attrs, validate
from galppl.features import CatalogTensors, Featurizer, catalog_tensors
from galppl.models.calibration import MIN_GALAXIES, OUTLIER_BUFFERS, SLOPE_BUFFERS, calibration_plan
from galppl.models.chain import Block, ChainModel
from galppl.models.derived import add_derived
from galppl.ood import OutOfDistributionWarning, flagged_ids

CONSTANT_VARIABLES = ("mag", "mag_err", "extinction", "quality")
# Rows (draws x galaxies) per call of the chain when sampling. The couplings' hidden
# activations are (rows, 128) float32: 16,384 rows are 8 MB each, 256 galaxies x 1000 draws
# 128 MB, which no cache holds; fewer rows pay each call's fixed cost (h, the blocks'
# distributions, the calibration's transforms) more often. benchmarks/throughput.py --rows,
# galppl 0.10.1, draws/s of props at 1 / 2 threads: 1,024 rows 64,016 / 79,192; 4,096 (galppl
# <= 0.10.0) 93,053 / 151,673; 16,384 104,680 / 194,255; 65,536 98,643 / 172,991 (lines at 2
# threads: 163,198 at 4,096, 206,980 at 16,384; at 1 thread 106,903 and 104,761).
DRAW_ROWS = 16384
# The files of a saved posterior.
CONFIG_FILE, WEIGHTS_FILE = "config.json", "chain.pt"
# The oldest galppl whose saved posteriors this one reads: 0.3.0 changed the saved layout
# (nested config, featurizer.json) and the chain's weights.
OLDEST_READABLE = "0.3.0"
# The first galppls that saved the outlier-share buffers and the temperature's slopes on the
# mean (older saves load with none: the model exactly as it was saved).
OUTLIER_SHARE_SINCE = "0.4.0"
TEMPERATURE_SLOPE_SINCE = "0.6.0"
# The first galppl that calibrated on a split of its own (DataConfig.calibration_fraction);
# older saves calibrated on their val galaxies, and load saying so (a fraction of 0).
CALIBRATION_SPLIT_SINCE = "0.9.0"
# What a saved posterior's config.json must hold.
SAVED_KEYS = ("kind", "galppl_version", "model", "blocks", "config", "history", "split")


class GalaxyPosterior:
    """A fitted chain model and the :class:`~galppl.features.Featurizer` that feeds it.

    model: ``"props"``, ``"lines"``, ``"joint"`` or ``"custom"``. config: the
    :class:`~galppl.config.FitConfig` it was fitted with. history: what training recorded.
    split: the galaxy ids of the ``vae``, ``train``, ``val``, ``calibration`` and ``test`` splits
    (no ``calibration`` in models saved before galppl 0.9.0).
    """

    def __init__(self, chain: ChainModel, featurizer: Featurizer, *, model: str, config: FitConfig,
                 history: dict | None = None, split: dict | None = None):
        if featurizer.feature_dim != chain.feature_dim:
            raise ValueError(f"the featurizer gives {featurizer.feature_dim} features, the chain reads {chain.feature_dim}")
        self.chain = chain.eval()
        self.featurizer = featurizer
        self.model = model
        self.config = config
        self.history = dict(history or {})
        self.split = {k: list(v) for k, v in (split or {}).items()}

    @property
    def variables(self) -> tuple[str, ...]:
        return self.chain.variables

    @property
    def inputs(self) -> str:
        return self.featurizer.inputs

    @property
    def vae(self):
        """The frozen VAE the features read (None for photometry-only inputs)."""
        return self.featurizer.vae

    @property
    def feature_names(self) -> list[str]:
        return self.featurizer.feature_names

    def __repr__(self) -> str:
        return (f"GalaxyPosterior(model={self.model!r}, inputs={self.inputs!r}, "
                f"variables={list(self.variables)}, blocks={[b.name for b in self.chain.blocks]})")

    # ------------------------------------------------------------------ inputs
    def features(self, data: xr.Dataset) -> xr.DataArray:
        """The model's input features (galaxy, feature) for a catalog (NaN rows for incomplete inputs)."""
        return self.featurizer.features(data)

    def tensors(self, data: xr.Dataset) -> CatalogTensors:
        """A catalog's features and per-block targets as the chain reads them (see :func:`~galppl.features.catalog_tensors`)."""
        return catalog_tensors(self.features(data), data, self.chain.blocks)

    # ------------------------------------------------------------------ predict
    def sample(self, data: xr.Dataset, num_samples: int = 1000, *, max_batch_size: int = 256,
               seed: int = 0) -> dict[str, np.ndarray]:
        """Raw draws: variable -> (num_samples, galaxy) float32, NaN for unusable galaxies.

        Galaxies are processed at most ``max_batch_size`` at a time, fewer when
        ``num_samples`` is large (about :data:`DRAW_ROWS` draws per call of the chain, for speed),
        so memory stays bounded by ``num_samples x max_batch_size`` draws whatever the catalog size.
        """
        _check_counts(num_samples=num_samples, max_batch_size=max_batch_size, seed=seed)
        _check_catalog(data)
        return self._draw(catalog_tensors(self.features(data), data), num_samples, max_batch_size, seed)

    def _draw(self, tensors: CatalogTensors, num_samples: int, max_batch_size: int, seed: int) -> dict[str, np.ndarray]:
        _check_counts(num_samples=num_samples, max_batch_size=max_batch_size, seed=seed)
        x = tensors.usable_rows().features
        # Every variable of every block (and each gate's probability), NaN for unusable galaxies.
        names = [name for b in self.chain.blocks
                 for name in b.variables + ((f"p_{b.name}",) if b.kind == "bernoulli" else ())]
        out = {name: np.full((num_samples, len(tensors.galaxy)), np.nan, np.float32) for name in names}
        rows = np.flatnonzero(tensors.usable)
        batch = max(1, min(max_batch_size, DRAW_ROWS // num_samples))
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(seed)
            for start in range(0, len(rows), batch):
                draws = self.chain.sample(x[start:start + batch], num_samples)
                index = rows[start:start + batch]
                for block in self.chain.blocks:
                    values = draws[block.name].numpy()
                    for k, name in enumerate(block.variables):
                        out[name][:, index] = values[..., k]
                    if block.kind == "bernoulli":
                        out[f"p_{block.name}"][:, index] = draws[f"p_{block.name}"].numpy()[:, 0]
        return out

    def predict(self, data: xr.Dataset, num_samples: int = 1000, *, max_batch_size: int = 256,
                seed: int = 0) -> az.InferenceData:
        """Posterior draws for every galaxy of ``data`` as an ``arviz.InferenceData`` (see the
        module docstring). Warns (:class:`~galppl.ood.OutOfDistributionWarning`) when some
        galaxies are out of distribution, naming the input features outside the training range."""
        _check_counts(num_samples=num_samples, max_batch_size=max_batch_size, seed=seed)
        _check_catalog(data)
        features = self.features(data)
        tensors = catalog_tensors(features, data)
        draws = self._draw(tensors, num_samples, max_batch_size, seed)
        galaxy = data["galaxy"].values
        coords = {"chain": [0], "draw": np.arange(num_samples), "galaxy": galaxy}
        posterior = xr.Dataset(
            {name: (("chain", "draw", "galaxy"), values[None], _attrs(name, data)) for name, values in draws.items()},
            coords=coords,
        )
        observed = xr.Dataset(coords={"galaxy": galaxy})
        for name in self.variables:
            if name in data:
                observed[name] = ("galaxy", data[name].values.astype(np.float64), _attrs(name, data))
        constant = xr.Dataset(coords={"galaxy": galaxy, "band": data["band"].values})
        for name in CONSTANT_VARIABLES:
            if name in data:
                constant[name] = data[name].copy()
        constant["usable"] = ("galaxy", tensors.usable, {"units": "", "description": "inputs complete; draws are NaN where False"})
        constant.update(self.featurizer.ood_scores(features))
        if "image_unlike_training" in features.coords:
            flag(constant, "bad_image", features["image_unlike_training"].values)
        outside = constant["out_of_distribution"].values
        flag(constant, "out_of_distribution", outside)
        constant["quality"].attrs.update(quality_attrs())  # a catalog saved before this bit existed lacks its meaning
        if outside.any():
            shown = flagged_ids(galaxy, outside)
            warnings.warn(
                f"{int(outside.sum())} of {len(galaxy)} galaxies have inputs unlike the training galaxies' "
                f"(galaxy ids {shown}): their posteriors are extrapolations{self._range_note(features)}. See "
                "idata.constant_data['out_of_distribution'], 'outside_training_range' and 'ood_score' (the "
                "quality bit 'out_of_distribution' is set for them).", OutOfDistributionWarning, stacklevel=2)
        attrs = {
            "galppl_version": galppl.__version__,
            "model": self.model,
            "inputs": self.inputs,
            "simulated": int(data.attrs.get("source") == "galppl.simulate"),
            "source": str(data.attrs.get("source", "")),
        }
        posterior = add_derived(posterior, self.chain.blocks, data)
        for group in (posterior, observed, constant):
            group.attrs.update(attrs)
        return az.InferenceData(posterior=posterior, observed_data=observed, constant_data=constant)

    def _range_note(self, features: xr.DataArray) -> str:
        """'; features outside the training range: mag_r (20 galaxies, trained on 14 to 17.8), ...'
        (empty when none is)."""
        outside = self.featurizer.outside_training_range(features).values.sum(axis=0)
        low, high = self.featurizer.training_range()
        named = [f"{name} ({count} galaxies, trained on {low[k]:.3g} to {high[k]:.3g})"
                 for k, (name, count) in enumerate(zip(self.feature_names, outside)) if count]
        if not named:
            return ""
        return "; features outside the training range: " + ", ".join(named[:5]) + (", ..." if len(named) > 5 else "")

    def log_prob(self, data: xr.Dataset, num_draws: int = 64, *, max_batch_size: int = 256,
                 seed: int = 0) -> xr.Dataset:
        """Per-galaxy log density of each block's catalog values, in the catalog's units.

        Returns a Dataset with one (galaxy,) variable per block, named after the block: the
        log density (nats) of the block's variables given the galaxy's inputs (and, for a
        child block, its parents' catalog values), with the Jacobian of the chain's
        standardisation and value transforms included, so numbers compare across models.
        A Bernoulli gate gives the log probability of its 0/1 value. NaN where a block's
        values are missing or the galaxy's inputs are incomplete. Where a parent's value is
        missing, the child is averaged over ``num_draws`` seeded draws of it
        (:meth:`~galppl.models.chain.ChainModel.log_prob`); galaxies go ``max_batch_size`` at a time.
        """
        _check_counts(num_draws=num_draws, max_batch_size=max_batch_size, seed=seed)
        _check_catalog(data)
        tensors = self.tensors(data)
        usable = tensors.usable_rows()
        rows = np.flatnonzero(tensors.usable)
        out = {block.name: np.full(len(tensors.galaxy), np.nan) for block in self.chain.blocks}
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(seed)
            for start in range(0, len(rows), max_batch_size):
                batch = slice(start, start + max_batch_size)
                lp = self.chain.log_prob(usable.features[batch], {k: v[batch] for k, v in usable.targets.items()},
                                         num_draws=num_draws)
                for name, values in lp.items():
                    out[name][rows[batch]] = values.numpy()
        variables = {
            block.name: ("galaxy", out[block.name], {
                "units": "nats",
                "description": f"log density of {', '.join(block.variables)} in catalog units given the inputs"
                               + (f" and {', '.join(block.parents)}" if block.parents else ""),
            })
            for block in self.chain.blocks
        }
        return xr.Dataset(variables, coords={"galaxy": tensors.galaxy},
                          attrs={"galppl_version": galppl.__version__, "model": self.model, "num_draws": num_draws})

    # ------------------------------------------------------------------ recalibration
    def recalibrate(self, data: xr.Dataset, *, outliers: bool = True, conditional: bool = True) -> dict:
        """Re-fit the chain's post-hoc calibration on labelled held-out galaxies; return it.

        For a model fitted on one sky (the mock) and used on another (real galaxies): with every
        weight, the standardisation and the featurizer untouched, each continuous block's
        calibration (its ``shift_<block>`` and ``temperature_<block>`` buffers, see
        :func:`~galppl.models.calibration.recalibrate_blocks`) is re-fitted on ``data``'s
        galaxies with complete inputs that the model does not flag out-of-distribution (a
        flagged galaxy's posterior is an extrapolation: calibrating on it would widen every
        other one; measured on DR9, 500 galaxies with the flagged ones widened z's 68% interval
        to 0.79 coverage, without them 0.71), in catalog units. ``data`` may label any subset
        of the modelled variables (e.g. only ``z`` and ``log_mstar``): a block whose galaxies
        mostly have all its variables is refitted by its joint likelihood; otherwise each
        variable labelled on at least :data:`~galppl.models.calibration.MIN_GALAXIES` galaxies
        gets its own shift and temperature from its marginal likelihood, and the others keep
        theirs (:func:`~galppl.models.calibration.calibration_plan`). With ``outliers`` (and at
        least :data:`~galppl.models.calibration.MIN_OUTLIER_GALAXIES` labelled galaxies), each
        refitted variable also gets an outlier share and widening
        (:class:`~galppl.models.block.OutlierMixture`): a real sky has blends and bad photometry
        that the training sky lacks, so its residuals are more peaked with heavier tails than
        the model's, and one temperature cannot fit both. With ``conditional`` (and at least
        :data:`~galppl.models.calibration.MIN_SLOPE_GALAXIES` labelled galaxies), each refitted
        variable's log temperature is also linear in the block's mean, its predicted values
        (:class:`~galppl.models.block.TemperedShift`): the other sky's residuals are wider than
        the training sky's for some kinds of galaxy more than others, and one temperature leaves
        those too narrow and the rest too wide (a mock-trained photometry model on DR9: the
        bluer half of the galaxies' z and log M* residuals are ~1.5 times their posterior sd,
        the redder half's ~1.1 times). Each refitted variable's temperature
        is then scaled so that its PIT over these galaxies is nearest uniform, and its shift
        centred (on DR9, 500 galaxies, a mock-trained model, ``benchmarks/table1.py``: 68% / 95%
        coverage of log M* 0.676 / 0.945 with the slopes and the outlier share, 0.673 / 0.938
        with the outlier share alone, 0.676 / 0.919 with one temperature; z 0.674 / 0.939,
        0.670 / 0.949 and 0.681 / 0.931; the largest |coverage - nominal| at 68% over the four
        quartiles of u - r: log M* 0.064 with the slopes, 0.117 without, z 0.069 and 0.107). Variables left as they
        were are named in a warning (a ValueError when no variable has enough galaxies). Give
        galaxies the model was not trained on (a real validation set), never the ones you test
        on. Returns block name -> ``{"shift": [...] (standardised units), "temperature": [...],
        "outlier_fraction": [...], "outlier_widening": [...], "log_temperature_slope": [[...]],
        "centring": [...], "method": ..., "variables": [...]}``, and appends it, with the number
        of galaxies used, the number left out as out-of-distribution and the catalog's ``source``, to
        ``history["recalibrations"]`` (``history["calibration"]`` keeps the fit's).
        """
        validate(data)
        features = self.features(data)
        tensors, left_out = self.featurizer.in_distribution(catalog_tensors(features, data, self.chain.blocks),
                                                           features)
        plan = calibration_plan(self.chain, tensors.targets)
        kept = {name: [v for v in step["labelled"] if v not in step["variables"]] for name, step in plan.items()}
        why = "; ".join(f"block {name!r}: " + ", ".join(f"{v} labelled on {plan[name]['labelled'][v]}" for v in variables)
                        for name, variables in kept.items() if variables)
        if all(step["method"] == "unchanged" for step in plan.values()):
            raise ValueError(f"no variable can be recalibrated on this catalog (each needs at least {MIN_GALAXIES} "
                             f"of its {len(tensors.galaxy)} usable, in-distribution galaxies labelled): {why}")
        if why:
            warnings.warn(f"recalibrate leaves the calibration of some variables as it was (fewer than "
                          f"{MIN_GALAXIES} labelled galaxies): {why}", stacklevel=2)
        calibration = self.chain.calibrate(tensors.features, tensors.targets, outliers=outliers,
                                           conditional=conditional)
        record = {"calibration": calibration, "n_galaxies": len(tensors.galaxy),
                  "n_out_of_distribution_left_out": left_out, "source": str(data.attrs.get("source", ""))}
        self.history.setdefault("recalibrations", []).append(record)
        return calibration

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> Path:
        """Write a directory: ``config.json`` (everything but weights, with the galppl and torch
        versions that wrote it and the sha256 of every weight tensor and file), ``chain.pt`` (the
        chain's state dict: tensors only, read back with ``torch.load(weights_only=True)``, so
        loading never runs pickled code), ``featurizer.json`` and, for image inputs, ``vae/``.

        The folder is written under a temporary name beside ``path`` and renamed into place when
        complete (:func:`~galppl.data.files.atomic_path`), replacing an earlier saved model there;
        a folder that holds anything but a saved model is refused rather than replaced."""
        path = Path(path)
        if path.is_dir() and any(path.iterdir()) and not (path / CONFIG_FILE).is_file():
            raise ValueError(f"{str(path)!r} is a folder holding other files, not a saved model: save to a new or "
                             "empty folder (saving replaces the folder)")
        state = {name: t.detach().cpu() for name, t in self.chain.state_dict().items()}
        with atomic_path(path) as folder:
            folder.mkdir()
            torch.save(state, folder / WEIGHTS_FILE)
            self.featurizer.save(folder)
            files = {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*"))
                     if p.is_file() and p.name != WEIGHTS_FILE}
            config = {
                "kind": "posterior",
                "galppl_version": galppl.__version__,
                "torch_version": torch.__version__,
                "model": self.model,
                "blocks": [b.to_dict() for b in self.chain.blocks],
                "config": self.config.to_dict(),
                "history": self.history,
                "split": {k: [_jsonable(i) for i in v] for k, v in self.split.items()},
                "checksums": {"tensors": tensor_checksums(state), "files": files},
            }
            (folder / CONFIG_FILE).write_text(json.dumps(config, indent=1))
        return path

    def __reduce__(self):
        """Pickled (by Dask, to ship the model to its workers) as the files :meth:`save` writes,
        rebuilt by :meth:`load`: tensors and JSON only, never pickled code."""
        with tempfile.TemporaryDirectory() as folder:
            self.save(folder)
            files = {str(p.relative_to(folder)): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}
        return _from_files, (files,)

    @classmethod
    def load(cls, path) -> GalaxyPosterior:
        """Read what :meth:`save` wrote. A model saved by a galppl older than
        :data:`OLDEST_READABLE` (or newer than this one) is refused, naming both versions; so
        is a weights file that is anything but a state dict of tensors, without running it.
        Every file and weight tensor is checked against the sha256 recorded at saving: a file
        that is missing, empty, truncated or changed is a
        :class:`~galppl.data.files.CorruptFileError` naming it (and the tensor)."""
        path = Path(path)
        saved = read_json(path / CONFIG_FILE, "saved posterior's config.json", required=("kind",))
        if saved["kind"] != "posterior":
            raise ValueError(f"{str(path)!r} holds a {saved['kind']!r}, not a posterior model")
        version = str(saved.get("galppl_version", "unknown"))
        saved_by = (version, str(saved.get("torch_version", "unknown")))
        if not _readable(version):
            raise ValueError(_refusal(path, saved_by, f"this galppl reads models saved by {OLDEST_READABLE} "
                                                      f"to {galppl.__version__}"))
        saved = read_json(path / CONFIG_FILE, "saved posterior's config.json", required=SAVED_KEYS)
        checksums = saved.get("checksums", {})
        for name, digest in checksums.get("files", {}).items():
            _check_file(path / name, digest)
        try:
            if _version_key(version) < _version_key(CALIBRATION_SPLIT_SINCE):
                saved["config"]["data"] = {**saved["config"].get("data", {}), "calibration_fraction": 0.0}
            config = FitConfig.from_dict(saved["config"])
            blocks = [Block.from_dict(b) for b in saved["blocks"]]
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise CorruptFileError(f"{str(path / CONFIG_FILE)!r} does not describe a model this galppl can build: "
                                   f"{type(error).__name__}: {error}") from error
        featurizer = Featurizer.load(path)
        chain = ChainModel(blocks, featurizer.feature_dim, **config.chain.model_options())
        state = _state_dict(path / WEIGHTS_FILE)
        changed = [name for name, digest in tensor_checksums(state).items()
                   if checksums.get("tensors", {}).get(name, digest) != digest]
        if changed:
            raise CorruptFileError(f"{str(path / WEIGHTS_FILE)!r} is corrupt: the tensor(s) {', '.join(changed[:5])} "
                                   "differ from the checksums recorded when the model was saved")
        for since, buffers in ((OUTLIER_SHARE_SINCE, OUTLIER_BUFFERS), (TEMPERATURE_SLOPE_SINCE, SLOPE_BUFFERS)):
            if _version_key(version) < _version_key(since):  # saved before these existed: none
                state = {**{k: v for k, v in chain.state_dict().items() if k.startswith(buffers)}, **state}
        try:
            chain.load_state_dict(state)
        except RuntimeError as error:
            first = str(error).strip().splitlines()
            why = f"its weights do not fit the chain its config.json describes ({' '.join(first[:2])})"
            raise ValueError(_refusal(path, saved_by, why)) from error
        return cls(chain, featurizer, model=saved["model"], config=config, history=saved["history"],
                   split=saved["split"])


def _check_counts(**counts) -> None:
    """A ValueError naming the first argument that is not a whole number of at least 1 (0 for ``seed``)."""
    for name, value in counts.items():
        low = 0 if name == "seed" else 1
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}"
                             + (f" ({type(value).__name__})" if not isinstance(value, (int, np.integer)) else ""))


def _check_catalog(data) -> None:
    """The catalog is valid and holds at least one galaxy (else a CatalogError saying so)."""
    validate(data)
    if data.sizes["galaxy"] == 0:
        raise CatalogError("the catalog has 0 galaxies: nothing to predict")


def _from_files(files: dict[str, bytes]) -> GalaxyPosterior:
    """A posterior from the files :meth:`GalaxyPosterior.save` writes (name -> contents)."""
    with tempfile.TemporaryDirectory() as folder:
        for name, data in files.items():
            (Path(folder) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(folder) / name).write_bytes(data)
        return GalaxyPosterior.load(folder)


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict of tensors from ``path``, read by torch's weights-only unpickler, which
    refuses (without calling) every function and class but tensors and plain containers."""
    if not path.is_file():
        raise CorruptFileError(f"{str(path)!r} is missing: the saved model has no weights")
    if path.stat().st_size == 0:
        raise CorruptFileError(f"{str(path)!r} is empty (0 bytes): the weights were not written completely")
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "central directory" in first or "zip archive" in first or isinstance(error, EOFError):
            raise CorruptFileError(f"{str(path)!r} is truncated or corrupt ({path.stat().st_size} bytes, not a "
                                   f"complete torch archive: {first.split('. ')[0]})") from None
        raise ValueError(f"{str(path)!r} is not a state dict of tensors; refused without running it: {first}") from None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ValueError(f"{str(path)!r} holds a {type(weights).__name__}, not a state dict of tensors")
    return weights


def _check_file(path: Path, digest: str) -> None:
    """A :class:`~galppl.data.files.CorruptFileError` when a saved model's file is gone or its
    sha256 is not the one recorded at saving."""
    if not path.is_file():
        raise CorruptFileError(f"{str(path)!r} is missing from the saved model")
    if file_sha256(path) != digest:
        raise CorruptFileError(f"{str(path)!r} is corrupt: its sha256 differs from the one recorded when the model "
                               f"was saved ({path.stat().st_size} bytes; truncated, or changed since)")


def _version_key(version: str) -> tuple[int, int]:
    """(major, minor) of a version string; saved layouts change at most with the minor version."""
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def _readable(version: str) -> bool:
    try:
        return _version_key(OLDEST_READABLE) <= _version_key(version) <= _version_key(galppl.__version__)
    except ValueError:  # not a version number
        return False


def _refusal(path: Path, saved_by: tuple[str, str], why: str) -> str:
    """The message refusing a saved model: the galppl (and torch) versions that saved it and these."""
    return (f"{str(path / WEIGHTS_FILE)!r} does not fit this galppl (saved by galppl {saved_by[0]}, this is galppl "
            f"{galppl.__version__}; saved with torch {saved_by[1]}, this is torch {torch.__version__}; {why}): "
            "load it with the version that saved it, or refit")


def _attrs(name: str, data: xr.Dataset) -> dict:
    """Units and description of a modelled variable: the data model's, else the catalog's."""
    if name.startswith("p_") and name not in KNOWN:
        return {"units": "", "description": f"probability that {name[2:]} is 1"}
    if name in KNOWN:
        return {"units": KNOWN[name].units, "description": KNOWN[name].description}
    attrs = data[name].attrs if name in data else {}
    return {"units": attrs.get("units", ""), "description": attrs.get("description", name)}


def _jsonable(value):
    return value.item() if isinstance(value, np.generic) else value
