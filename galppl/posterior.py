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
  rather than dropped.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import arviz as az
import numpy as np
import torch
import xarray as xr

import galppl
from galppl.data.schema import KNOWN, validate
from galppl.features import build_features, usable, uses_images
from galppl.models.chain import Block, ChainModel
from galppl.models.derived import add_derived

CONSTANT_VARIABLES = ("mag", "mag_err", "extinction", "quality")


class GalaxyPosterior:
    """A fitted chain model (plus the frozen VAE encoder it reads, if any)."""

    def __init__(self, chain: ChainModel, *, model: str, inputs: str, feature_names, vae=None,
                 config: dict | None = None, history: dict | None = None, split: dict | None = None,
                 chain_options: dict | None = None):
        if uses_images(inputs) and vae is None:
            raise ValueError(f"inputs {inputs!r} need a fitted VAE")
        self.chain = chain.eval()
        self.model = model
        self.inputs = inputs
        self.feature_names = list(feature_names)
        self.vae = vae
        self.config = dict(config or {})
        self.history = dict(history or {})
        self.split = {k: list(v) for k, v in (split or {}).items()}
        self.chain_options = dict(chain_options or {})

    @property
    def variables(self) -> tuple[str, ...]:
        return self.chain.variables

    def __repr__(self) -> str:
        return (f"GalaxyPosterior(model={self.model!r}, inputs={self.inputs!r}, "
                f"variables={list(self.variables)}, blocks={[b.name for b in self.chain.blocks]})")

    # ------------------------------------------------------------------ features
    def features(self, data: xr.Dataset) -> xr.DataArray:
        """The model's input features for a catalog (NaN rows for incomplete inputs)."""
        encoding = self.vae.encode(data) if uses_images(self.inputs) else None
        features = build_features(data, encoding, self.inputs)
        names = list(features["feature"].values)
        if names != self.feature_names:
            raise ValueError(f"catalog gives features {names}, the model was fitted on {self.feature_names}")
        return features

    # ------------------------------------------------------------------ predict
    def sample(self, data: xr.Dataset, num_samples: int = 1000, *, max_batch_size: int = 256,
               seed: int = 0) -> dict[str, np.ndarray]:
        """Raw draws: variable -> (num_samples, galaxy) float32, NaN for unusable galaxies.

        Galaxies are processed ``max_batch_size`` at a time so memory stays bounded by
        ``num_samples x max_batch_size`` draws whatever the catalog size.
        """
        validate(data)
        return self._draw(self.features(data), num_samples, max_batch_size, seed)

    def _draw(self, features: xr.DataArray, num_samples: int, max_batch_size: int, seed: int) -> dict[str, np.ndarray]:
        if num_samples < 1 or max_batch_size < 1:
            raise ValueError(f"num_samples and max_batch_size must be >= 1, got {num_samples}, {max_batch_size}")
        ok = usable(features)
        x = torch.as_tensor(features.values[ok], dtype=torch.float32)
        n = features.sizes["galaxy"]
        out: dict[str, np.ndarray] = {}
        rows = np.flatnonzero(ok)
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(seed)
            for start in range(0, len(rows), max_batch_size):
                draws = self.chain.sample(x[start:start + max_batch_size], num_samples)
                index = rows[start:start + max_batch_size]
                for block in self.chain.blocks:
                    values = draws[block.name].numpy()
                    for k, name in enumerate(block.variables):
                        out.setdefault(name, np.full((num_samples, n), np.nan, np.float32))[:, index] = values[..., k]
                    if block.kind == "bernoulli":
                        p = draws[f"p_{block.name}"].numpy()[:, 0]
                        out.setdefault(f"p_{block.name}", np.full((num_samples, n), np.nan, np.float32))[:, index] = p
        for block in self.chain.blocks:  # a catalog with no usable galaxy still gets every variable
            for name in block.variables + ((f"p_{block.name}",) if block.kind == "bernoulli" else ()):
                out.setdefault(name, np.full((num_samples, n), np.nan, np.float32))
        return out

    def predict(self, data: xr.Dataset, num_samples: int = 1000, *, max_batch_size: int = 256,
                seed: int = 0) -> az.InferenceData:
        """Posterior draws for every galaxy of ``data`` as an ``arviz.InferenceData``."""
        validate(data)
        features = self.features(data)
        draws = self._draw(features, num_samples, max_batch_size, seed)
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
        constant["usable"] = ("galaxy", usable(features), {"units": "", "description": "inputs complete; draws are NaN where False"})
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

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> Path:
        """Write a directory: ``config.json`` (everything but weights), ``chain.pt``, ``vae/``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = {
            "kind": "posterior",
            "galppl_version": galppl.__version__,
            "model": self.model,
            "inputs": self.inputs,
            "feature_names": self.feature_names,
            "blocks": [b.to_dict() for b in self.chain.blocks],
            "chain_options": self.chain_options,
            "config": self.config,
            "history": self.history,
            "split": {k: [_jsonable(i) for i in v] for k, v in self.split.items()},
        }
        (path / "config.json").write_text(json.dumps(config, indent=1))
        torch.save(self.chain.state_dict(), path / "chain.pt")
        if self.vae is not None:
            self.vae.save(path / "vae")
        return path

    @classmethod
    def load(cls, path) -> GalaxyPosterior:
        path = Path(path)
        config = json.loads((path / "config.json").read_text())
        if config.get("kind") != "posterior":
            raise ValueError(f"{str(path)!r} holds a {config.get('kind')!r}, not a posterior model")
        blocks = [Block.from_dict(b) for b in config["blocks"]]
        chain = ChainModel(blocks, len(config["feature_names"]), **config["chain_options"])
        try:
            chain.load_state_dict(torch.load(path / "chain.pt", weights_only=True))
        except RuntimeError as error:
            raise ValueError(
                f"{str(path / 'chain.pt')!r} does not fit the chain its config.json describes (saved by galppl "
                f"{config.get('galppl_version')}, this is galppl {galppl.__version__}): load it with the version "
                f"that saved it, or refit"
            ) from error
        vae = None
        if (path / "vae").exists():
            from galppl.models.vae import FittedVAE

            vae = FittedVAE.load(path / "vae")
        return cls(chain, model=config["model"], inputs=config["inputs"], feature_names=config["feature_names"],
                   vae=vae, config=config["config"], history=config["history"], split=config["split"],
                   chain_options=config["chain_options"])


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
