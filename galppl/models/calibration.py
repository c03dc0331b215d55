"""Temperature scaling of a chain's continuous blocks (Guo et al. 2017, "On calibration of
modern neural networks"), on held-out galaxies, in catalog units."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from galppl.models.chain import ChainModel

# Fewer held-out galaxies with a block's values than this leave its temperatures as they are.
MIN_GALAXIES = 10


def calibrate_temperatures(chain: ChainModel, features: torch.Tensor, targets: dict[str, torch.Tensor], *,
                           parent_draws: int = 32, max_galaxies: int = 2048, max_iter: int = 50) -> dict[str, list]:
    """Set each continuous block's temperatures to maximise the held-out likelihood; return them.

    A network trained to the best validation likelihood is still somewhat over-confident
    (its training residuals are smaller than new galaxies' ones). With every weight
    frozen, each block's residual is scaled per variable by a temperature T (the block's
    :class:`~galppl.models.block.TemperedShift` becomes ``mean + T * residual``) chosen to
    maximise the likelihood of these galaxies (features (galaxy, feature), targets block name
    -> (galaxy, dim) in catalog units, NaN where missing) under what prediction will actually
    use: for a block without parents its density given h; for a child, the mixture over
    ``parent_draws`` ancestral draws of its (already calibrated) parents,
    ``log mean_k p(y | parents_k, h)``, so the errors of the parents' posteriors are
    accounted for (on at most ``max_galaxies`` galaxies, a seeded subset). The temperatures
    are found by L-BFGS (``max_iter`` iterations) on log T. Call it on the validation set,
    never on the test set. Returns block name -> temperatures (dimensionless).
    """
    was_training = chain.training
    chain.eval()
    out = {}
    with torch.no_grad():
        h = chain.represent(features)
    for block in chain.blocks:
        if block.kind == "bernoulli":
            continue
        buffer = getattr(chain, f"temperature_{block.name}")
        target = targets[block.name]
        rows = ~torch.isnan(target).any(-1)
        if rows.sum() < MIN_GALAXIES:
            out[block.name] = buffer.tolist()
            continue
        rows = rows.nonzero().flatten()
        if block.parents and len(rows) > max_galaxies:  # a seeded subset bounds the cost
            generator = torch.Generator().manual_seed(0)
            rows = rows[torch.randperm(len(rows), generator=generator)[:max_galaxies]]
        log_temperature = torch.zeros(block.dim, requires_grad=True)
        with torch.no_grad():
            parents = {}
            if block.parents:
                drawn = chain.model(features[rows], parent_draws)  # standardised, (draw, galaxy, dim)
                parents = {p: drawn[p] for p in block.parents}
            # Conditioned once: each L-BFGS step only re-reads log_temperature.
            distribution = chain.block_distribution(block, h[rows], parents, log_temperature=log_temperature)
        optimiser = torch.optim.LBFGS([log_temperature], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

        def negative_log_likelihood():
            optimiser.zero_grad()
            lp = distribution.log_prob(target[rows])
            if block.parents:
                lp = torch.logsumexp(lp, dim=0) - math.log(parent_draws)
            loss = -lp.mean()
            loss.backward()
            return loss

        optimiser.step(negative_log_likelihood)
        buffer.copy_(log_temperature.detach().exp())
        out[block.name] = buffer.tolist()
    chain.zero_grad(set_to_none=True)
    chain.train(was_training)
    return out
