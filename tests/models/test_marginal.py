"""The marginal score of partly labelled galaxies: the draws' CRPS and the training loss built on it."""

import math

import pytest
import torch

from galppl.models.chain import ChainModel
from galppl.models.marginal import fair_crps, marginal_score_loss, partly_observed
from galppl.models.props import props_blocks
from tests.models.test_chain import toy_data


def normal_crps(mu, sigma, y):
    """The closed-form CRPS of N(mu, sigma^2) at y (Gneiting & Raftery 2007, eq. 21)."""
    u = (y - mu) / sigma
    normal = torch.distributions.Normal(0.0, 1.0)
    return sigma * (u * (2 * normal.cdf(u) - 1) + 2 * normal.log_prob(u).exp() - 1 / math.sqrt(math.pi))


def test_fair_crps_of_draws_matches_the_normal_closed_form_without_bias_even_from_few_draws():
    generator = torch.Generator().manual_seed(0)
    y = torch.tensor([-2.0, 0.0, 0.3, 1.5])
    many = 0.5 * torch.randn(100000, 4, generator=generator) + 0.2
    torch.testing.assert_close(fair_crps(many, y), normal_crps(0.2, 0.5, y), atol=5e-3, rtol=0)
    # Two draws per estimate, averaged over 40,000 repeats: unbiased, not inflated by 1/K.
    pairs = 0.5 * torch.randn(2, 40000, 4, generator=generator) + 0.2
    torch.testing.assert_close(fair_crps(pairs, y.expand(40000, 4)).mean(0), normal_crps(0.2, 0.5, y),
                               atol=1e-2, rtol=0)
    with pytest.raises(ValueError, match="at least 2 draws, got 1"):
        fair_crps(many[:1], y)


def test_partly_observed_rows():
    values = torch.tensor([[1.0, 2.0], [math.nan, 2.0], [math.nan, math.nan]])
    assert partly_observed(values).tolist() == [False, True, False]


def chain_and_data():
    x, targets = toy_data(n=200)
    torch.manual_seed(0)
    chain = ChainModel(props_blocks(num_couplings=2), 3, hidden_dim=16, head_hidden_dim=16)
    chain.set_standardisation(x, targets)
    return chain, x, targets


def test_marginal_score_loss_is_the_likelihood_without_partial_labels_and_trains_the_flow_with_them():
    chain, x, targets = chain_and_data()
    # Missing M_BH values are drawn for O/H's conditioning: the same seed gives the same draws.
    torch.manual_seed(1)
    expected = chain.negative_log_likelihood(x, **targets)
    torch.manual_seed(1)
    torch.testing.assert_close(marginal_score_loss(chain, x, **targets), expected)

    no_sfr = targets["core"].clone()
    no_sfr[:, 1] = math.nan  # z and log M* only, as a real catalog gives them
    partial = dict(targets, core=no_sfr)
    nll = chain.negative_log_likelihood(x, n_total=400, **partial)
    loss = marginal_score_loss(chain, x, n_total=400, **partial)
    assert loss > nll  # the CRPS of a continuous distribution is positive
    loss.backward()
    flow_grads = [p.grad for p in chain.flows["core"].parameters()]
    assert all(g is not None for g in flow_grads) and any(g.abs().sum() > 0 for g in flow_grads)
    # Without the score the core's flow would get nothing from these galaxies.
    chain.zero_grad()
    chain.negative_log_likelihood(x, **partial).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in chain.flows["core"].parameters())


def test_the_shrunk_kernel_estimate_keeps_the_draws_variance_and_mean():
    from galppl.models.calibration import _shrunk_kernel

    draws = torch.randn(128, 300, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.1, 3.0, 300)
    centres, bandwidth = _shrunk_kernel(draws)
    # A mixture of N(centre_k, h^2): mean = mean of the centres, variance = their variance + h^2.
    torch.testing.assert_close(centres.mean(0), draws.mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(centres.var(0) + bandwidth ** 2, draws.var(0), rtol=1e-4, atol=0)
    assert (bandwidth > 0.2 * draws.std(0)).all()  # a smoothing of ~0.35 sd at 128 draws, shrunk a little
