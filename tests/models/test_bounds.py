"""Physical supports: the bounded map at the end of each block, and draws that stay inside
the declared ranges whatever the inputs (property-based)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from galppl.data.schema import TARGETS, support
from galppl.models import chain_blocks
from galppl.models.block import SUPPORT_MARGIN, SaturatingBoundsTransform, block_support
from galppl.models.chain import ChainModel

FEATURES = 4
LOWER = torch.tensor([0.0, 6.0, -math.inf, -1e8], dtype=torch.float64)
UPPER = torch.tensor([0.4, 13.0, math.inf, 1e8], dtype=torch.float64)


def test_schema_declares_the_issue_ranges():
    assert support("z") == (0.0, 0.4)
    assert support("log_mstar") == (6.0, 13.0)
    assert support("log_sfr") == (-5.0, 3.0)
    assert support("log_mbh") == (4.0, 11.0)
    assert support("oh") == (7.0, 9.7)
    assert support("oh_detected") == (-math.inf, math.inf) and support("my_own_target") == (-math.inf, math.inf)
    for name in ("log_mstar", "log_sfr", "z", "log_mbh", "oh"):  # inside what a catalog may hold
        var = TARGETS[name]
        assert var.lower <= var.support[0] < var.support[1] <= var.upper


def test_bounded_map_is_the_identity_inside_and_saturates_at_the_bounds():
    t = SaturatingBoundsTransform(LOWER, UPPER)
    inside = torch.tensor([[0.2, 10.0, -3e4, 5.0], [0.011, 6.18, 1e30, -9e7]], dtype=torch.float64)
    assert torch.equal(t(inside), inside) and torch.equal(t.inv(inside), inside)
    assert torch.equal(t.log_abs_det_jacobian(inside, t(inside)), torch.zeros(2, dtype=torch.float64))
    far = torch.tensor([[1e30, -1e30, 1e30, 1e30], [-1e30, 1e30, -1e30, -1e30]], dtype=torch.float64)
    y = t(far)
    assert ((y > LOWER) & (y < UPPER))[:, [0, 1, 3]].all()
    assert torch.isfinite(t.log_abs_det_jacobian(far, y)).all() and torch.isfinite(t.inv(y)).all()
    # The zone widths: a fixed share of each support.
    torch.testing.assert_close(t.margin[:2], torch.tensor([0.01, 0.175], dtype=torch.float64))
    assert SUPPORT_MARGIN == 0.025


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-30.0, 30.0, allow_nan=False), min_size=4, max_size=4))
def test_bounded_map_inverse_and_log_det_match_autograd(values):
    t = SaturatingBoundsTransform(LOWER, UPPER)
    # Points on both sides of and inside each saturation zone, for each variable's scale.
    x = torch.tensor(values, dtype=torch.float64) * torch.tensor([0.01, 0.2, 1.0, 1e6], dtype=torch.float64)
    x = x + torch.tensor([0.2, 9.5, 0.0, 0.0], dtype=torch.float64)
    y = t(x)
    assert ((y > LOWER) & (y < UPPER)).all()
    jacobian = torch.autograd.functional.jacobian(t, x)
    assert torch.equal(jacobian, torch.diag(jacobian.diagonal()))
    # Far into a saturation zone y sits within ~1e-7 of its bound, so the gap carries ~1e-9 relative error.
    torch.testing.assert_close(t.log_abs_det_jacobian(x, y), jacobian.diagonal().log().sum(), rtol=1e-7, atol=1e-9)
    back = t.inv(y.clone())
    torch.testing.assert_close(back, x, rtol=1e-7, atol=1e-9 * x.abs().max().item())
    inverse_jacobian = torch.autograd.functional.jacobian(t.inv, y)
    torch.testing.assert_close(inverse_jacobian.diagonal(), 1 / jacobian.diagonal(), rtol=1e-7, atol=0)


def test_values_outside_or_on_a_bound_map_back_to_infinity():
    t = SaturatingBoundsTransform(LOWER[:2], UPPER[:2])
    x = t.inv(torch.tensor([[0.4, 5.0], [-1e-5, 13.0]], dtype=torch.float64))
    assert torch.equal(x, torch.tensor([[math.inf, -math.inf], [-math.inf, math.inf]], dtype=torch.float64))


def test_bounded_map_rejects_reversed_bounds():
    with pytest.raises(ValueError, match="lower bound must be below"):
        SaturatingBoundsTransform(torch.tensor([1.0]), torch.tensor([0.0]))


# ------------------------------------------------------------------ the chain
def mock_targets(n, seed=0):
    """Targets of the props chain well inside the supports (mock-sky-like values)."""
    g = torch.Generator().manual_seed(seed)
    core = torch.stack([10.5 + 0.6 * torch.randn(n, generator=g), -0.4 + 0.8 * torch.randn(n, generator=g),
                        0.1 + 0.04 * torch.rand(n, generator=g)], -1)
    detected = (torch.rand(n, 1, generator=g) < 0.5).float()
    oh = torch.where(detected > 0, 8.8 + 0.1 * torch.randn(n, 1, generator=g), torch.full((n, 1), math.nan))
    return {"core": core, "bh": 7.8 + 0.5 * torch.randn(n, 1, generator=g), "oh_detected": detected, "oh": oh}


@pytest.fixture(scope="module")
def props_chain():
    """An untrained props chain pushed far from its init (weights x3): extreme inputs then
    give extreme flow outputs."""
    torch.manual_seed(0)
    chain = ChainModel(chain_blocks("props", num_couplings=3), FEATURES, hidden_dim=32, head_hidden_dim=16)
    chain.set_standardisation(torch.randn(200, FEATURES), mock_targets(200))
    with torch.no_grad():
        for p in chain.parameters():
            p.mul_(3.0)
    return chain


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=2 * FEATURES,
                max_size=2 * FEATURES))
def test_draws_stay_inside_the_supports_and_densities_and_gradients_are_finite(props_chain, values):
    chain = props_chain
    features = torch.tensor(values, dtype=torch.float32).reshape(2, FEATURES)
    draws = chain.sample(features, 50)
    for block in chain.blocks:
        if block.kind == "bernoulli":
            continue
        lower, upper = (b.float() for b in block_support(block))
        assert ((draws[block.name] > lower) & (draws[block.name] < upper)).all(), block.name
    # Scores of typical galaxies and of the draws themselves under these inputs are finite...
    targets = {k: v[:2] for k, v in mock_targets(2, seed=3).items()}
    for scored in (targets, {k: v[0] for k, v in draws.items() if not k.startswith("p_")}):
        log_prob = chain.log_prob(features, scored)
        for name, lp in log_prob.items():
            observed = ~torch.isnan(scored[name]).any(-1)
            assert torch.isfinite(lp[observed]).all(), (name, lp)
    # ... and so are the gradients of the training loss.
    chain.zero_grad()
    features.requires_grad_(True)
    chain.negative_log_likelihood(features, **targets).backward()
    for name, p in chain.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    assert torch.isfinite(features.grad).all()


def test_huge_parent_draws_keep_the_children_inside(props_chain):
    chain = props_chain
    features = torch.randn(3, FEATURES)
    h = chain.represent(features)
    for huge in (1e4, -1e4, 1e30):
        parents = {"core": torch.full((3, 3), huge), "bh": torch.full((3, 1), huge)}
        child = chain.block_distribution(chain.blocks[3], h, parents).sample((20,))
        assert ((child > 7.0) & (child < 9.7)).all()


def test_typical_values_score_and_draw_exactly_as_without_the_bounded_map(props_chain):
    """Inside the identity zone the map changes nothing: the same log densities, the same draws."""
    chain = props_chain
    features, targets = torch.randn(64, FEATURES), mock_targets(64, seed=5)
    with_bounds = chain.log_prob(features, targets)
    buffers = {b.name: getattr(chain, f"support_{b.name}").clone() for b in chain.blocks}
    try:
        for block in chain.blocks:
            getattr(chain, f"support_{block.name}").copy_(torch.tensor([-math.inf, math.inf])[:, None])
        without = chain.log_prob(features, targets)
        torch.manual_seed(1)
        draws_without = chain.sample(features, 20)
    finally:
        for name, value in buffers.items():
            getattr(chain, f"support_{name}").copy_(value)
    torch.manual_seed(1)
    draws_with = chain.sample(features, 20)
    for name in with_bounds:
        torch.testing.assert_close(with_bounds[name], without[name], equal_nan=True, rtol=0, atol=0)
    core_with, core_without = draws_with["core"], draws_without["core"]
    inner = (core_without - chain.support_core[0]).abs().min(-1).values > 0.5  # draws away from any bound
    assert torch.equal(core_with[inner], core_without[inner])


def test_training_targets_outside_a_support_are_an_error_naming_variable_count_and_range():
    chain = ChainModel(chain_blocks("props", num_couplings=2), FEATURES, hidden_dim=16, head_hidden_dim=8)
    targets = mock_targets(50)
    targets["core"][[3, 7], 2] = torch.tensor([-1.42e-5, 0.0])
    with pytest.raises(ValueError, match=r"block 'core': 2 value\(s\) of 'z' lie outside its physical support "
                                         r"\(0, 0.4\) \(galaxy rows \[3, 7\], e.g. -1.42e-05\)"):
        chain.set_standardisation(torch.randn(50, FEATURES), targets)
    targets["core"][[3, 7], 2] = math.nan  # set missing: accepted
    chain.set_standardisation(torch.randn(50, FEATURES), targets)
    targets["bh"][0] = 11.0
    with pytest.raises(ValueError, match=r"1 value\(s\) of 'log_mbh' lie outside .* \(4, 11\)"):
        chain.negative_log_likelihood(torch.randn(50, FEATURES), **targets)


def test_scoring_a_value_outside_its_support_gives_minus_infinity_and_calibrating_on_one_an_error():
    chain = ChainModel(chain_blocks("props", num_couplings=2), FEATURES, hidden_dim=16, head_hidden_dim=8)
    x = torch.randn(50, FEATURES)
    chain.set_standardisation(x, mock_targets(50))
    targets = mock_targets(50)
    targets["core"][4, 2] = 0.45  # z beyond the support's 0.4
    lp = chain.log_prob(x, targets)
    assert lp["core"][4] == -math.inf
    assert torch.isfinite(lp["core"][torch.arange(50) != 4]).all()
    with pytest.raises(ValueError, match=r"1 value\(s\) of 'z' lie outside its physical support \(0, 0.4\)"):
        chain.calibrate(x, targets)
