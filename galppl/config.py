"""The settings of ``galppl.fit``: nested frozen dataclasses, checked on construction.

::

    FitConfig(data=DataConfig(...), chain=ChainConfig(...), train=TrainConfig(...), vae=VAEConfig(...), seed=0)

- ``data``: the embedded mock sky's size and the seeded split (:class:`DataConfig`);
- ``chain``: the input variant and the chain's architecture (:class:`ChainConfig`);
- ``train``: the chain's maximum-likelihood training, a :class:`galppl.train.TrainConfig`
  (fit's defaults: :data:`CHAIN_TRAINING`);
- ``vae``: the image VAE, a :class:`galppl.models.vae.VAEConfig` (fit's defaults:
  :data:`VAE_TRAINING`; its ``image_size`` is taken from the data);
- ``seed``: the one seed of a fit. It seeds the split and the mock sky (unless
  ``data.split_seed`` is given), the VAE, the chain's initial weights and its training; the
  nested ``train.seed`` and ``vae.seed`` are kept at 0, meaning "follow ``seed``"
  (:meth:`FitConfig.chain_training` and :meth:`FitConfig.vae_training` apply it).

A config round-trips through :meth:`FitConfig.to_dict` / :meth:`FitConfig.from_dict` (what a
saved posterior stores) and :meth:`FitConfig.to_toml` / :meth:`FitConfig.from_toml` (what
``galppl run --config`` reads). ``galppl.fit``'s keyword shortcuts
(:meth:`FitConfig.with_options`) name a field of ``data``, ``chain`` or ``train`` by its own
name, a field of ``vae`` with the prefix ``vae_`` (``vae_lr``, ``vae_max_epochs``), or ``seed``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import sys
from dataclasses import dataclass, field

from galppl.features import INPUTS
from galppl.models.props import OH_FLOWS
from galppl.models.vae import VAEConfig
from galppl.ood import OOD_QUANTILE
from galppl.train import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["CHAIN_TRAINING", "FINE_TUNING", "VAE_TRAINING", "ChainConfig", "DataConfig", "FitConfig", "TrainConfig",
           "VAEConfig"]

# The chain trains with a larger learning rate and batch, and longer, than TrainConfig's generic
# defaults. Its minibatch follows the catalog (galppl.train.minibatch_size): 1024 from 8,192
# training galaxies up (~2x more galaxies/s than 256 on a CPU: bigger matmuls; the learning rate
# follows the square root of the batch, 1e-3 at 256: same seed-0 split and VAE, main-job chain,
# best validation NLL -2.763 at both sizes, R^2 equal within 0.002), smaller below, so that a
# small real catalog still gets 8 optimiser steps per epoch.
CHAIN_TRAINING = TrainConfig(lr=2e-3, batch_size=None, max_epochs=300, patience=20)
# Fine-tuning a fitted chain on a small labelled catalog (galppl.fit(..., init=posterior)): a
# tenth of the chain's learning rate and a shorter patience, so that a few hundred real galaxies
# adjust the initial weights rather than overwrite them (early stopping watches their validation split).
FINE_TUNING = TrainConfig(lr=1e-4, batch_size=128, max_epochs=200, patience=10)
# The VAE inside a fit: the paper's learning rate, a shorter run than VAEConfig's standalone
# defaults, stopped on a relative plateau: 4 epochs without a 0.1% drop of the validation loss
# (its absolute value, ~3.4e5 nats per 64 px stamp, makes absolute steps meaningless).
VAE_TRAINING = VAEConfig(lr=1e-4, max_epochs=40, patience=4, min_rel_delta=1e-3)


def _integer(owner: str, name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        what = "a non-negative integer" if low == 0 else f"an integer >= {low}"
        raise ValueError(f"{owner}.{name} must be {what}, got {value!r}")
    return int(value)


def _share(owner: str, name: str, value, *, zero_allowed: bool) -> float:
    """A finite number in [0, 1) (or (0, 1) without ``zero_allowed``) as a float."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (0 <= value < 1) or (value == 0 and not zero_allowed):
        interval = "[0, 1)" if zero_allowed else "(0, 1)"
        raise ValueError(f"{owner}.{name} must be a number in {interval}, got {value!r}")
    return float(value)


