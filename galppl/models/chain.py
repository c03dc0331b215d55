"""A chain of conditional blocks: the one idea behind every galppl posterior model.

A model is an ordered list of :class:`Block` s. Every block models some target variables
given a learned representation ``h`` of a galaxy's inputs and, optionally, the values of
earlier blocks (its parents)::

    p(core, detect, oh | x) = p(core | h) p(detect | h) p(oh | h, core)

A continuous block is a residual model: an MLP predicts the mean, a conditional flow
models the residual around it; its distribution is one Pyro
``ConditionalTransformedDistribution`` in catalog units (:mod:`galppl.models.block`). A
Bernoulli block is a logistic head. Training conditions each block on its parents' true
values (teacher forcing); prediction samples the blocks in order, each conditioned on its
parents' draws.

:class:`ChainModel` is an ``nn.Module`` whose :meth:`ChainModel.model` is a Pyro model with
one ``pyro.sample`` site per block, so SVI, ``Predictive`` and poutine all work on it. It
holds its own standardisation (of the input features and of each block's targets) as
buffers, so its sites take and return values in catalog units.

Missing targets (NaN) are masked out of their block's likelihood for that galaxy, never
filled: a NaN in any of a block's variables removes that galaxy from the block's flow term
(its other variables still train their mean heads). Where a missing value is the parent of
a later block, the child is conditioned on a draw of it from the chain's own model of that
block (given h and the block's parents), exactly what it is conditioned on in prediction;
so a galaxy whose O/H is measured but whose M_BH is not still trains p(O/H | h, core, M_BH).
(A "value unknown" indicator would not do: missingness is informative, M_BH is missing for
the galaxies with the smallest velocity dispersions, and a child trained on the indicator
learns that, then meets only "known" draws in prediction.) :meth:`ChainModel.log_prob`
averages the child's density over such draws.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import NamedTuple

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn
from torch.distributions import AffineTransform, ComposeTransform, Transform

from galppl.data.prepare import Standardizer
from galppl.flows import DenseNet, build_flow
from galppl.flows.nets import seeded, soft_clamp
from galppl.models.block import (
    BLOCK_KINDS,
    VALUE_TRANSFORMS,
    Block,
    Calibration,
    SaturatingBoundsTransform,
    block_support,
    calibrated,
    check_blocks,
)
from galppl.models.calibration import MAX_ITER, recalibrate_blocks
from galppl.models.plate import galaxy_plate, minibatch_scale
from galppl.models.predictive import chain_log_prob, sample_chain

__all__ = ["BLOCK_KINDS", "VALUE_TRANSFORMS", "Block", "ChainModel", "check_blocks"]

# Soft bound on the standardised parent values a child is conditioned on (identity within
# about +-2, at most +-5 standard deviations).
PARENT_BOUND = 5.0


class _Term(NamedTuple):
    """One block's part of the teacher-forced likelihood: ``distribution.log_prob(value)`` where
    ``observed`` (galaxy,), plus the MSE factor of its mean head (galaxy,) or None."""

    block: Block
    distribution: dist.Distribution
    value: torch.Tensor
    observed: torch.Tensor
    mse: torch.Tensor | None


class ChainModel(nn.Module):
    """A representation MLP ``x -> h`` and a chain of conditional blocks on top of it.

    features: the input vector per galaxy (VAE latents, colours, magnitudes, ...), in any
    units: standardised internally with statistics set by :meth:`set_standardisation`.
    Flows take the chain's ``seed`` unless a block's ``flow_options`` names its own.
    """

    def __init__(
        self,
        blocks,
        feature_dim: int,
        *,
        hidden_dim: int = 256,
        head_hidden_dim: int = 128,
        context_embed_dim: int = 32,
        mse_weight: float = 1.0,
        dropout: float = 0.0,
        seed: int = 0,
    ):
        super().__init__()
        with seeded(seed):  # the initial weights, without touching the caller's generator
            self._build(blocks, feature_dim, hidden_dim, head_hidden_dim, context_embed_dim, mse_weight, dropout, seed)

    def _build(self, blocks, feature_dim, hidden_dim, head_hidden_dim, context_embed_dim, mse_weight, dropout, seed):
        self.blocks = check_blocks(blocks)
        self.feature_dim = int(feature_dim)
        self.hidden_dim = int(hidden_dim)
        self.mse_weight = float(mse_weight)
        self.representation = nn.Sequential(
            nn.Linear(feature_dim, hidden_dim),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
            nn.SiLU(),
        )
        self.heads = nn.ModuleDict()
        self.embeds = nn.ModuleDict()
        self.flows = nn.ModuleDict()
        dims = {block.name: block.dim for block in self.blocks}
        for block in self.blocks:
            # The head gives the mean of a continuous block (standardised units), the logits of a Bernoulli one.
            output = "logits" if block.kind == "bernoulli" else "mean"
            self.heads[block.name] = DenseNet(hidden_dim, (head_hidden_dim,), {output: block.dim}, last_layer_std=None)
            if block.kind == "bernoulli":
                continue
            if block.parents:
                # A small per-galaxy embedding of h, computed once and shared by all draws
                # of the parents, keeps the per-draw context cheap.
                self.embeds[block.name] = nn.Linear(hidden_dim, context_embed_dim)
                context_dim = context_embed_dim + sum(dims[p] for p in block.parents)
            else:
                context_dim = hidden_dim
            options = {"seed": seed, **block.flow_options}  # the chain's seed unless the block names one
            self.flows[block.name] = build_flow(block.kind, block.dim, context_dim, **options)
        self.register_buffer("feature_loc", torch.zeros(feature_dim))
        self.register_buffer("feature_scale", torch.ones(feature_dim))
        for block in self.blocks:
            self.register_buffer(f"loc_{block.name}", torch.zeros(block.dim))
            self.register_buffer(f"scale_{block.name}", torch.ones(block.dim))
            # Post-hoc calibration (:meth:`calibrate`): the residual's location and spread per
            # variable, how the temperature follows the mean (none), and the share of outlier draws and
            # their extra widening (none: exactly the flow).
            self.register_buffer(f"shift_{block.name}", torch.zeros(block.dim))
            self.register_buffer(f"temperature_{block.name}", torch.ones(block.dim))
            self.register_buffer(f"outlier_fraction_{block.name}", torch.zeros(block.dim))
            self.register_buffer(f"outlier_widening_{block.name}", torch.ones(block.dim))
            self.register_buffer(f"log_temperature_slope_{block.name}", torch.zeros(block.dim, block.dim))
            # Physical supports (lower, upper) from the schema: not saved, so a model saved
            # before they existed loads, and one saved with them follows the schema it runs with.
            self.register_buffer(f"support_{block.name}", torch.stack(block_support(block)).float(), persistent=False)

    # ------------------------------------------------------------------ units
    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(v for b in self.blocks for v in b.variables)

    def set_standardisation(self, features: torch.Tensor, targets: dict[str, torch.Tensor]) -> None:
        """Set feature and target standardisation from training data (NaN: missing, ignored).

        features (galaxy, feature) in any units; targets block name -> (galaxy, block dim) in
        catalog units. A block's targets are standardised after its value transform.
        """
        _fit_loc_scale(self.feature_loc, self.feature_scale, features, "features", None)
        for block in self.blocks:
            if block.kind != "bernoulli":
                self.check_support(block, targets[block.name])
                # Catalog values -> the modelled units: the inverse of every catalog transform but the affine.
                values = ComposeTransform(self.catalog_transforms(block)[1:]).inv(targets[block.name])
                _fit_loc_scale(getattr(self, f"loc_{block.name}"), getattr(self, f"scale_{block.name}"), values,
                               f"block {block.name!r}", block.variables)

    def catalog_transforms(self, block: Block) -> list[Transform]:
        """Maps of a block's standardised values to catalog units, in order: the
        standardisation's affine (loc, scale); where the schema declares physical supports
        for its variables, the bounded map
        :class:`~galppl.models.block.SaturatingBoundsTransform` onto them (the identity
        away from their ends), in the units the block models (a line flux's signed log1p:
        its saturation zones are then a fraction of that width, not of the flux's); the
        inverse of the value transform. Empty for a Bernoulli block."""
        if block.kind == "bernoulli":
            return []
        loc, scale = getattr(self, f"loc_{block.name}"), getattr(self, f"scale_{block.name}")
        value_transform = VALUE_TRANSFORMS[block.transform]
        transforms = [AffineTransform(loc, scale, event_dim=1)]
        lower, upper = getattr(self, f"support_{block.name}")
        if torch.isfinite(lower).any() or torch.isfinite(upper).any():
            transforms.append(SaturatingBoundsTransform(value_transform(lower), value_transform(upper)))
        return transforms + [value_transform.inv]

    def check_support(self, block: Block, values: torch.Tensor) -> None:
        """A ValueError naming the variable, the count, the support and example rows where
        a block's catalog values (galaxy, block dim) lie outside (or on an end of) its
        variables' supports; NaN (missing) is allowed. Such values are never clipped: a
        model cannot draw them, so they must be set missing or their galaxies left out."""
        if block.kind == "bernoulli":
            return
        lower, upper = getattr(self, f"support_{block.name}").to(values.dtype)
        outside = (values <= lower) | (values >= upper)  # False for NaN
        if not outside.any():
            return
        column = int(outside.any(0).nonzero()[0])
        rows = outside[:, column].nonzero().flatten()
        raise ValueError(
            f"block {block.name!r}: {len(rows)} value(s) of {block.variables[column]!r} lie outside its physical "
            f"support ({lower[column].item():g}, {upper[column].item():g}) (galaxy rows {rows[:5].tolist()}, "
            f"e.g. {values[rows[0], column].item():g}); the model cannot draw them. Set them missing (NaN) or "
            f"leave those galaxies out; the supports are declared in galppl.data.schema.TARGETS"
        )

    def standardise(self, block: Block, values: torch.Tensor) -> torch.Tensor:
        """Catalog values of a block -> the standardised space its flow lives in."""
        return ComposeTransform(self.catalog_transforms(block)).inv(values)

    def unstandardise(self, block: Block, values: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`standardise`."""
        return ComposeTransform(self.catalog_transforms(block))(values)

    def _filled(self, block: Block, values: torch.Tensor) -> torch.Tensor:
        """Catalog values with each missing (NaN) one replaced by the block's standardised zero,
        a value inside the support whose (masked-out) likelihood term stays finite."""
        missing = torch.isnan(values)
        return torch.where(missing, self.unstandardise(block, values.new_zeros(block.dim)), values)

    # ------------------------------------------------------------------ distributions
    def represent(self, features: torch.Tensor) -> torch.Tensor:
        """Features (galaxy, feature) -> representation h (galaxy, hidden_dim)."""
        if features.ndim != 2 or features.shape[-1] != self.feature_dim:
            raise ValueError(f"features must have shape (galaxy, {self.feature_dim}), got {tuple(features.shape)}")
        if not torch.isfinite(features).all():
            bad = (~torch.isfinite(features)).any(-1).nonzero().flatten()[:5].tolist()
            raise ValueError(f"features are NaN/inf for galaxy rows {bad}: flag such galaxies before the model")
        return self.representation((features - self.feature_loc) / self.feature_scale)

    def calibration(self, block: Block) -> Calibration:
        """A continuous block's calibration as its buffers hold it."""
        return Calibration(getattr(self, f"shift_{block.name}"), getattr(self, f"temperature_{block.name}").log(),
                           getattr(self, f"outlier_widening_{block.name}").log(),
                           torch.logit(getattr(self, f"outlier_fraction_{block.name}")),
                           getattr(self, f"log_temperature_slope_{block.name}"))

    def block_distribution(self, block: Block, h: torch.Tensor, parents: dict[str, torch.Tensor],
                           calibration: Calibration | tuple | None = None):
        """The distribution of a block's catalog values given h (galaxy, hidden_dim) and its
        parents' standardised values ((*draws, galaxy, dim) each).

        Continuous: the block's flow conditioned on h (no parents) or on an embedding of h
        and the softly bounded parent values, then
        :class:`~galppl.models.block.TemperedShift` around the mean head, then
        :meth:`catalog_transforms` (:func:`~galppl.models.block.calibrated`: a mixture over
        the patterns of outliers where the calibration has an outlier share); ``calibration`` (a
        :class:`~galppl.models.block.Calibration`, or the tuple of its first entries)
        replaces the block's own. Bernoulli: the logistic head.
        """
        return self._distribution(block, self.heads[block.name](h), h, parents, calibration)

    def _distribution(self, block, head, h, parents, calibration=None):
        if block.kind == "bernoulli":
            return dist.Bernoulli(logits=head["logits"]).to_event(1)
        calibration = self.calibration(block) if calibration is None else Calibration(*calibration)
        return calibrated(self.conditioned_flow(block, h, parents), head["mean"], calibration,
                          self.catalog_transforms(block))

    def conditioned_flow(self, block: Block, h: torch.Tensor, parents: dict[str, torch.Tensor]):
        """A continuous block's flow (its residual in standardised units, before the mean and
        the calibration) conditioned on h, or on an embedding of h and the parents' values."""
        if block.parents:
            embed = self.embeds[block.name](h)
            # Standardised parent values are softly bounded to +-PARENT_BOUND: a draw far in a
            # parent's tail must not send the child's network into extrapolation.
            parent_values = [soft_clamp(parents[p], PARENT_BOUND) for p in block.parents]
            shape = torch.broadcast_shapes(*(v.shape[:-1] for v in parent_values), embed.shape[:-1])
            context = torch.cat(
                [embed.expand(*shape, -1)] + [v.expand(*shape, -1) for v in parent_values], dim=-1
            )
        else:
            context = h
        return self.flows[block.name](context)

    def _observed_or_drawn(self, block: Block, distribution, observed: torch.Tensor, num_draws: int | None = None):
        """A block's observed standardised values with the missing (NaN) ones replaced by draws
        from ``distribution``, its model given h and the parents; ``num_draws`` adds a leading
        draws dimension. Values that no later block reads are returned as they are."""
        missing = torch.isnan(observed)
        if not missing.any() or not any(block.name in b.parents for b in self.blocks):
            return observed
        with torch.no_grad():
            # Parents already drawn num_draws times give the draws dimension; else add it here.
            extra = (num_draws,) if num_draws and distribution.batch_shape == observed.shape[:-1] else ()
            draw = self.standardise(block, distribution.sample(extra))
        return torch.where(missing, draw, observed)

    # ------------------------------------------------------------------ Pyro
    def model(
        self,
        features: torch.Tensor,
        num_draws: int | None = None,
        n_total: int | None = None,
        **targets: torch.Tensor,
    ):
        """The Pyro model: one sample site per block, named after the block, in catalog units.

        features: (galaxy, feature). targets, keyword per block name: (galaxy, block dim) in
        catalog units with NaN where missing. With targets every block is observed (teacher
        forcing); without, every block is sampled, ``num_draws`` times per galaxy (a
        ``draws`` plate at dim -2). ``n_total`` is the number of galaxies the minibatch
        stands for (:func:`galppl.models.plate.galaxy_plate`). Sampling returns block name ->
        standardised draws (what the children were conditioned on).
        """
        if targets:
            self._check_targets(targets)
        pyro.module("chain", self)
        h = self.represent(features)
        draws = pyro.plate("draws", num_draws, dim=-2) if num_draws else nullcontext()
        values: dict[str, torch.Tensor] = {}
        with draws, galaxy_plate(features.shape[0], n_total):
            if targets:
                for term in self._teacher_forced_terms(h, targets, values):
                    with poutine.mask(mask=term.observed):
                        pyro.sample(term.block.name, term.distribution, obs=term.value)
                    if term.mse is not None:
                        pyro.factor(f"{term.block.name}_mse", term.mse)
                return values
            for block in self.blocks:
                distribution = self._distribution(block, self.heads[block.name](h), h, values)
                values[block.name] = self.standardise(block, pyro.sample(block.name, distribution))
            return values

    def negative_log_likelihood(self, features: torch.Tensor, n_total: int | None = None,
                                **targets: torch.Tensor) -> torch.Tensor:
        """The negative log-likelihood of :meth:`model` with every block observed, in plain torch.

        Equal to Pyro's ``Trace_ELBO`` loss of ``(model, guide)`` on the same minibatch (the
        guide has no latent variables): the masked block log densities plus the MSE factors,
        summed over galaxies and scaled by ``n_total / batch`` like the galaxy plate. It skips
        Pyro's trace bookkeeping, which costs as much as the networks at these sizes; training
        (:func:`galppl.train.train_loss_fn`) uses it, and a test holds it equal to the model's.
        """
        self._check_targets(targets)
        scale = minibatch_scale(features.shape[0], n_total)
        total = features.new_zeros(())
        for term in self._teacher_forced_terms(self.represent(features), targets, {}):
            total = total + term.distribution.log_prob(term.value).masked_fill(~term.observed, 0.0).sum()
            if term.mse is not None:
                total = total + term.mse.sum()
        return -total * scale

    def _check_targets(self, targets: dict) -> None:
        if set(targets) != {b.name for b in self.blocks}:
            raise ValueError(f"targets must name every block {[b.name for b in self.blocks]}, got {sorted(targets)}")
        for block in self.blocks:
            self.check_support(block, targets[block.name])

    def _teacher_forced_terms(self, h: torch.Tensor, targets: dict[str, torch.Tensor], values: dict):
        """Yield, block by block, what the likelihood of observed targets is made of.

        Each block is conditioned on its parents' observed values (teacher forcing), a missing
        parent value on a draw of it (:meth:`_observed_or_drawn`); ``values`` receives each
        block's standardised values as conditioned on. One definition for the Pyro model and
        :meth:`negative_log_likelihood`.
        """
        for block in self.blocks:
            head = self.heads[block.name](h)
            distribution = self._distribution(block, head, h, values)
            target = targets[block.name]
            missing = torch.isnan(target)
            observed = self.standardise(block, target)
            mse = None
            if block.kind != "bernoulli" and self.mse_weight > 0:
                # The paper's MSE term on the mean head (standardised units), per variable, masked per element.
                error = (head["mean"] - observed.nan_to_num(0.0)).pow(2).masked_fill(missing, 0.0)
                mse = -0.5 * self.mse_weight * error.sum(-1)
            yield _Term(block, distribution, self._filled(block, target), ~missing.any(-1), mse)
            values[block.name] = self._observed_or_drawn(block, distribution, observed)

    def guide(self, *args, **kwargs):
        """No latent variables: training is maximum likelihood over the networks' weights."""

    def sample(self, features: torch.Tensor, num_draws: int) -> dict[str, torch.Tensor]:
        """Draws (num_draws, galaxy, block dim) per block in catalog units, plus ``p_<gate>``
        (galaxy, 1) per Bernoulli block: :func:`galppl.models.sampling.sample_chain`."""
        return sample_chain(self, features, num_draws)

    @contextmanager
    def residuals_only(self):
        """Inside, training moves only the residual flows and their context embeddings: the
        representation ``h`` and every head are frozen and ``h`` is computed as evaluation
        computes it (no dropout). A chain trained with dropout learns residual widths around
        the noisy ``h`` of training, which prediction never sees: refitting the flows in here
        fits them to the ``h`` they will be used with. Restores everything on exit."""
        frozen = [p for p in (*self.representation.parameters(), *self.heads.parameters()) if p.requires_grad]
        dropouts = [(m, m.p) for m in self.representation.modules() if isinstance(m, nn.Dropout)]
        try:
            for p in frozen:
                p.requires_grad_(False)
            for m, _ in dropouts:
                m.p = 0.0
            yield self
        finally:
            for p in frozen:
                p.requires_grad_(True)
            for m, rate in dropouts:
                m.p = rate

    @property
    def dropout(self) -> float:
        """The representation's dropout rate during training."""
        return max((m.p for m in self.representation.modules() if isinstance(m, nn.Dropout)), default=0.0)

    def calibrate(self, features: torch.Tensor, targets: dict[str, torch.Tensor], *, parent_draws: int = 32,
                  max_galaxies: int = 2048, max_iter: int = MAX_ITER, outliers: bool = False,
                  conditional: bool = False) -> dict[str, dict]:
        """Recalibrate each continuous block's location and spread (with ``outliers``, also an
        outlier share and widening per variable; with ``conditional``, a temperature that follows
        the block's mean) on held-out galaxies (catalog units); block
        name -> {"shift": [...], "temperature": [...], ...}. See
        :func:`galppl.models.calibration.recalibrate_blocks`."""
        return recalibrate_blocks(self, features, targets, parent_draws=parent_draws,
                                  max_galaxies=max_galaxies, max_iter=max_iter, outliers=outliers,
                                  conditional=conditional)

    def log_prob(self, features: torch.Tensor, targets: dict[str, torch.Tensor], *,
                 num_draws: int = 64) -> dict[str, torch.Tensor]:
        """Per-galaxy log density of each block's observed values, in catalog units:
        :func:`galppl.models.predictive.chain_log_prob`."""
        return chain_log_prob(self, features, targets, num_draws=num_draws)

def _fit_loc_scale(loc: torch.Tensor, scale: torch.Tensor, values: torch.Tensor, what: str, names) -> None:
    """Copy the NaN-aware mean and standard deviation of ``values`` (galaxy, column) into the buffers."""
    try:
        stats = Standardizer().fit(values.detach().cpu().numpy(), names=names)
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from error
    loc.copy_(torch.as_tensor(stats.mean))
    scale.copy_(torch.as_tensor(stats.std))
