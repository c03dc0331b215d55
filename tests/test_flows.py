"""Behaviour of the conditional flows in galppl.flows: exactness, shapes, Pyro use, I/O."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.optim import Adam

from galppl.flows import (
    FLOW_KINDS,
    ConditionalAffine1d,
    ConditionalFlow,
    ConditionalRealNVP,
    ConditionalSpline1d,
    DenseNet,
    build_flow,
    coupling_permutations,
)
from galppl.flows.nets import LAST_LAYER_INIT_STD

CONTEXT_DIM = 3
# (kind, dim): every flow kind, and RealNVP at even and odd dims.
CASES = [("realnvp", 2), ("realnvp", 3), ("realnvp", 4), ("affine", 1), ("spline", 1)]
CASE_IDS = [f"{kind}-{dim}d" for kind, dim in CASES]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_flow(kind: str, dim: int, seed: int = 0) -> torch.nn.Module:
    if kind == "realnvp":
        return build_flow(kind, dim, CONTEXT_DIM, num_couplings=4, hidden_dims=(16, 16), seed=seed)
    return build_flow(kind, dim, CONTEXT_DIM, hidden_dims=(16,), seed=seed)


def perturbed_flow(kind: str, dim: int, scale: float = 0.3, dtype=torch.float64) -> torch.nn.Module:
    """A flow pushed far from its near-identity init, so exactness checks are not trivial."""
    flow = small_flow(kind, dim).to(dtype)
    generator = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return flow


def forward_with_log_det(d: dist.TransformedDistribution, z: torch.Tensor):
    """Push base points z through the flow, summing each transform's log |det J|."""
    log_det = 0.0
    for t in d.transforms:
        y = t(z)
        log_det = log_det + t.log_abs_det_jacobian(z, y)
        z = y
    return z, log_det


def inverse(d: dist.TransformedDistribution, y: torch.Tensor) -> torch.Tensor:
    for t in reversed(d.transforms):
        y = t.inv(y)
    return y