def _choice(owner: str, name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{owner}.{name} must be one of {tuple(choices)}, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """The data of a fit and its split, checked on construction.

    n_galaxies, image_size: the embedded mock sky used when ``galppl.fit`` gets no data
    (image_size: stamp side in pixels, a multiple of 8; ignored for photometry-only inputs).
    fractions: the (train, val, test) shares of the galaxies, positive, summing to 1.
    vae_fraction: the share of the train galaxies kept apart to fit only the VAE (as in the
    paper, the image encoder and the flows see disjoint galaxies). calibration_fraction: the
    share of the val galaxies kept apart to calibrate the chain (the ``calibration`` split, with
    the VAE's galaxies), in [0, 1): the rest choose the epoch (early stopping) and set the
    out-of-distribution threshold; 0 calibrates on those same galaxies (galppl < 0.9); None (the
    default) keeps half apart where that leaves enough galaxies to calibrate on, none on a small
    catalog (:func:`galppl.fit.split_galaxies`).
    split_seed: seeds the split and the mock sky instead of ``FitConfig.seed``, so fits with
    different seeds (an ensemble) share one data set, one split and one VAE.
    """

    n_galaxies: int = 20000
    image_size: int = 64
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)
    vae_fraction: float = 0.3
    # Half, not none (galppl < 0.9): galaxies that chose the epoch are easier for the chosen
    # weights than new ones, and a calibration fitted on them is too narrow. The 0.8.0 main
    # job's model (mock sky 0.6), its temperatures refitted on 3,000 galaxies each (log M*,
    # log SFR, z): its own val galaxies 1.012 / 1.005 / 1.016; its test galaxies 1.052 / 1.049 /
    # 1.050; its VAE galaxies 1.055 / 1.020 / 1.062; four fresh skies' 1.015-1.054 / 1.011-1.042
    # / 1.049-1.054. Scored on 30,000 fresh galaxies, the val calibration's 68% coverage was
    # 0.661-0.671 and its worst quartile bin 0.038 / 0.022 / 0.039 off; the test galaxies',
    # 0.676-0.691 and 0.021 / 0.020 / 0.019 (an experiment; README, Calibration at scale). On a
    # small catalog the split costs more than it buys (galppl.fit.HELD_OUT_CALIBRATION_MIN).
    calibration_fraction: float | None = None
    split_seed: int | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "n_galaxies", _integer("DataConfig", "n_galaxies", self.n_galaxies, 1))
        set_(self, "image_size", _integer("DataConfig", "image_size", self.image_size, 8))
        if self.image_size % 8:
            raise ValueError(f"DataConfig.image_size must be a multiple of 8 (e.g. 64, 160), got {self.image_size}")
        fractions = tuple(self.fractions)
        ok = len(fractions) == 3 and all(isinstance(f, numbers.Real) and not isinstance(f, bool)
                                         and math.isfinite(f) and f > 0 for f in fractions)
        if not ok or abs(sum(fractions) - 1) > 1e-6:
            raise ValueError(f"DataConfig.fractions must be 3 positive shares (train, val, test) summing to 1, "
                             f"got {self.fractions!r}")
        set_(self, "fractions", tuple(float(f) for f in fractions))
        set_(self, "vae_fraction", _share("DataConfig", "vae_fraction", self.vae_fraction, zero_allowed=True))
        if self.calibration_fraction is not None:
            set_(self, "calibration_fraction",
                 _share("DataConfig", "calibration_fraction", self.calibration_fraction, zero_allowed=True))
        if self.split_seed is not None:
            set_(self, "split_seed", _integer("DataConfig", "split_seed", self.split_seed, 0))


