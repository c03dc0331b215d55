"""An ensemble of fitted chains as one posterior model (the paper's Table 2).

``galppl.fit(..., ensemble=k)`` fits k chains with seeds ``seed .. seed + k - 1`` on one split of
one catalog, every one reading one :class:`~galppl.features.Featurizer` (one frozen VAE, one
input density), and returns an :class:`EnsemblePosterior`. Its posterior is the equal-weight
mixture of the members' posteriors (Lakshminarayanan et al. 2017, "Simple and scalable
predictive uncertainty estimation using deep ensembles"): :meth:`EnsemblePosterior.predict`
splits the draws evenly among the members and pools them along ``draw`` (a ``member``
coordinate on ``draw`` says whose each draw is), and :meth:`EnsemblePosterior.log_prob` is
the log of the mean of the members' densities. :meth:`EnsemblePosterior.uncertainty_split`
splits the pooled variance into aleatoric (within-member) and epistemic (between-member)
parts (:func:`galppl.diagnostics.uncertainty_split`). The VAE is shared, so the epistemic
part is the chains'; a VAE's own variance is not counted.

Saved as a folder: one sub-folder per member (what :meth:`GalaxyPosterior.save` writes) and a
JSON manifest ``config.json`` of kind ``"ensemble"``; ``galppl.load`` reads it back.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import arviz as az
import numpy as np
import xarray as xr
from scipy.special import logsumexp

import galppl
from galppl.diagnostics import uncertainty_split
from galppl.ood import OutOfDistributionWarning
from galppl.posterior import GalaxyPosterior

MANIFEST = "config.json"


class EnsemblePosterior:
    """k fitted :class:`~galppl.posterior.GalaxyPosterior` s of one chain on one featurizer, as one model.

    members: at least 2 posteriors with the same blocks and the same featurizer (the same
    object, or equal ones: what ``galppl.fit(..., ensemble=k)`` and :meth:`load` give).
    """

    def __init__(self, members: Sequence[GalaxyPosterior]):
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        for i, member in enumerate(members):
            if not isinstance(member, GalaxyPosterior):
                raise TypeError(f"member {i} is a {type(member).__name__}, not a GalaxyPosterior")
        first = members[0]
        blocks = [b.to_dict() for b in first.chain.blocks]
        for i, member in enumerate(members[1:], start=1):
            if [b.to_dict() for b in member.chain.blocks] != blocks:
                raise ValueError(f"member {i} models blocks {[b.name for b in member.chain.blocks]} "
                                 f"({list(member.variables)}), member 0 {[b.name for b in first.chain.blocks]} "
                                 f"({list(first.variables)}): an ensemble's members share one chain")
            if member.featurizer is not first.featurizer and member.featurizer.to_dict() != first.featurizer.to_dict():
                raise ValueError(f"member {i} reads other input features than member 0 (another input variant, VAE "
                                 "or input density): an ensemble's members share one featurizer; fit them with "
                                 "galppl.fit(..., ensemble=k)")
        self.members = members

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return (f"EnsemblePosterior({len(self)} members, model={self.model!r}, inputs={self.inputs!r}, "
                f"variables={list(self.variables)})")

    @property
    def model(self) -> str:
        return self.members[0].model

    @property
    def variables(self) -> tuple[str, ...]:
        return self.members[0].variables

    @property
    def inputs(self) -> str:
        return self.members[0].inputs

    @property
    def featurizer(self):
        """The featurizer every member reads (its VAE, feature names and input density)."""
        return self.members[0].featurizer

    @property
    def seeds(self) -> list[int]:
        """Each member's fit seed."""
        return [member.config.seed for member in self.members]

    @property
    def split(self) -> dict[str, list]:
        """The galaxy ids of the ``vae``, ``train``, ``val`` and ``test`` splits (member 0's;
        one for all members when fitted by ``galppl.fit(..., ensemble=k)``)."""
        return self.members[0].split

    def draws_per_member(self, num_samples: int) -> list[int]:
        """How ``num_samples`` pooled draws split among the members: evenly, the first
        ``num_samples % k`` members taking one more."""
        k = len(self)
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < k:
            raise ValueError(f"num_samples must be an integer >= {k} (one draw per member at least), "
                             f"got {num_samples!r}")
        return [num_samples // k + (i < num_samples % k) for i in range(k)]

    def _member_seed(self, seed: int, index: int) -> int:
        # Distinct for every (seed, member) pair, so no two members (or calls) share base noise.
        return seed * len(self) + index

    # ------------------------------------------------------------------ predict
    def sample(self, data: xr.Dataset, num_samples: int = 1000, *, max_batch_size: int = 256,
               seed: int = 0) -> dict[str, np.ndarray]:
        """Pooled raw draws: variable -> (num_samples, galaxy) float32, the members' draws
        (:meth:`draws_per_member`) one after the other; NaN for unusable galaxies."""
        parts = [member.sample(data, n, max_batch_size=max_batch_size, seed=self._member_seed(seed, i))
                 for i, (member, n) in enumerate(zip(self.members, self.draws_per_member(num_samples)))]
        return {name: np.concatenate([part[name] for part in parts], axis=0) for name in parts[0]}

    def predict(self, data: xr.Dataset, num_samples: int = 1000, *, max_batch_size: int = 256,
                seed: int = 0) -> az.InferenceData:
        """The pooled posterior of every galaxy of ``data`` as an ``arviz.InferenceData``.

        The layout of :meth:`GalaxyPosterior.predict`, with the members' draws
        (:meth:`draws_per_member`) pooled along ``draw`` and the coordinate ``member`` (draw,)
        naming whose each draw is (``posterior.groupby("member").mean("draw")`` gives the
        member means); ``observed_data`` and ``constant_data`` (inputs, usable, the
        out-of-distribution score and flag of the shared featurizer) are the same for all
        members. Warns once when some galaxies are out of distribution.
        """
        counts = self.draws_per_member(num_samples)
        idatas = []
        for i, (member, n) in enumerate(zip(self.members, counts)):
            with warnings.catch_warnings():
                if i:  # one featurizer, one flag: member 0 has warned already
                    warnings.simplefilter("ignore", OutOfDistributionWarning)
                idatas.append(member.predict(data, n, max_batch_size=max_batch_size, seed=self._member_seed(seed, i)))
        posterior = xr.concat([idata.posterior for idata in idatas], dim="draw", combine_attrs="override")
        posterior = posterior.assign_coords(draw=np.arange(num_samples),
                                            member=("draw", np.repeat(np.arange(len(self)), counts)))
        posterior.attrs["ensemble_members"] = len(self)
        return az.InferenceData(posterior=posterior, observed_data=idatas[0].observed_data,
                                constant_data=idatas[0].constant_data)

    def log_prob(self, data: xr.Dataset, num_draws: int = 64, *, max_batch_size: int = 256,
                 seed: int = 0) -> xr.Dataset:
        """Per-galaxy log density of each block's catalog values under the pooled posterior:
        ``log mean_k p_k``, p_k member k's density (:meth:`GalaxyPosterior.log_prob`, whose
        layout and units, nats, this keeps). NaN where the members' are."""
        parts = [member.log_prob(data, num_draws, max_batch_size=max_batch_size, seed=seed) for member in self.members]
        out = parts[0].copy()
        for name in out.data_vars:
            stacked = np.stack([part[name].values for part in parts])
            out[name] = ("galaxy", logsumexp(stacked, axis=0) - math.log(len(self)), out[name].attrs)
            out[name].attrs["description"] += f", the mean of the densities of {len(self)} ensemble members"
        out.attrs["ensemble_members"] = len(self)
        return out

    def uncertainty_split(self, data: xr.Dataset | az.InferenceData, num_samples: int = 1000,
                          var_names: str | Sequence[str] | None = None, *, max_batch_size: int = 256,
                          seed: int = 0) -> xr.Dataset:
        """Aleatoric and epistemic uncertainty per parameter (the paper's Table 2) in one call.

        data: a catalog (predicted here with ``num_samples`` pooled draws) or an InferenceData
        from :meth:`predict`. Returns :func:`galppl.diagnostics.uncertainty_split` of the
        members' own posteriors (:func:`member_posteriors`): sigma_ale, sigma_epi, sigma_total
        (parameter units), frac_ale, frac_epi, count; ``var_names`` default: the continuous
        variables with a truth in the catalog.
        """
        idata = data if isinstance(data, az.InferenceData) else self.predict(
            data, num_samples, max_batch_size=max_batch_size, seed=seed)
        return uncertainty_split(member_posteriors(idata), var_names)

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> Path:
        """Write a folder: ``member_<i>/`` per member (see :meth:`GalaxyPosterior.save`) and the
        JSON manifest ``config.json`` (kind ``"ensemble"``, the members' folders and seeds)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        folders = [f"member_{i}" for i in range(len(self))]
        for member, folder in zip(self.members, folders):
            member.save(path / folder)
        manifest = {"kind": "ensemble", "galppl_version": galppl.__version__, "model": self.model,
                    "members": folders, "seeds": self.seeds}
        (path / MANIFEST).write_text(json.dumps(manifest, indent=1))
        return path

    @classmethod
    def load(cls, path) -> EnsemblePosterior:
        """Read what :meth:`save` wrote. The members read one featurizer again (each folder holds
        a copy of it), so the VAE is loaded once into memory."""
        path = Path(path)
        manifest = json.loads((path / MANIFEST).read_text())
        if manifest.get("kind") != "ensemble":
            raise ValueError(f"{str(path)!r} holds a {manifest.get('kind')!r}, not an ensemble")
        members = [GalaxyPosterior.load(path / folder) for folder in manifest["members"]]
        shared = members[0].featurizer
        for member in members[1:]:
            if member.featurizer.to_dict() == shared.to_dict():
                member.featurizer = shared
        return cls(members)


def member_posteriors(idata: az.InferenceData) -> list[az.InferenceData]:
    """The members' own posteriors in a pooled InferenceData from :meth:`EnsemblePosterior.predict`,
    one InferenceData each (posterior and observed_data), with equally many draws: a member
    holding one draw more than the others (``num_samples`` not a multiple of k) gives up its last."""
    posterior = idata.posterior
    if "member" not in posterior.coords:
        raise ValueError("the posterior has no 'member' coordinate: give an InferenceData from "
                         "EnsemblePosterior.predict")
    member = posterior["member"].values
    rows = [np.flatnonzero(member == k) for k in np.unique(member)]
    n = min(len(r) for r in rows)
    groups = {"observed_data": idata.observed_data} if "observed_data" in idata.groups() else {}
    return [az.InferenceData(posterior=posterior.isel(draw=r[:n]), **groups) for r in rows]
