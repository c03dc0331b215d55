"""Scoring a block on the variables a galaxy has labelled, when it lacks some of them.

A block's flow is a joint density over all its variables (the props core: log M*, log SFR, z):
its likelihood needs every one, and the marginal density of a subset has no closed form
for a RealNVP. Real label sets are partial (a redshift survey gives z and log M*, no
log SFR), so for such galaxies galppl scores each labelled variable's marginal with the
continuous ranked probability score (CRPS), estimated from draws of the block:

    CRPS(F, y) = E|X - y| - E|X - X'| / 2,   X, X' ~ F independent

It is a strictly proper scoring rule (its expectation is smallest at the true marginal,
Gneiting & Raftery 2007), it needs only draws (no density, no kernel bandwidth), and with
the "fair" pair term over K draws (divided by K (K - 1)) its estimate is unbiased for any K.
Draws of a flow are reparameterised, so the score trains the flow, the mean head and the
representation together (:func:`marginal_score_loss`, what fine-tuning on partial labels
uses). Post-hoc recalibration uses the marginal likelihood instead
(:mod:`galppl.models.calibration` says why).
"""

from __future__ import annotations

import torch

from galppl.models.plate import minibatch_scale

# Draws per galaxy for the training score: the fair estimate is unbiased at any K, more
# draws only lower its variance (each costs a pass of the block's flow).
TRAINING_DRAWS = 16


def fair_crps_terms(draws: torch.Tensor, observed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(E|X - y|, E|X - X'|) per element from ``draws`` (K, *shape) and ``observed`` (*shape),
    the pair term unbiased (pairs k != l). CRPS = first - second / 2, in the units of y."""
    k = draws.shape[0]
    if k < 2:
        raise ValueError(f"a CRPS from draws needs at least 2 draws, got {k}")
    distance = (draws - observed).abs().mean(0)
    # sum_{k,l} |x_k - x_l| = 2 sum_i (2i - K - 1) x_(i) over the sorted draws: O(K log K), not O(K^2).
    weights = (2 * torch.arange(1, k + 1, dtype=draws.dtype, device=draws.device) - k - 1)
    weights = weights.reshape(-1, *([1] * (draws.ndim - 1)))
    spread = 2 * (weights * draws.sort(0).values).sum(0) / (k * (k - 1))
    return distance, spread


def fair_crps(draws: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """The CRPS of each element of ``observed`` (*shape) under the distribution of ``draws``
    (K, *shape), estimated without bias (see :func:`fair_crps_terms`); in the units of y."""
    distance, spread = fair_crps_terms(draws, observed)
    return distance - 0.5 * spread


def partly_observed(values: torch.Tensor) -> torch.Tensor:
    """(galaxy,) True where a block's values (galaxy, dim) have some but not all variables."""
    missing = torch.isnan(values)
    return missing.any(-1) & ~missing.all(-1)


def marginal_score_loss(chain, features: torch.Tensor, n_total: int | None = None, *,
                        draws: int = TRAINING_DRAWS, **targets: torch.Tensor) -> torch.Tensor:
    """The chain's training loss for catalogs with partial labels, in plain torch.

    :meth:`~galppl.models.chain.ChainModel.negative_log_likelihood` (the flow likelihood of
    the galaxies with all of a block's variables, the mean heads' MSE) plus, for each galaxy
    with only some of a block's variables, the CRPS of each labelled variable's marginal
    (:func:`fair_crps`, ``draws`` reparameterised draws of the block given h and its
    teacher-forced parents, in the block's standardised units), summed over galaxies and
    scaled by ``n_total / batch`` like the likelihood. Without such galaxies it is the
    likelihood itself. The CRPS and the log-likelihood are both proper: each pulls its
    galaxies' block towards the observed values' distribution, the CRPS on the margins only
    (a variable no galaxy labels gets no direct term and moves only through shared weights).
    """
    loss = chain.negative_log_likelihood(features, n_total, **targets)
    partial = {name for name, values in targets.items() if partly_observed(values).any()}
    partial.difference_update(b.name for b in chain.blocks if b.kind == "bernoulli")
    if not partial:
        return loss
    score = features.new_zeros(())
    values: dict[str, torch.Tensor] = {}
    # The teacher-forced terms condition each block as the likelihood does; stop after the last partial block.
    last = max(i for i, b in enumerate(chain.blocks) if b.name in partial)
    for term in chain._teacher_forced_terms(chain.represent(features), targets, values):
        block = term.block
        if block.name in partial:
            rows = partly_observed(targets[block.name])
            sample = term.distribution.rsample((draws,))[:, rows]
            observed = chain.standardise(block, targets[block.name][rows])
            crps = fair_crps(chain.standardise(block, sample), observed.nan_to_num(0.0))
            score = score + crps.masked_fill(torch.isnan(observed), 0.0).sum()
        if chain.blocks.index(block) == last:
            break
    return loss + score * minibatch_scale(features.shape[0], n_total)
