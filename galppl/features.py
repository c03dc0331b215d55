"""What the chain reads: a catalog turned into input features and per-block targets.

The paper's representation MLP reads [latent means, latent stds (here their logarithms),
colours u-g, g-r, r-i, i-z, magnitudes]; the ``inputs`` variant chooses which parts are used
(:data:`INPUT_PARTS`, the one place that says what a variant reads).

- :class:`Featurizer`: the input variant, the frozen VAE (if the variant reads images), the
  feature names, the ranges of the inputs the model was trained on and their density
  (:class:`~galppl.ood.InputDensity`, which scores and flags out-of-distribution galaxies).
  ``galppl.fit`` builds it once; the fitted :class:`~galppl.posterior.GalaxyPosterior` keeps it. (Feature
  standardisation lives inside the chain, as buffers of the ``ChainModel``.)
- :func:`catalog_tensors`: features and per-block targets of a catalog as torch tensors,
  with the ``usable`` mask, for training, prediction and scoring alike.
"""

from __future__ import annotations

import json
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from galppl.data.files import CorruptFileError, read_json, write_text_atomic
from galppl.data.prepare import image_stack, photometry_features
from galppl.ood import OOD_QUANTILE, InputDensity, OutOfDistributionWarning, flagged_ids

# What each input variant reads: "image" = the VAE encoding of the gri stamp,
# "photometry" = colours and magnitudes.
INPUT_PARTS = {"image+photometry": ("image", "photometry"), "photometry": ("photometry",), "image": ("image",)}
INPUTS = tuple(INPUT_PARTS)
# Quantiles of each feature over the training galaxies that a Featurizer records (0 and 1:
# the minimum and maximum), from which out-of-range inputs can be told.
RANGE_QUANTILES = (0.0, 0.001, 0.01, 0.5, 0.99, 0.999, 1.0)
# A feature is outside the training range when it lies beyond the training minimum or maximum
# by more than this share of the spread of the central 99.8% (quantiles 0.001 to 0.999): far
# enough that new in-distribution galaxies almost never cross it, near enough that magnitudes
# 5 mag too faint, or fluxes passed as magnitudes, always do.
RANGE_MARGIN = 0.1
FEATURIZER_FILE = "featurizer.json"


def uses_images(inputs: str) -> bool:
    """Whether an input variant reads the VAE encoding of the images."""
    if inputs not in INPUT_PARTS:
        raise ValueError(f"inputs must be one of {INPUTS}, got {inputs!r}")
    return "image" in INPUT_PARTS[inputs]


def build_features(data: xr.Dataset, inputs: str, vae=None) -> xr.DataArray:
    """Features (galaxy, feature) of a catalog for an input variant.

    ``vae``: the fitted VAE (:class:`~galppl.models.vae.FittedVAE`) whose encoding (latent
    means and log standard deviations) the image variants read. Features are NaN where an
    input is missing; such galaxies are not :func:`usable`.
    """
    parts = []
    if uses_images(inputs):
        if vae is None:
            raise ValueError(f"inputs {inputs!r} need the VAE encoding of the images: give a fitted VAE")
        encoding = vae.encode(data)
        # Standard deviations enter as logarithms: they are scales, spread over decades, and
        # their logs are close to Gaussian, with no far tails for the MLP to extrapolate into.
        for name, values in (("latent_mean", encoding["latent_mean"]), ("latent_log_std", np.log(encoding["latent_std"]))):
            part = values.transpose("galaxy", "latent")
            parts.append(
                xr.DataArray(
                    part.values.astype(np.float64),
                    dims=("galaxy", "feature"),
                    coords={"galaxy": data["galaxy"].values, "feature": [f"{name}_{i}" for i in range(part.sizes["latent"])]},
                )
            )
    if "photometry" in INPUT_PARTS[inputs]:
        phot = photometry_features(data)
        parts.append(xr.DataArray(phot.values, dims=("galaxy", "feature"), coords={"galaxy": data["galaxy"].values, "feature": phot["feature"].values}))
    features = xr.concat(parts, dim="feature")
    features.attrs = {"inputs": inputs, "description": "model inputs per galaxy"}
    if "photometry" in INPUT_PARTS[inputs]:
        features.attrs["extinction_corrected"] = int("extinction" in data)
    return features


