"""A chain of conditional blocks: the one idea behind every galppl posterior model.

A model is an ordered list of :class:`Block` s. Every block models some target variables
given a learned representation ``h`` of a galaxy's inputs and, optionally, the values of
earlier blocks (its parents)::

    p(core, detect, oh | x) = p(core | h) p(detect | h) p(oh | h, core)

A continuous block is a residual model: an MLP predicts the mean, a conditional flow
models the residual around it. A Bernoulli block is a logistic head. Training conditions
each block on its parents' true values (teacher forcing); prediction samples the blocks in
order, each conditioned on its parents' draws.

:class:`ChainModel` is an ``nn.Module`` whose :meth:`ChainModel.model` is a Pyro model with
one ``pyro.sample`` site per block, so SVI, ``Predictive`` and poutine all work on it. It
holds its own standardisation (of the input features and of each block's targets) as
buffers, so it takes and returns values in physical units.

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

import math
from contextlib import nullcontext
from dataclasses import dataclass, field

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from galppl.flows import build_flow
from galppl.flows._nets import seeded, soft_clamp
from galppl.models.plate import galaxy_plate

BLOCK_KINDS = ("realnvp", "affine", "spline", "bernoulli")
# Soft bound on the standardised parent values a child is conditioned on (identity within
# about +-2, at most +-5 standard deviations).
PARENT_BOUND = 5.0


def _signed_log1p(x):
    return torch.sign(x) * torch.log1p(torch.abs(x))


def _signed_expm1(y):
    return torch.sign(y) * torch.expm1(torch.abs(y))


# Value transforms applied to a block's targets before standardisation. "signed_log1p" is
# log1p for the positive fluxes it is meant for and stays defined (odd, monotone, finite)
# for the negative fluxes that noisy line measurements produce, even below -1.
VALUE_TRANSFORMS = {
    "identity": (lambda x: x, lambda y: y),
    "signed_log1p": (_signed_log1p, _signed_expm1),
}


@dataclass(frozen=True)
class Block:
    """One link of the chain.

    name: the block's name and its Pyro sample site.
    variables: the catalog variables it models (e.g. ``("log_mstar", "log_sfr", "z", "log_mbh")``).
    kind: ``"realnvp"`` (needs >= 2 variables), ``"affine"`` or ``"spline"`` (1 variable), or
        ``"bernoulli"`` (1 variable holding 0/1).
    parents: names of earlier blocks whose values condition this one.
    gate: name of an earlier Bernoulli block saying whether this block is measurable; the
        block's targets are expected to be missing where the gate is 0 (documentation and a
        consistency check; the likelihood masks missing values either way).
    transform: a key of ``VALUE_TRANSFORMS`` applied to the targets before modelling.
    flow_options: keyword arguments for :func:`galppl.flows.build_flow`.
    derived: names of derived-quantity functions (registered in ``galppl.models.derived``)
        that turn this block's draws into draws of physical quantities (e.g. BPT classes).
    """

    name: str
    variables: tuple[str, ...]
    kind: str = "realnvp"
    parents: tuple[str, ...] = ()
    gate: str | None = None
    transform: str = "identity"
    flow_options: dict = field(default_factory=dict)
    derived: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "variables", tuple(self.variables))
        object.__setattr__(self, "parents", tuple(self.parents))
        object.__setattr__(self, "derived", tuple(self.derived))
        if not self.name.isidentifier():
            raise ValueError(f"block name {self.name!r} must be a Python identifier")
        if self.kind not in BLOCK_KINDS:
            raise ValueError(f"block {self.name!r}: kind {self.kind!r} is not one of {BLOCK_KINDS}")
        if not self.variables:
            raise ValueError(f"block {self.name!r} models no variables")
        if self.kind == "realnvp" and len(self.variables) < 2:
            raise ValueError(f"block {self.name!r}: a RealNVP block needs >= 2 variables, got {self.variables}")
        if self.kind in ("affine", "spline", "bernoulli") and len(self.variables) != 1:
            raise ValueError(f"block {self.name!r}: a {self.kind} block models exactly 1 variable, got {self.variables}")
        if self.transform not in VALUE_TRANSFORMS:
            raise ValueError(f"block {self.name!r}: transform {self.transform!r} not in {tuple(VALUE_TRANSFORMS)}")
        if self.kind == "bernoulli" and (self.parents or self.transform != "identity"):
            raise ValueError(f"block {self.name!r}: a Bernoulli block takes no parents or transform")

    @property
    def dim(self) -> int:
        return len(self.variables)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "variables": list(self.variables),
            "kind": self.kind,
            "parents": list(self.parents),
            "gate": self.gate,
            "transform": self.transform,
            "flow_options": dict(self.flow_options),
            "derived": list(self.derived),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Block:
        return cls(**d)


def check_blocks(blocks) -> tuple[Block, ...]:
    """Check that a chain is well formed: unique names and variables, parents and gates defined earlier."""
    blocks = tuple(blocks)
    if not blocks:
        raise ValueError("a chain needs at least one block")
    seen: dict[str, Block] = {}
    variables: set[str] = set()
    for block in blocks:
        if block.name in seen:
            raise ValueError(f"block name {block.name!r} is used twice")
        for parent in block.parents:
            if parent not in seen:
                raise ValueError(f"block {block.name!r}: parent {parent!r} must be an earlier block")
            if seen[parent].kind == "bernoulli":
                raise ValueError(f"block {block.name!r}: parent {parent!r} is a Bernoulli gate; name it as gate")
        if block.gate is not None and (block.gate not in seen or seen[block.gate].kind != "bernoulli"):
            raise ValueError(f"block {block.name!r}: gate {block.gate!r} must be an earlier Bernoulli block")
        dup = variables.intersection(block.variables)
        if dup:
            raise ValueError(f"block {block.name!r}: variables {sorted(dup)} are modelled by an earlier block")
        variables.update(block.variables)
        seen[block.name] = block
    return blocks


def _mlp(sizes, activation=nn.SiLU) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class ChainModel(nn.Module):
    """A representation MLP ``x -> h`` and a chain of conditional blocks on top of it.

    features: the input vector per galaxy (VAE latents, colours, magnitudes, ...), in any
    units: standardised internally with statistics set by :meth:`set_standardisation`.
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
            self._build(blocks, feature_dim, hidden_dim, head_hidden_dim, context_embed_dim, mse_weight, dropout)

    def _build(self, blocks, feature_dim, hidden_dim, head_hidden_dim, context_embed_dim, mse_weight, dropout):
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
        for block in self.blocks:
            self.heads[block.name] = _mlp((hidden_dim, head_hidden_dim, block.dim))
            if block.kind == "bernoulli":
                continue
            if block.parents:
                # A small per-galaxy embedding of h, computed once and shared by all draws
                # of the parents, keeps the per-draw context cheap.
                self.embeds[block.name] = nn.Linear(hidden_dim, context_embed_dim)
                context_dim = context_embed_dim + sum(self._block(p).dim for p in block.parents)
            else:
                context_dim = hidden_dim
            self.flows[block.name] = build_flow(block.kind, block.dim, context_dim, **block.flow_options)
        self.register_buffer("feature_loc", torch.zeros(feature_dim))
        self.register_buffer("feature_scale", torch.ones(feature_dim))
        for block in self.blocks:
            self.register_buffer(f"loc_{block.name}", torch.zeros(block.dim))
            self.register_buffer(f"scale_{block.name}", torch.ones(block.dim))
            # Post-hoc calibration (:meth:`calibrate`): the residual's spread per variable.
            self.register_buffer(f"temperature_{block.name}", torch.ones(block.dim))

    # ------------------------------------------------------------------ helpers
    def _block(self, name: str) -> Block:
        return next(b for b in self.blocks if b.name == name)

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(v for b in self.blocks for v in b.variables)

    def set_standardisation(self, features: torch.Tensor, targets: dict[str, torch.Tensor]) -> None:
        """Set feature and target standardisation from training data (NaN-aware)."""
        loc, scale = _nan_loc_scale(features, "features")
        self.feature_loc.copy_(loc)
        self.feature_scale.copy_(scale)
        for block in self.blocks:
            if block.kind == "bernoulli":
                continue
            forward, _ = VALUE_TRANSFORMS[block.transform]
            loc, scale = _nan_loc_scale(forward(targets[block.name]), f"block {block.name!r}")
            getattr(self, f"loc_{block.name}").copy_(loc)
            getattr(self, f"scale_{block.name}").copy_(scale)

    def standardise(self, block: Block, values: torch.Tensor) -> torch.Tensor:
        """Physical values of a block -> the standardised space its flow lives in."""
        if block.kind == "bernoulli":
            return values
        forward, _ = VALUE_TRANSFORMS[block.transform]
        return (forward(values) - getattr(self, f"loc_{block.name}")) / getattr(self, f"scale_{block.name}")

    def unstandardise(self, block: Block, values: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`standardise`."""
        if block.kind == "bernoulli":
            return values
        _, inverse = VALUE_TRANSFORMS[block.transform]
        return inverse(values * getattr(self, f"scale_{block.name}") + getattr(self, f"loc_{block.name}"))

    def represent(self, features: torch.Tensor) -> torch.Tensor:
        """Features (galaxy, feature) -> representation h (galaxy, hidden_dim)."""
        if features.ndim != 2 or features.shape[-1] != self.feature_dim:
            raise ValueError(f"features must have shape (galaxy, {self.feature_dim}), got {tuple(features.shape)}")
        if not torch.isfinite(features).all():
            bad = (~torch.isfinite(features)).any(-1).nonzero().flatten()[:5].tolist()
            raise ValueError(f"features are NaN/inf for galaxy rows {bad}: flag such galaxies before the model")
        return self.representation((features - self.feature_loc) / self.feature_scale)

    def block_distribution(self, block: Block, h: torch.Tensor, parents: dict[str, torch.Tensor]):
        """The distribution of a block's standardised values given h and its parents' standardised values."""
        if block.kind == "bernoulli":
            return dist.Bernoulli(logits=self.heads[block.name](h)).to_event(1)
        mean = self.heads[block.name](h)
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
        residual = self.flows[block.name](context)
        temperature = getattr(self, f"temperature_{block.name}")
        return dist.TransformedDistribution(residual, [dist.transforms.AffineTransform(mean, temperature, event_dim=1)])

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
            draw = distribution.sample(extra)
        return torch.where(missing, draw, observed)

    # ------------------------------------------------------------------ Pyro
    def model(
        self,
        features: torch.Tensor,
        num_draws: int | None = None,
        n_total: int | None = None,
        **targets: torch.Tensor,
    ):
        """The Pyro model: one sample site per block, named after the block.

        features: (galaxy, feature). targets, keyword per block name: (galaxy, block dim) in
        physical units with NaN where missing. With targets every block is observed (teacher
        forcing); without, every block is sampled, ``num_draws`` times per galaxy (a
        ``draws`` plate at dim -2). ``n_total`` is the number of galaxies the minibatch
        stands for (:func:`galppl.models.plate.galaxy_plate`). Returns block name -> standardised
        values.
        """
        if targets and set(targets) != {b.name for b in self.blocks}:
            raise ValueError(f"targets must name every block {[b.name for b in self.blocks]}, got {sorted(targets)}")
        pyro.module("chain", self)
        h = self.represent(features)
        values: dict[str, torch.Tensor] = {}
        draws = pyro.plate("draws", num_draws, dim=-2) if num_draws else nullcontext()
        with draws, galaxy_plate(features.shape[0], n_total):
            for block in self.blocks:
                distribution = self.block_distribution(block, h, values)
                if not targets:
                    values[block.name] = pyro.sample(block.name, distribution)
                    continue
                observed = self.standardise(block, targets[block.name])
                missing = torch.isnan(observed)
                filled = observed.nan_to_num(0.0)  # masked out below wherever it was filled
                with poutine.mask(mask=~missing.any(-1)):
                    pyro.sample(block.name, distribution, obs=filled)
                values[block.name] = self._observed_or_drawn(block, distribution, observed)
                if block.kind != "bernoulli" and self.mse_weight > 0:
                    # The paper's MSE term on the mean head, per variable, masked per element.
                    error = (self.heads[block.name](h) - filled).pow(2).masked_fill(missing, 0.0)
                    pyro.factor(f"{block.name}_mse", -0.5 * self.mse_weight * error.sum(-1))
        return values

    def guide(self, *args, **kwargs):
        """No latent variables: training is maximum likelihood over the networks' weights."""

    @torch.no_grad()
    def sample(self, features: torch.Tensor, num_draws: int) -> dict[str, torch.Tensor]:
        """Draws (num_draws, galaxy, block dim) per block in physical units, plus ``p_<gate>``.

        Uses the Pyro model itself under ``poutine.trace``, so prediction and training share
        one definition. Bernoulli blocks also return their probability as ``p_<name>``
        (galaxy, 1).
        """
        trace = poutine.trace(self.model).get_trace(features, num_draws)
        out = {}
        h = None
        for block in self.blocks:
            out[block.name] = self.unstandardise(block, trace.nodes[block.name]["value"])
            if block.kind == "bernoulli":
                h = self.represent(features) if h is None else h
                out[f"p_{block.name}"] = torch.sigmoid(self.heads[block.name](h))
        return out

    def calibrate(self, features: torch.Tensor, targets: dict[str, torch.Tensor], *, parent_draws: int = 32,
                  max_galaxies: int = 2048, max_iter: int = 50) -> dict[str, list]:
        """Temperature scaling (Guo et al. 2017) of each continuous block on held-out galaxies.

        A network trained to the best validation likelihood is still somewhat over-confident
        (its training residuals are smaller than new galaxies' ones). With every weight
        frozen, each block's residual is scaled per variable by a temperature T (the output
        affine becomes ``mean + T * residual``) chosen to maximise the likelihood of these
        galaxies under what prediction will actually use: for a block without parents its
        density given h; for a child, the mixture over ``parent_draws`` ancestral draws of
        its (already calibrated) parents, ``log mean_k p(y | parents_k, h)``, so the errors
        of the parents' posteriors are accounted for (on at most ``max_galaxies`` galaxies).
        The temperatures are found by L-BFGS (``max_iter`` iterations). Call it on the
        validation set, never on the test set. Returns block name -> temperatures.
        """
        was_training = self.training
        self.eval()
        out = {}
        with torch.no_grad():
            h = self.represent(features)
        for block in self.blocks:
            if block.kind == "bernoulli":
                continue
            buffer = getattr(self, f"temperature_{block.name}")
            observed = self.standardise(block, targets[block.name])
            rows = ~torch.isnan(observed).any(-1)
            if rows.sum() < 10:
                out[block.name] = buffer.tolist()
                continue
            rows = rows.nonzero().flatten()
            if block.parents and len(rows) > max_galaxies:  # a seeded subset bounds the cost
                generator = torch.Generator().manual_seed(0)
                rows = rows[torch.randperm(len(rows), generator=generator)[:max_galaxies]]
            target = observed[rows]
            with torch.no_grad():
                parents = {}
                if block.parents:
                    trace = poutine.trace(self.model).get_trace(features[rows], parent_draws)
                    parents = {p: trace.nodes[p]["value"] for p in block.parents}  # (draw, galaxy, dim)
                mean = self.heads[block.name](h[rows])
                residual_flow = self.block_distribution(block, h[rows], parents).base_dist
            log_t = torch.zeros(block.dim, requires_grad=True)
            optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

            def negative_log_likelihood():
                optimiser.zero_grad()
                lp = residual_flow.log_prob((target - mean) / log_t.exp()) - log_t.sum()
                if block.parents:
                    lp = torch.logsumexp(lp, dim=0) - math.log(parent_draws)
                loss = -lp.mean()
                loss.backward()
                return loss

            optimiser.step(negative_log_likelihood)
            buffer.copy_(log_t.detach().exp())
            out[block.name] = buffer.tolist()
        self.zero_grad(set_to_none=True)
        self.train(was_training)
        return out

    @torch.no_grad()
    def log_prob(self, features: torch.Tensor, targets: dict[str, torch.Tensor], *,
                 num_draws: int = 64) -> dict[str, torch.Tensor]:
        """Per-galaxy log density of each block's observed values, in physical units.

        Includes the Jacobian of the standardisation and value transform, so numbers are
        comparable across models (a negative log-likelihood in the units of the catalog).
        NaN where the block's targets are missing. Where a parent's value is missing, the
        child's density is marginalised over that parent: ``log mean_k p(y | parent_k, h)``
        over ``num_draws`` draws of it from the chain (exact when no parent is missing).
        """
        if int(num_draws) < 1:
            raise ValueError(f"num_draws must be >= 1, got {num_draws}")
        h = self.represent(features)
        draws = num_draws if any(torch.isnan(targets[p]).any() for b in self.blocks for p in b.parents) else None
        values: dict[str, torch.Tensor] = {}
        out = {}
        for block in self.blocks:
            observed_physical = targets[block.name]
            observed = self.standardise(block, observed_physical)
            missing = torch.isnan(observed).any(-1)
            distribution = self.block_distribution(block, h, values)
            lp = distribution.log_prob(observed.nan_to_num(0.0))
            if lp.ndim == 2:  # conditioned on drawn parents: average the density over the draws
                lp = torch.logsumexp(lp, dim=0) - math.log(lp.shape[0])
            if block.kind != "bernoulli":
                lp = lp + _log_abs_det_standardise(self, block, observed_physical)
            out[block.name] = lp.masked_fill(missing, float("nan"))
            values[block.name] = self._observed_or_drawn(block, distribution, observed, draws)
        return out


def _log_abs_det_standardise(chain: ChainModel, block: Block, physical: torch.Tensor) -> torch.Tensor:
    """log |d standardised / d physical| summed over the block's variables."""
    log_scale = torch.log(getattr(chain, f"scale_{block.name}")).sum()
    if block.transform == "signed_log1p":
        # d/dx sign(x) log1p(|x|) = 1 / (1 + |x|)
        return -torch.log1p(physical.abs()).nan_to_num(0.0).sum(-1) - log_scale
    return -log_scale.expand(physical.shape[:-1])


def _nan_loc_scale(values: torch.Tensor, what: str):
    finite = torch.isfinite(values)
    count = finite.sum(0)
    if (count < 2).any():
        raise ValueError(f"{what}: column(s) {(count < 2).nonzero().flatten().tolist()} have < 2 finite values")
    zeroed = torch.where(finite, values, torch.zeros_like(values))
    loc = zeroed.sum(0) / count
    var = torch.where(finite, (values - loc) ** 2, torch.zeros_like(values)).sum(0) / (count - 1)
    scale = var.sqrt()
    if (scale <= 0).any():
        raise ValueError(f"{what}: column(s) {(scale <= 0).nonzero().flatten().tolist()} have zero variance")
    return loc, scale
