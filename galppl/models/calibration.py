"""Post-hoc recalibration of a chain's continuous blocks on held-out galaxies, in catalog units:
temperature scaling (Guo et al. 2017, "On calibration of modern neural networks") extended by
a location shift, so that a posterior that is off-centre, not only too narrow, is corrected."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from galppl.models.chain import ChainModel

# Fewer held-out galaxies with a block's values than this leave its calibration as it is.
MIN_GALAXIES = 10


def recalibrate_blocks(chain: ChainModel, features: torch.Tensor, targets: dict[str, torch.Tensor], *,
                       parent_draws: int = 32, max_galaxies: int = 2048, max_iter: int = 50) -> dict[str, dict]:
    """Set each continuous block's shift and temperatures to maximise the held-out likelihood.

    A network trained to the best validation likelihood is still somewhat over-confident
    (its training residuals are smaller than new galaxies' ones), and its residual can sit
    off-centre (the mean head is trained with dropout, used without). With every weight
    frozen, each block's residual is moved by a shift s and scaled by a temperature T per
    variable (the block's :class:`~galppl.models.block.TemperedShift` becomes
    ``mean + s + T * residual``, both in the block's standardised units), chosen to maximise
    the likelihood of these galaxies (features (galaxy, feature), targets block name ->
    (galaxy, dim) in catalog units, NaN where missing) under what prediction will actually
    use: for a block without parents its density given h; for a child, the mixture over
    ``parent_draws`` ancestral draws of its (already recalibrated) parents,
    ``log mean_k p(y | parents_k, h)``, so the errors of the parents' posteriors are
    accounted for (on at most ``max_galaxies`` galaxies, a seeded subset). Shift and log T
    are found together by L-BFGS (``max_iter`` iterations). Only the ``shift_<block>`` and
    ``temperature_<block>`` buffers change. Call it on the validation set, never on the test
    set. Returns block name -> {"shift": [...] (standardised units), "temperature": [...]}.
    """
    was_training = chain.training
    chain.eval()
    out = {}
    with torch.no_grad():
        h = chain.represent(features)
    for block in chain.blocks:
        if block.kind == "bernoulli":
            continue
        shift_buffer = getattr(chain, f"shift_{block.name}")
        temperature_buffer = getattr(chain, f"temperature_{block.name}")
        target = targets[block.name]
        chain.check_support(block, target)
        rows = ~torch.isnan(target).any(-1)
        if rows.sum() >= MIN_GALAXIES:
            rows = rows.nonzero().flatten()
            if block.parents and len(rows) > max_galaxies:  # a seeded subset bounds the cost
                generator = torch.Generator().manual_seed(0)
                rows = rows[torch.randperm(len(rows), generator=generator)[:max_galaxies]]
            shift, log_temperature = _fit(chain, block, h, features, target, rows, parent_draws, max_iter)
            shift_buffer.copy_(shift)
            temperature_buffer.copy_(log_temperature.exp())
        out[block.name] = {"shift": shift_buffer.tolist(), "temperature": temperature_buffer.tolist()}
    chain.zero_grad(set_to_none=True)
    chain.train(was_training)
    return out


def _fit(chain, block, h, features, target, rows, parent_draws, max_iter):
    """(shift, log temperature) of one block maximising the held-out (mixture) likelihood."""
    shift = torch.zeros(block.dim, requires_grad=True)
    log_temperature = torch.zeros(block.dim, requires_grad=True)
    with torch.no_grad():
        parents = {}
        if block.parents:
            drawn = chain.model(features[rows], parent_draws)  # standardised, (draw, galaxy, dim)
            parents = {p: drawn[p] for p in block.parents}
        # Conditioned once: each L-BFGS step only re-reads the shift and log temperature.
        distribution = chain.block_distribution(block, h[rows], parents, calibration=(shift, log_temperature))
    optimiser = torch.optim.LBFGS([shift, log_temperature], lr=0.5, max_iter=max_iter,
                                  line_search_fn="strong_wolfe")

    def negative_log_likelihood():
        optimiser.zero_grad()
        lp = distribution.log_prob(target[rows])
        if block.parents:
            lp = torch.logsumexp(lp, dim=0) - math.log(parent_draws)
        loss = -lp.mean()
        loss.backward()
        return loss

    optimiser.step(negative_log_likelihood)
    return shift.detach(), log_temperature.detach()