def usable(features: xr.DataArray) -> np.ndarray:
    """Boolean per galaxy: every feature finite (others are carried with NaN posteriors)."""
    return np.isfinite(features.values).all(axis=1)


class Featurizer:
    """Catalog -> the model's input features, as they were when the model was fitted.

    inputs: the input variant (a key of :data:`INPUT_PARTS`). vae: the frozen
    :class:`~galppl.models.vae.FittedVAE` the image variants read (``None`` for photometry).
    feature_names: the features, in the chain's order. input_ranges: (feature, quantile)
    quantiles :data:`RANGE_QUANTILES` of each feature over the training galaxies with
    complete inputs, in the features' own units (magnitudes, colours, latents). ood: the
    :class:`~galppl.ood.InputDensity` of the training galaxies' features, with its flag threshold.
    extinction_corrected: whether the training magnitudes were corrected for Milky Way
    extinction (the catalog had ``extinction``); a catalog that differs is refused, since its
    magnitudes would be off by A_band (``None``: not recorded, by a galppl before the check).
    """

    def __init__(self, inputs: str, vae, feature_names, input_ranges: xr.DataArray, ood: InputDensity,
                 extinction_corrected: bool | None = None):
        if uses_images(inputs) and vae is None:
            raise ValueError(f"inputs {inputs!r} need a fitted VAE")
        if not uses_images(inputs) and vae is not None:
            raise ValueError(f"inputs {inputs!r} read no images: give vae=None")
        self.inputs = inputs
        self.vae = vae
        self.feature_names = [str(name) for name in feature_names]
        if input_ranges.dims != ("feature", "quantile") or list(input_ranges["feature"].values) != self.feature_names:
            raise ValueError(f"input_ranges must be (feature, quantile) over the features {self.feature_names}, "
                             f"got dims {input_ranges.dims}")
        if ood.means.shape[1] != len(self.feature_names):
            raise ValueError(f"the input density models {ood.means.shape[1]} features, the featurizer gives "
                             f"{len(self.feature_names)}")
        self.input_ranges = input_ranges
        self.ood = ood
        self.extinction_corrected = None if extinction_corrected is None else bool(extinction_corrected)

    @classmethod
    def from_training(cls, inputs: str, vae, features: xr.DataArray, validation: xr.DataArray, *,
                      ood_quantile: float = OOD_QUANTILE, seed: int = 0) -> Featurizer:
        """The featurizer of a model trained on ``features`` (galaxy, feature) (from
        :func:`build_features`): their names, their ranges over the usable galaxies, and
        their density, whose out-of-distribution threshold leaves the share ``ood_quantile``
        of the ``validation`` galaxies' features unflagged (``seed``: the mixture's fit)."""
        if list(validation["feature"].values) != list(features["feature"].values):
            raise ValueError(f"validation features {list(validation['feature'].values)} differ from the "
                             f"training features {list(features['feature'].values)}")
        complete = features.values[usable(features)]
        if len(complete) < 2:
            raise ValueError(f"{len(complete)} training galaxies have complete inputs ({inputs!r}); need at least 2")
        ranges = xr.DataArray(
            np.quantile(complete, RANGE_QUANTILES, axis=0).T,
            dims=("feature", "quantile"),
            coords={"feature": features["feature"].values, "quantile": list(RANGE_QUANTILES)},
            attrs={"description": "quantiles of each input feature over the training galaxies"},
        )
        ood = InputDensity.fit(complete, validation.values, ood_quantile, seed=seed)
        return cls(inputs, vae, features["feature"].values, ranges, ood,
                   extinction_corrected=features.attrs.get("extinction_corrected"))

    @property
    def reads_images(self) -> bool:
        return uses_images(self.inputs)

    @property
    def feature_dim(self) -> int:
        return len(self.feature_names)

    def __repr__(self) -> str:
        return f"Featurizer(inputs={self.inputs!r}, features={self.feature_dim}, vae={self.vae!r})"

    def features(self, data: xr.Dataset) -> xr.DataArray:
        """Features (galaxy, feature) of a catalog; NaN rows for galaxies with incomplete inputs.

        Warns (:class:`~galppl.ood.OutOfDistributionWarning`) when the catalog has
        ``extinction`` and the training catalog had not, or the other way round: its magnitudes
        then differ from the training ones by A_band (a real catalog without extinction read
        by a mock-trained model, say), so every posterior shifts a little."""
        has_extinction = "extinction" in data
        if "photometry" in INPUT_PARTS[self.inputs] and self.extinction_corrected not in (None, has_extinction):
            why = ("the model was trained on magnitudes corrected for Milky Way extinction and this catalog has "
                   "no 'extinction' variable: its magnitudes are used uncorrected, too faint by A_band (~0.1-0.5 "
                   "mag in u); add 'extinction' (SDSS columns extinction_u..extinction_z) to correct them"
                   if self.extinction_corrected else
                   "the model was trained on magnitudes NOT corrected for Milky Way extinction (its catalog had "
                   "no 'extinction') and this catalog has 'extinction': its magnitudes are corrected, brighter "
                   "than the training ones by A_band; drop it (catalog.drop_vars('extinction')) to match")
            warnings.warn(why, OutOfDistributionWarning, stacklevel=3)
        features = build_features(data, self.inputs, self.vae)
        names = [str(name) for name in features["feature"].values]
        if names != self.feature_names:
            raise ValueError(f"catalog gives features {names}, the model was fitted on {self.feature_names}")
        if self.reads_images:
            features = self._drop_unlike_images(data, features)
        return features

    def _drop_unlike_images(self, data, features: xr.DataArray) -> xr.DataArray:
        """NaN features (no draws: not usable) for galaxies whose stamps are unlike the VAE's
        training stamps, marked by the (galaxy,) coordinate ``image_unlike_training``, with a warning."""
        images, finite, _, _ = image_stack(data)
        unlike = np.zeros(len(finite), dtype=bool)
        if finite.any():
            unlike[finite] = self.vae.scaler.unlike_training(images[finite])
        if unlike.any():
            galaxy = features["galaxy"].values
            shown = flagged_ids(galaxy, unlike)
            warnings.warn(
                f"{int(unlike.sum())} of {len(unlike)} galaxies have images unlike the training stamps (galaxy ids "
                f"{shown}): sky noise, sky level, central signal, peak or concentration out of the training range "
                "(all zeros, negated, pure noise, a 0..1 display stretch or a wrong unit?). They get no posterior "
                "(usable False) and the quality bit 'bad_image'.", OutOfDistributionWarning, stacklevel=4)
            features = features.copy()
            features.values[unlike] = np.nan
        return features.assign_coords(image_unlike_training=("galaxy", unlike, {
            "units": "", "description": "the galaxy's image statistics lie outside the training stamps' range"}))

    def training_range(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) per feature: the training minimum and maximum widened by
        :data:`RANGE_MARGIN` of the central 99.8% spread, in the features' units."""
        quantiles = self.input_ranges
        spread = (quantiles.sel(quantile=0.999) - quantiles.sel(quantile=0.001)).values
        return (quantiles.sel(quantile=0.0).values - RANGE_MARGIN * spread,
                quantiles.sel(quantile=1.0).values + RANGE_MARGIN * spread)

    def outside_training_range(self, features: xr.DataArray) -> xr.DataArray:
        """Boolean (galaxy, feature): the feature lies outside :meth:`training_range` (False
        where it is NaN: incomplete inputs have their own quality bits)."""
        low, high = self.training_range()
        with np.errstate(invalid="ignore"):
            outside = (features.values < low) | (features.values > high)
        return xr.DataArray(outside, dims=("galaxy", "feature"), coords=features.coords)

    def in_distribution(self, tensors: CatalogTensors, features: xr.DataArray) -> tuple[CatalogTensors, int]:
        """The usable rows of ``tensors`` that :meth:`ood_scores` does not flag
        out-of-distribution, and how many usable rows it flags (``features``: this featurizer's
        features of a catalog holding every galaxy of ``tensors``). What a calibration reads
        (the fit's, a fine-tune's, ``GalaxyPosterior.recalibrate``'s): a flagged galaxy's
        posterior is an extrapolation, and its residual, however few such galaxies there are,
        moves the calibration of every other one (they still train and stop early). Calibrated
        with them (an experiment on a galppl 0.10.0 main job's model: 47 flagged of 5,700),
        log M_BH's temperature slope was -0.011 instead of +0.036, and the 68% coverage of its
        mass quartiles on 30,000 fresh galaxies 0.662-0.704 instead of 0.682-0.692; on DR9, 500
        real galaxies with the flagged ones widened z's 68% interval to 0.79 coverage, without
        them 0.71."""
        usable = tensors.usable_rows()
        flagged = self.ood_scores(features.sel(galaxy=usable.galaxy))["out_of_distribution"].values
        return usable.select(usable.galaxy[~flagged]), int(flagged.sum())

    def ood_scores(self, features: xr.DataArray) -> xr.Dataset:
        """``ood_score`` (nats; NaN for incomplete inputs), ``outside_training_range`` (bool:
        some feature lies outside :meth:`training_range`) and ``out_of_distribution`` (bool: the
        score exceeds the threshold of :class:`~galppl.ood.InputDensity`, or some feature is out
        of range) per galaxy of ``features`` (from :meth:`features`)."""
        scores = self.ood.score(features.values)
        outside = self.outside_training_range(features).values.any(axis=1)
        return xr.Dataset(
            {
                "ood_score": ("galaxy", scores, {
                    "units": "nats",
                    "description": "negative log density of the inputs under the training galaxies' input density",
                    "threshold": self.ood.threshold}),
                "outside_training_range": ("galaxy", outside, {
                    "units": "",
                    "description": "some input feature lies beyond the training minimum or maximum (by more "
                                   f"than {RANGE_MARGIN:g} of the training 0.001-0.999 quantile spread)"}),
                "out_of_distribution": ("galaxy", self.ood.flagged(scores) | outside, {
                    "units": "",
                    "description": f"ood_score above its threshold, the {self.ood.quantile:g} quantile of the "
                                   "validation galaxies' scores, or outside_training_range: inputs unlike the "
                                   "training galaxies'"}),
            },
            coords={"galaxy": features["galaxy"].values},
        )

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """JSON-able settings (the VAE is saved beside them, see :meth:`save`)."""
        return {
            "inputs": self.inputs,
            "feature_names": self.feature_names,
            "input_ranges": {"quantile": list(RANGE_QUANTILES), "values": self.input_ranges.values.tolist()},
            "ood": self.ood.to_dict(),
            "extinction_corrected": self.extinction_corrected,
        }

    @classmethod
    def from_dict(cls, data: dict, vae=None) -> Featurizer:
        """Inverse of :meth:`to_dict`, with the VAE it was saved with."""
        if "ood" not in data:
            raise ValueError("this featurizer was saved without an input density (by a galppl before the "
                             "out-of-distribution score): refit the model")
        ranges = xr.DataArray(
            np.asarray(data["input_ranges"]["values"], dtype=np.float64).reshape(len(data["feature_names"]), -1),
            dims=("feature", "quantile"),
            coords={"feature": data["feature_names"], "quantile": data["input_ranges"]["quantile"]},
            attrs={"description": "quantiles of each input feature over the training galaxies"},
        )
        return cls(data["inputs"], vae, data["feature_names"], ranges, InputDensity.from_dict(data["ood"]),
                   extinction_corrected=data.get("extinction_corrected"))

    def save(self, path) -> Path:
        """Write ``featurizer.json`` (and the VAE into ``vae/``) inside the folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path / FEATURIZER_FILE, json.dumps(self.to_dict(), indent=1))
        if self.vae is not None:
            self.vae.save(path / "vae")
        return path

    @classmethod
    def load(cls, path) -> Featurizer:
        """Read what :meth:`save` wrote; a :class:`~galppl.data.files.CorruptFileError` naming
        the file when ``featurizer.json`` or the VAE's files are truncated or incomplete."""
        path = Path(path)
        if not (path / FEATURIZER_FILE).exists():
            raise FileNotFoundError(f"{str(path)!r} holds no saved featurizer ({FEATURIZER_FILE})")
        vae = None
        if (path / "vae").exists():
            from galppl.models.vae import FittedVAE

            try:
                vae = FittedVAE.load(path / "vae")
            except (RuntimeError, EOFError, KeyError, pickle.UnpicklingError, json.JSONDecodeError) as error:
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise CorruptFileError(f"{str(path / 'vae')!r}: the saved VAE is truncated or corrupt "
                                       f"({type(error).__name__}: {first})") from error
        data = read_json(path / FEATURIZER_FILE, "saved featurizer", required=("inputs", "feature_names",
                                                                                 "input_ranges"))
        try:
            return cls.from_dict(data, vae)
        except (KeyError, TypeError, ValueError) as error:
            raise CorruptFileError(f"{str(path / FEATURIZER_FILE)!r} does not describe a featurizer: "
                                   f"{type(error).__name__}: {error}") from error