@dataclass(frozen=True)
class ChainConfig:
    """The inputs and architecture of the chain, checked on construction.

    inputs: ``"image+photometry"`` (VAE latents, colours, magnitudes), ``"photometry"`` or
    ``"image"``. hidden_dim: width of the representation h. dropout: in the representation
    MLP, during training only. num_couplings: affine couplings of every RealNVP block that
    does not set ``flow_options["num_couplings"]`` itself. oh_flow: the flow of the props
    chain's 1-d M_BH and O/H blocks, ``"affine"`` (the paper's) or ``"spline"``; ``None`` is
    ``"affine"``. A custom chain sets each block's kind itself, so it takes no ``oh_flow``.
    calibrate: temperature-scale each block's residual after training, on the galaxies no step
    of the training saw (:attr:`DataConfig.calibration_fraction`;
    :meth:`galppl.models.chain.ChainModel.calibrate`). ood_quantile: the share of
    validation galaxies the out-of-distribution flag leaves unflagged, in (0, 1)
    (:class:`galppl.ood.InputDensity`). mag_noise: noise augmentation (:mod:`galppl.augment`):
    each training minibatch moves every galaxy's magnitudes by ``mag_noise x N(0, mag_err^2)``
    per band (needs the catalog's ``mag_err``); 0 (the default) turns it off.
    """

    inputs: str = "image+photometry"
    hidden_dim: int = 256
    # 0.35, not 0.2 (galppl <= 0.7): the residual refit (galppl.fit) takes dropout's noise out of
    # the widths, so stronger dropout only regularises h. On 30,000 fresh mock galaxies (the main
    # job's VAE and data, one chain each, benchmarks/calibration_at_scale.py's scoring) 0.2 / 0.35
    # / 0.5 left the worst quartile bin of log M* 0.033 / 0.023 / 0.023 and of z 0.024 / 0.013 /
    # 0.013 off nominal, at R^2 of log SFR 0.807 / 0.805 / 0.798: the over-fitted h had made
    # training residuals smallest, beside new galaxies', at low redshift.
    dropout: float = 0.35
    num_couplings: int = 12
    oh_flow: str | None = None
    calibrate: bool = True
    ood_quantile: float = OOD_QUANTILE
    mag_noise: float = 0.0

    def __post_init__(self):
        _choice("ChainConfig", "inputs", self.inputs, INPUTS)
        noise_ok = isinstance(self.mag_noise, numbers.Real) and not isinstance(self.mag_noise, bool)
        if not noise_ok or not math.isfinite(self.mag_noise) or self.mag_noise < 0:
            raise ValueError(f"ChainConfig.mag_noise must be a finite number >= 0 (times mag_err), got {self.mag_noise!r}")
        object.__setattr__(self, "mag_noise", float(self.mag_noise))
        object.__setattr__(self, "hidden_dim", _integer("ChainConfig", "hidden_dim", self.hidden_dim, 1))
        object.__setattr__(self, "dropout", _share("ChainConfig", "dropout", self.dropout, zero_allowed=True))
        object.__setattr__(self, "num_couplings", _integer("ChainConfig", "num_couplings", self.num_couplings, 1))
        if self.oh_flow is not None:
            _choice("ChainConfig", "oh_flow", self.oh_flow, OH_FLOWS)
        _choice("ChainConfig", "calibrate", self.calibrate, (True, False))
        object.__setattr__(self, "ood_quantile",
                           _share("ChainConfig", "ood_quantile", self.ood_quantile, zero_allowed=False))

    def model_options(self) -> dict:
        """Keyword arguments of :class:`~galppl.models.chain.ChainModel` these settings fix."""
        return {"hidden_dim": self.hidden_dim, "dropout": self.dropout}


# Fields a FitConfig sets itself: the nested seeds follow FitConfig.seed, and progress bars
# are galppl.fit's ``progress`` argument, not a setting saved with a model.
_FOLLOWS_FIT = {"train": ("seed", "progress"), "vae": ("seed",)}
_SECTION_TYPES = {"data": DataConfig, "chain": ChainConfig, "train": TrainConfig, "vae": VAEConfig}
_SECTION_DEFAULTS = {"data": DataConfig(), "chain": ChainConfig(), "train": CHAIN_TRAINING, "vae": VAE_TRAINING}


def _section_fields(section: str) -> list[str]:
    skip = _FOLLOWS_FIT.get(section, ())
    return [f.name for f in dataclasses.fields(_SECTION_TYPES[section]) if f.name not in skip]


def _shortcuts() -> dict[str, tuple[str, str]]:
    """galppl.fit keyword -> (section, field): own names for data/chain/train, ``vae_`` + name for vae."""
    out: dict[str, tuple[str, str]] = {"seed": ("", "seed")}
    for section in _SECTION_TYPES:
        for name in _section_fields(section):
            keyword = f"vae_{name}" if section == "vae" else name
            if keyword in out:  # a programming error: two sections would claim one keyword
                raise RuntimeError(f"fit keyword {keyword!r} is ambiguous: {out[keyword]} and {(section, name)}")
            out[keyword] = (section, name)
    return out


SHORTCUTS = _shortcuts()