def wide_points(shape, dim, seed=0, dtype=torch.float64):
    # scale 3: covers the spline box [-4, 4] and its identity tails.
    return 3 * torch.randn(*shape, dim, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def contexts(*shape, seed=1, dtype=torch.float64):
    return torch.randn(*shape, CONTEXT_DIM, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# float64 with strongly perturbed weights (exactness); float32 with milder ones, since
# per-coupling scales up to exp(3) compound over couplings and amplify float32 rounding.
@pytest.mark.parametrize(("dtype", "scale"), [(torch.float64, 0.3), (torch.float32, 0.1)], ids=["f64", "f32"])
@pytest.mark.parametrize(("kind", "dim"), CASES, ids=CASE_IDS)
def test_inverse_round_trip(kind, dim, dtype, scale):
    flow = perturbed_flow(kind, dim, scale=scale, dtype=dtype)
    d = flow(contexts(8, dtype=dtype))
    x = wide_points((5, 8), dim, dtype=dtype)
    y, _ = forward_with_log_det(d, x)
    # clone(): a new tensor object, so no transform can answer from its cache.
    torch.testing.assert_close(inverse(d, y.clone()), x, atol=1e-5, rtol=1e-5)
    x_back = inverse(d, x.clone())
    torch.testing.assert_close(forward_with_log_det(d, x_back.clone())[0], x, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(y, x, atol=1e-2), "perturbed flow should not be the identity"


@pytest.mark.parametrize(("kind", "dim"), CASES, ids=CASE_IDS)
def test_log_det_matches_autograd_jacobian(kind, dim):
    flow = perturbed_flow(kind, dim)
    for i in range(3):
        d = flow(contexts(seed=10 + i))  # one galaxy: batch_shape ()
        z = wide_points((), dim, seed=20 + i)
        jacobian = torch.autograd.functional.jacobian(lambda v: forward_with_log_det(d, v)[0], z)
        _, log_det = forward_with_log_det(d, z.clone())
        expected = torch.linalg.slogdet(jacobian).logabsdet
        torch.testing.assert_close(log_det, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize(("kind", "dim"), CASES, ids=CASE_IDS)
def test_log_prob_is_change_of_variables(kind, dim):
    flow = perturbed_flow(kind, dim)
    d = flow(contexts(6))
    y = wide_points((4, 6), dim)
    x = inverse(d, y.clone())
    _, log_det = forward_with_log_det(d, x.clone())
    by_hand = d.base_dist.log_prob(x) - log_det
    torch.testing.assert_close(flow(contexts(6)).log_prob(y), by_hand, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize(("kind", "dim"), [c for c in CASES if c[1] <= 2], ids=lambda c: str(c))
def test_density_integrates_to_one(kind, dim):
    # Milder perturbation in 2-d: stronger ones give tails heavier than any affordable grid.
    flow = perturbed_flow(kind, dim, scale=0.3 if dim == 1 else 0.15)
    d = flow(contexts(seed=5))
    with torch.no_grad():
        if dim == 1:
            grid = torch.linspace(-40, 40, 40001, dtype=torch.float64)
            density = d.log_prob(grid[:, None]).exp()
            mass = torch.trapezoid(density, grid)
        else:
            axis = torch.linspace(-15, 15, 401, dtype=torch.float64)
            xx, yy = torch.meshgrid(axis, axis, indexing="ij")
            grid = torch.stack([xx, yy], -1)
            density = d.log_prob(grid).exp()
            mass = torch.trapezoid(torch.trapezoid(density, axis, dim=1), axis)
    assert abs(mass.item() - 1) < 1e-3
    # ... and the density is not just the standard Normal one.
    normal = dist.Normal(0.0, 1.0).log_prob(grid).sum(-1).exp()
    assert (density - normal).abs().max() > 0.01


@pytest.mark.parametrize(("kind", "dim"), CASES, ids=CASE_IDS)
def test_untrained_flow_is_near_standard_normal(kind, dim):
    flow = small_flow(kind, dim)
    x = wide_points((50,), dim, dtype=torch.float32) / 3
    log_prob = flow(contexts(50, dtype=torch.float32)).log_prob(x)
    normal = dist.Normal(0.0, 1.0).log_prob(x).sum(-1)
    torch.testing.assert_close(log_prob, normal, atol=0.05, rtol=0)


def test_realnvp_learns_a_conditional_correlated_gaussian():
    """x | c ~ N(m(c), S(c)): mean, scale and correlation all move with the context."""

    def truth(c):
        mean = torch.cat([2 * c, -c], -1)
        rho, sigma = 0.7 * c, torch.exp(0.3 * c)
        cov = torch.stack(
            [torch.cat([sigma**2, rho * sigma**2], -1), torch.cat([rho * sigma**2, sigma**2], -1)], -2
        )
        return mean, cov

    generator = torch.Generator().manual_seed(0)
    flow = ConditionalRealNVP(2, 1, num_couplings=4, hidden_dims=(32, 32), seed=0)
    optimiser = torch.optim.Adam(flow.parameters(), lr=1e-2)
    steps = 400
    # Decaying the step size averages out the minibatch noise in the final weights.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    for _ in range(steps):
        c = 2 * torch.rand(256, 1, generator=generator) - 1
        mean, cov = truth(c)
        x = mean + (torch.linalg.cholesky(cov) @ torch.randn(256, 2, 1, generator=generator)).squeeze(-1)
        loss = -flow(c).log_prob(x).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()

    c = torch.tensor([[-0.7], [0.0], [0.7]])
    mean, cov = truth(c)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        draws = flow(c).sample((20000,))
    centred = draws - draws.mean(0)
    learned_cov = torch.einsum("sbi,sbj->bij", centred, centred) / (draws.shape[0] - 1)
    torch.testing.assert_close(draws.mean(0), mean, atol=0.1, rtol=0)
    torch.testing.assert_close(learned_cov, cov, atol=0.12, rtol=0)


def test_spline_fits_a_skewed_conditional_better_than_affine():
    """Shifted log-normal target y = c (exp(0.6 n) - 1): the spline must get close to the
    exact mean log density, the Gaussian-only affine flow cannot."""

    def draw(n, generator):
        c = torch.rand(n, 1, generator=generator) + 0.5
        return c, c * torch.exp(0.6 * torch.randn(n, 1, generator=generator)) - c

    def true_log_density(c, y):
        normal = torch.log((y + c) / c) / 0.6
        return (-torch.log(y + c) - math.log(0.6 * math.sqrt(2 * math.pi)) - normal**2 / 2).squeeze(-1)

    c_test, y_test = draw(20000, torch.Generator().manual_seed(99))
    scores = {"truth": true_log_density(c_test, y_test).mean().item()}
    for cls in (ConditionalAffine1d, ConditionalSpline1d):
        generator = torch.Generator().manual_seed(0)
        flow = cls(1, 1, hidden_dims=(32,), seed=0)
        optimiser = torch.optim.Adam(flow.parameters(), lr=1e-2)
        for _ in range(200):
            c, y = draw(256, generator)
            loss = -flow(c).log_prob(y).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            scores[cls.__name__] = flow(c_test).log_prob(y_test).mean().item()
    assert scores["ConditionalSpline1d"] > scores["truth"] - 0.08, scores
    assert scores["ConditionalSpline1d"] > scores["ConditionalAffine1d"] + 0.15, scores


@pytest.mark.parametrize(("kind", "dim"), CASES, ids=CASE_IDS)
def test_sample_and_log_prob_shapes(kind, dim):
    flow = small_flow(kind, dim)
    d = flow(contexts(5, dtype=torch.float32))
    assert d.batch_shape == (5,) and d.event_shape == (dim,)
    assert d.sample((7, 2)).shape == (7, 2, 5, dim)
    assert d.log_prob(torch.zeros(7, 5, dim)).shape == (7, 5)
    # Context with a leading draw axis: one core-parameter draw per (s, galaxy).
    d3 = flow(contexts(4, 5, dtype=torch.float32))
    assert d3.batch_shape == (4, 5)
    assert d3.log_prob(torch.zeros(4, 5, dim)).shape == (4, 5)
    assert d3.rsample((3,)).shape == (3, 4, 5, dim)
    # One galaxy, no batch axis.
    assert flow(contexts(dtype=torch.float32)).sample((6,)).shape == (6, dim)


@pytest.mark.parametrize(("kind", "dim"), CASES, ids=CASE_IDS)
def test_rsample_carries_gradients_to_parameters_and_context(kind, dim):
    flow = perturbed_flow(kind, dim, dtype=torch.float32)
    c = contexts(5, dtype=torch.float32).requires_grad_()
    flow(c).rsample((4,)).pow(2).sum().backward()
    assert c.grad is not None and c.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in flow.parameters())


@pytest.mark.parametrize(("kind", "dim"), CASES, ids=CASE_IDS)
def test_every_parameter_gets_a_gradient_at_init(kind, dim):
    flow = small_flow(kind, dim)
    x = wide_points((32,), dim, dtype=torch.float32)
    (-flow(contexts(32, dtype=torch.float32)).log_prob(x).mean()).backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_realnvp_projects_the_context_once_per_galaxy():
    flow = perturbed_flow("realnvp", 4)
    seen = []
    for coupling in flow.transforms:
        coupling.net.context_layer.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0].shape))
    c = contexts(6)
    d = flow(c)
    x = d.sample((100,))
    d.log_prob(x.clone())
    assert seen == [torch.Size([6, CONTEXT_DIM])] * len(flow.transforms)
    # Broadcasting the projection gives exactly what re-projecting per draw gives.
    per_draw = flow(c.expand(100, 6, CONTEXT_DIM)).log_prob(x.clone())
    torch.testing.assert_close(d.log_prob(x.clone()), per_draw, atol=1e-9, rtol=1e-12)


@pytest.mark.parametrize(("kind", "dim"), CASES, ids=CASE_IDS)
def test_works_as_a_pyro_site_under_plate_with_svi_and_predictive(kind, dim):
    pyro.clear_param_store()
    flow = small_flow(kind, dim)
    c = contexts(10, dtype=torch.float32)
    x_obs = wide_points((10,), dim, dtype=torch.float32) / 3

    def model(context, x=None):
        pyro.module("flow", flow)
        with pyro.plate("galaxy", context.shape[0]):
            return pyro.sample("x", flow(context), obs=x)

    def guide(context, x=None):
        pass

    before = [p.detach().clone() for p in flow.parameters()]
    svi = SVI(model, guide, Adam({"lr": 1e-2}), Trace_ELBO())
    losses = [svi.step(c, x_obs) for _ in range(3)]
    assert all(math.isfinite(v) for v in losses)
    assert any(not torch.equal(b, p) for b, p in zip(before, flow.parameters()))

    draws = Predictive(model, num_samples=4)(c)["x"]
    assert draws.shape == (4, 10, dim)
    draws = Predictive(model, num_samples=4, parallel=True)(c)["x"]
    assert draws.shape == (4, 10, dim)
    pyro.clear_param_store()


@pytest.mark.parametrize(("kind", "dim"), CASES, ids=CASE_IDS)
def test_state_dict_round_trip(kind, dim, tmp_path):
    flow = perturbed_flow(kind, dim, dtype=torch.float32)
    path = tmp_path / "flow.pt"
    torch.save(flow.state_dict(), path)
    # A different seed gives different weights (and RealNVP permutations): loading must restore all.
    restored = small_flow(kind, dim, seed=7)
    c, x = contexts(6, dtype=torch.float32), wide_points((6,), dim, dtype=torch.float32)
    assert not torch.equal(restored(c).log_prob(x), flow(c).log_prob(x))
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(restored(c).log_prob(x), flow(c).log_prob(x))


def test_permutations_are_seeded_and_alternate():
    assert all(torch.equal(a, b) for a, b in zip(coupling_permutations(5, 6, 3), coupling_permutations(5, 6, 3)))
    assert not all(torch.equal(a, b) for a, b in zip(coupling_permutations(5, 6, 3), coupling_permutations(5, 6, 4)))
    orders = coupling_permutations(4, 12, 0)
    for previous, current in zip(orders, orders[1:]):
        assert set(previous[:2].tolist()) != set(current[:2].tolist())
    # In 2-d the only order that changes the kept coordinate is the swap.
    assert [o.tolist() for o in coupling_permutations(2, 3, 0)] == [[0, 1], [1, 0], [0, 1]]


@pytest.mark.parametrize(
    ("kind", "dim", "message"),
    [
        ("maf", 2, "unknown flow kind 'maf'"),
        ("realnvp", 1, "needs dim >= 2"),
        ("affine", 2, "needs dim == 1"),
        ("spline", 3, "needs dim == 1"),
    ],
)
def test_build_flow_rejects_bad_kind_or_dim(kind, dim, message):
    with pytest.raises(ValueError, match=message):
        build_flow(kind, dim, CONTEXT_DIM)


def test_build_flow_rejects_unknown_options_and_bad_settings():
    with pytest.raises(ValueError, match="does not take option.*num_couplings"):
        build_flow("affine", 1, CONTEXT_DIM, num_couplings=3)
    with pytest.raises(ValueError, match="hidden_dims"):
        build_flow("realnvp", 2, CONTEXT_DIM, hidden_dims=())
    with pytest.raises(ValueError, match="log_scale_clamp"):
        ConditionalSpline1d(1, CONTEXT_DIM, log_scale_clamp=0.0)
    with pytest.raises(ValueError, match=r"context must have shape \(\*batch, 3\), got \(5, 4\)"):
        small_flow("realnvp", 2)(torch.zeros(5, 4))


def test_every_kind_is_a_conditional_flow_built_from_dim_context_dim_and_options():
    for kind, cls in FLOW_KINDS.items():
        dim = 2 if kind == "realnvp" else 1
        flow = build_flow(kind, dim, CONTEXT_DIM, hidden_dims=(8,), seed=3)
        assert type(flow) is cls and isinstance(flow, ConditionalFlow)
        assert (flow.dim, flow.context_dim) == (dim, CONTEXT_DIM)
        same = cls(dim, CONTEXT_DIM, hidden_dims=(8,), seed=3)
        assert all(torch.equal(a, b) for a, b in zip(flow.state_dict().values(), same.state_dict().values()))
        # The conditional form, with an output transform appended, conditions to the same flow then that map.
        shift = torch.distributions.AffineTransform(2.0, 3.0, event_dim=1)
        c, x = contexts(4, dtype=torch.float32), wide_points((4,), dim, dtype=torch.float32)
        shifted = flow.conditional(shift).condition(c)
        torch.testing.assert_close(shifted.log_prob(2 + 3 * x), flow(c).log_prob(x) - dim * math.log(3.0))


def test_dense_net_names_its_outputs_and_starts_near_zero():
    net = DenseNet(3, (16, 8), {"shift": 2, "grid": (2, 5)}, input_dim=4, initial_bias={"grid": 0.5})
    c, inputs = torch.randn(6, 3), torch.randn(7, 6, 4)
    out = net(c, inputs)
    assert list(out) == ["shift", "grid"]
    assert out["shift"].shape == (7, 6, 2) and out["grid"].shape == (7, 6, 2, 5)
    # The context projection computed once and broadcast equals the per-draw one.
    per_draw = net(c.expand(7, 6, 3), inputs)
    torch.testing.assert_close(net.from_projection(net.project_context(c), inputs)["grid"], per_draw["grid"])
    assert net.layers[-1].weight.std() < 3 * LAST_LAYER_INIT_STD
    assert torch.equal(net.layers[-1].bias, torch.tensor([0.0] * 2 + [0.5] * 10))
    default = DenseNet(3, (16,), {"mean": 2}, last_layer_std=None)
    assert default.layers[-1].weight.std() > 10 * LAST_LAYER_INIT_STD  # torch's default init
    with pytest.raises(ValueError, match="initial_bias names 'scale'; the outputs are \\['shift'\\]"):
        DenseNet(3, (4,), {"shift": 1}, initial_bias={"scale": 1.0})


# ------------------------------------------------------------------ the Student-t base
@pytest.mark.parametrize(("kind", "dim"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("df", [None, 3.0], ids=["learned-df", "fixed-df"])
def test_student_t_base_log_prob_is_change_of_variables_with_the_t_density(kind, dim, df):
    from scipy import stats

    flow = build_flow(kind, dim, CONTEXT_DIM, base="student_t", df=df, hidden_dims=(16,), seed=0,
                      **({"num_couplings": 3} if kind == "realnvp" else {})).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(7), dtype=p.dtype))
    d = flow(contexts(6))
    y = wide_points((4, 6), dim)
    x = inverse(d, y.clone())
    _, log_det = forward_with_log_det(d, x.clone())
    nu = flow.base.df.detach().numpy()
    by_hand = torch.as_tensor(stats.t.logpdf(x.detach().numpy(), nu).sum(-1)) - log_det
    torch.testing.assert_close(flow(contexts(6)).log_prob(y), by_hand, atol=1e-8, rtol=1e-8)
    if df is not None:
        torch.testing.assert_close(flow.base.df, torch.full((dim,), df, dtype=torch.float64))


def test_student_t_base_integrates_to_one_and_has_heavier_tails_than_the_normal():
    t_flow, normal = perturbed_flow("affine", 1), perturbed_flow("affine", 1)
    t_flow.use_base("student_t", 2.5)
    grid = torch.linspace(-4000, 4000, 800001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        log_t, log_normal = t_flow(contexts(seed=5)).log_prob(grid), normal(contexts(seed=5)).log_prob(grid)
    assert abs(torch.trapezoid(log_t.exp(), grid[:, 0]).item() - 1) < 2e-3
    assert log_t[0] > log_normal[0] + 100 and log_t[-1] > log_normal[-1] + 100


def test_learned_df_trains_saves_and_loads(tmp_path):
    flow = build_flow("affine", 1, CONTEXT_DIM, base="student_t", hidden_dims=(16,))
    assert flow.base.df.item() == pytest.approx(10.0)
    assert "base.df_parameter" in dict(flow.named_parameters())
    # Data from a Student-t with 1.5 degrees of freedom: maximum likelihood finds them.
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    data = torch.distributions.StudentT(1.5).sample((2000, 1))
    context = torch.randn(2000, CONTEXT_DIM, generator=g)
    optimiser = torch.optim.Adam(flow.parameters(), lr=0.1)
    for _ in range(150):
        optimiser.zero_grad()
        (-flow(context).log_prob(data).mean()).backward()
        optimiser.step()
    assert flow.base.df.item() == pytest.approx(1.5, abs=0.2)
    torch.save(flow.state_dict(), tmp_path / "flow.pt")
    again = build_flow("affine", 1, CONTEXT_DIM, base="student_t", hidden_dims=(16,))
    again.load_state_dict(torch.load(tmp_path / "flow.pt"))
    torch.testing.assert_close(again.base.df, flow.base.df)


def test_student_t_base_rejects_bad_settings():
    with pytest.raises(ValueError, match=r"unknown flow base 'laplace'; choose one of \('normal', 'student_t'\)"):
        build_flow("affine", 1, CONTEXT_DIM, base="laplace")
    with pytest.raises(ValueError, match="the 'normal' base takes no df"):
        build_flow("affine", 1, CONTEXT_DIM, df=3.0)
    with pytest.raises(ValueError, match=r"df must be a finite number > 0.*got -1"):
        build_flow("spline", 1, CONTEXT_DIM, base="student_t", df=-1)