def block_targets(data: xr.Dataset, blocks) -> dict[str, np.ndarray]:
    """Block name -> (galaxy, block dim) float64 values from the catalog, NaN where missing
    (a variable absent from the catalog is missing for every galaxy)."""
    nan = np.full(data.sizes["galaxy"], np.nan)
    return {
        block.name: np.stack([data[v].values.astype(np.float64) if v in data else nan for v in block.variables], axis=-1)
        for block in blocks
    }


@dataclass(frozen=True)
class CatalogTensors:
    """A catalog as the chain reads it, one row per galaxy.

    galaxy: (galaxy,) ids. usable: (galaxy,) True where every input feature is finite.
    features: (galaxy, feature) float32, NaN rows where not usable. targets: block name ->
    (galaxy, block dim) float32 in catalog units, NaN where missing (empty without blocks).
    """

    galaxy: np.ndarray
    usable: np.ndarray
    features: torch.Tensor
    targets: dict[str, torch.Tensor]

    def select(self, galaxies) -> CatalogTensors:
        """The rows of these galaxy ids, in the order given."""
        position = {gid: i for i, gid in enumerate(self.galaxy.tolist())}
        missing = [gid for gid in np.asarray(galaxies).tolist() if gid not in position]
        if missing:
            raise KeyError(f"galaxies {missing[:5]} are not in the catalog")
        return self._rows(np.array([position[gid] for gid in np.asarray(galaxies).tolist()], dtype=int))

    def usable_rows(self) -> CatalogTensors:
        """Only the galaxies whose inputs are complete (what the chain can read)."""
        return self._rows(np.flatnonzero(self.usable))

    def batch(self) -> dict[str, torch.Tensor]:
        """``{"features": ..., <block>: ...}``: the keyword arguments of ``ChainModel.model``."""
        return {"features": self.features, **self.targets}

    def _rows(self, rows: np.ndarray) -> CatalogTensors:
        index = torch.as_tensor(rows, dtype=torch.long)
        return CatalogTensors(self.galaxy[rows], self.usable[rows], self.features[index],
                              {name: values[index] for name, values in self.targets.items()})


def catalog_tensors(features: xr.DataArray, data: xr.Dataset, blocks=()) -> CatalogTensors:
    """Features (from :meth:`Featurizer.features`) and the catalog's targets of ``blocks`` as tensors."""
    if not np.array_equal(features["galaxy"].values, data["galaxy"].values):
        raise ValueError("features and catalog must list the same galaxies in the same order")
    return CatalogTensors(
        galaxy=data["galaxy"].values,
        usable=usable(features),
        features=torch.as_tensor(features.values, dtype=torch.float32),
        targets={name: torch.as_tensor(v, dtype=torch.float32) for name, v in block_targets(data, blocks).items()},
    )