@dataclass(frozen=True)
class FitConfig:
    """Everything ``galppl.fit`` needs, checked on construction (see the module docstring)."""

    data: DataConfig = field(default_factory=DataConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    train: TrainConfig = field(default_factory=lambda: CHAIN_TRAINING)
    vae: VAEConfig = field(default_factory=lambda: VAE_TRAINING)
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "seed", _integer("FitConfig", "seed", self.seed, 0))
        for section, kind in _SECTION_TYPES.items():
            value = getattr(self, section)
            if not isinstance(value, kind):
                raise TypeError(f"FitConfig.{section} must be a {kind.__module__}.{kind.__name__}, "
                                f"got {type(value).__name__}")
        for section in ("train", "vae"):
            seed = getattr(self, section).seed
            if seed not in (0, self.seed):
                raise ValueError(f"FitConfig.{section}.seed is {seed} but FitConfig.seed is {self.seed}: "
                                 "FitConfig.seed is the one seed of a fit; set it there")
            # Kept at 0, "follows FitConfig.seed", so that replacing FitConfig.seed alone stays valid.
            object.__setattr__(self, section, dataclasses.replace(getattr(self, section), seed=0))
        if not self.train.progress:
            raise ValueError("FitConfig.train.progress must stay True: progress bars are galppl.fit's "
                             "progress= argument")

    @property
    def data_seed(self) -> int:
        """The seed of the embedded mock sky and of the split."""
        return self.seed if self.data.split_seed is None else self.data.split_seed

    def chain_training(self, progress: bool = True) -> TrainConfig:
        """The chain's :class:`~galppl.train.TrainConfig`, seeded with :attr:`seed`."""
        return dataclasses.replace(self.train, seed=self.seed, progress=progress)

    def vae_training(self) -> VAEConfig:
        """The VAE's :class:`~galppl.models.vae.VAEConfig`, seeded with :attr:`seed`."""
        return dataclasses.replace(self.vae, seed=self.seed)

    def with_options(self, **options) -> FitConfig:
        """This config with ``galppl.fit``'s keyword shortcuts applied (see the module docstring).

        An unknown keyword is a TypeError naming the valid ones.
        """
        unknown = sorted(set(options) - set(SHORTCUTS))
        if unknown:
            raise TypeError(f"unknown fit option(s) {unknown}; the options are {sorted(SHORTCUTS)} "
                            "(or pass config=FitConfig(...))")
        sections: dict[str, dict] = {}
        for keyword, value in options.items():
            section, name = SHORTCUTS[keyword]
            sections.setdefault(section, {})[name] = value
        top = sections.pop("", {})
        return dataclasses.replace(
            self, **top, **{s: dataclasses.replace(getattr(self, s), **kw) for s, kw in sections.items()}
        )

    def to_dict(self) -> dict:
        """A JSON-able nested dict: ``{"data": {...}, "chain": {...}, "train": {...}, "vae": {...}, "seed": n}``."""
        out: dict = {}
        for section in _SECTION_TYPES:
            value = getattr(self, section)
            out[section] = {name: _plain(getattr(value, name)) for name in _section_fields(section)}
        out["seed"] = self.seed
        return out

    @classmethod
    def from_dict(cls, data: dict) -> FitConfig:
        """Inverse of :meth:`to_dict`. Missing keys take fit's defaults; unknown keys are an error naming them."""
        unknown = sorted(set(data) - {*_SECTION_TYPES, "seed"})
        if unknown:
            raise ValueError(f"unknown FitConfig key(s) {unknown}; expected {[*_SECTION_TYPES, 'seed']}")
        sections = {}
        for section in _SECTION_TYPES:
            values = dict(data.get(section, {}))
            valid = [f.name for f in dataclasses.fields(_SECTION_TYPES[section])]
            unknown = sorted(set(values) - set(valid))
            if unknown:
                raise ValueError(f"unknown FitConfig.{section} field(s) {unknown}; the fields are {valid}")
            sections[section] = dataclasses.replace(_SECTION_DEFAULTS[section], **values)
        return cls(**sections, seed=data.get("seed", 0))

    def to_toml(self) -> str:
        """TOML text: ``seed`` then one table per section. TOML has no null, so a ``None`` is
        left out (it reads back as the default); one whose default is not ``None`` cannot be written."""
        lines = [f"seed = {self.seed}"]
        for section, values in self.to_dict().items():
            if section == "seed":
                continue
            lines += ["", f"[{section}]"]
            for name, value in values.items():
                if value is None:
                    if getattr(_SECTION_DEFAULTS[section], name) is not None:
                        raise ValueError(f"FitConfig.{section}.{name} is None, which TOML cannot write "
                                         f"(its default is {getattr(_SECTION_DEFAULTS[section], name)!r})")
                    continue
                lines.append(f"{name} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text: str) -> FitConfig:
        """Inverse of :meth:`to_toml`: a FitConfig from TOML text (tables ``[data]``, ``[chain]``, ``[train]``, ``[vae]``)."""
        return cls.from_dict(tomllib.loads(text))


def _plain(value):
    """Tuples as lists, so that a dict compares equal after a JSON or TOML round trip."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # finite by construction: repr is valid TOML (1e-05, 0.7, 300)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string literal is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as TOML")
