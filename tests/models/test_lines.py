"""The lines chain: its block, the signed log1p space, BPT classes and the derived physics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM
from hypothesis import given, settings
from hypothesis import strategies as st

import galppl
from galppl import physics
from galppl.data.schema import LINE_FLUXES
from galppl.models import chain_blocks
from galppl.models.block import block_support
from galppl.models.chain import ChainModel
from galppl.models.derived import derived_quantities
from galppl.models.lines import lines_blocks
from galppl.physics import bpt_class_of_fluxes

SMALL = {"inputs": "photometry", "max_epochs": 2, "num_couplings": 4, "hidden_dim": 64, "batch_size": 256,
         "progress": False}


# ---------------------------------------------------------------------------- the block
def test_lines_blocks_is_one_realnvp_block_over_the_four_fluxes():
    (block,) = lines_blocks(num_couplings=7)
    assert block.name == "lines"
    assert block.variables == LINE_FLUXES
    assert block.kind == "realnvp" and block.dim == 4
    assert block.transform == "signed_log1p"
    assert block.flow_options == {"num_couplings": 7}
    assert block.parents == ()
    assert block.derived == ("emission_lines",)
    assert lines_blocks(parents=("core",))[0].parents == ("core",)


def test_chain_blocks_lines_and_joint():
    assert [b.name for b in chain_blocks("lines", num_couplings=3)] == ["lines"]
    joint = chain_blocks("joint", num_couplings=3)
    assert [b.name for b in joint] == ["core", "bh", "oh_detected", "oh", "lines"]
    assert joint[-1].parents == ("core",)
    assert joint[-1].flow_options["num_couplings"] == 3


def _chain(blocks=None, n=64, seed=0):
    """A small untrained chain with standardisation set from lognormal-ish fluxes."""
    blocks = blocks or lines_blocks(num_couplings=2)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    chain = ChainModel(blocks, feature_dim=3, hidden_dim=16, head_hidden_dim=16).double()
    targets = {b.name: torch.exp(3 + torch.randn(n, b.dim, generator=generator, dtype=torch.float64))
               for b in blocks if b.kind != "bernoulli"}
    for b in blocks:  # the props blocks' values inside their physical supports
        if b.kind != "bernoulli" and b.transform == "identity":
            lower, upper = block_support(b)
            targets[b.name] = lower + (upper - lower) * torch.rand(n, b.dim, generator=generator, dtype=torch.float64)
    targets.update({b.name: torch.ones(n, 1, dtype=torch.float64) for b in blocks if b.kind == "bernoulli"})
    chain.set_standardisation(torch.randn(n, 3, generator=generator, dtype=torch.float64), targets)
    return chain


# Negative, zero, tiny and huge fluxes, up to the support's ends (-5000, 1e7) and into its
# saturation zones (below -2,700 and above 5e6).
EXTREME = torch.tensor([[9e6, -50.0, -1.5, 0.0],
                        [0.0, 1e6, -50.0, -1.5],
                        [-1.5, 0.0, 6e6, -50.0],
                        [-4900.0, -0.5, 1e-8, 3.0]], dtype=torch.float64)


def test_signed_log1p_negative_zero_and_huge_fluxes_are_finite_and_round_trip(small_chain):
    chain = small_chain
    (block,) = chain.blocks
    y = chain.standardise(block, EXTREME)
    assert torch.isfinite(y).all()
    # odd and monotone: order and sign are kept
    assert torch.equal(torch.sign(y * chain.scale_lines + chain.loc_lines), torch.sign(EXTREME))
    torch.testing.assert_close(chain.unstandardise(block, y), EXTREME, rtol=1e-10, atol=1e-10)
    # the likelihood of such fluxes is finite too (the Jacobian 1 / (1 + |f|) never vanishes)
    log_prob = chain.log_prob(torch.zeros(len(EXTREME), 3, dtype=torch.float64), {"lines": EXTREME})["lines"]
    assert torch.isfinite(log_prob).all()


@pytest.fixture(scope="module")
def small_chain():
    return _chain()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-4999.0, 9.99e6, allow_nan=False), min_size=2, max_size=2))
def test_signed_log1p_is_monotone_and_invertible_everywhere(small_chain, pair):
    chain = small_chain
    (block,) = chain.blocks
    flux = torch.tensor(sorted(pair), dtype=torch.float64)[:, None].expand(2, 4)
    y = chain.standardise(block, flux)
    assert torch.isfinite(y).all()
    assert (y[1] >= y[0]).all()
    torch.testing.assert_close(chain.unstandardise(block, y), flux, rtol=1e-9, atol=1e-9)


def test_flux_draws_stay_inside_what_a_measurement_can_hold_and_typical_fluxes_are_untouched(small_chain):
    """The bounded map acts in signed log1p units: a flow pushed far into its tails draws no
    flux below -5000 or above 1e7 (galppl 0.11.0 drew -1e8), while fluxes from -2,700 to 5e6
    score exactly as without it."""
    chain = small_chain
    (block,) = chain.blocks
    lower, upper = (b.double() for b in block_support(block))
    assert lower.tolist() == [-5000.0] * 4 and upper.tolist() == [1e7] * 4
    far = torch.tensor([[-60.0, -20.0, 20.0, 60.0]], dtype=torch.float64)  # standardised, beyond any flow tail
    fluxes = chain.unstandardise(block, far)
    assert ((fluxes > lower) & (fluxes < upper)).all() and fluxes[0, 0] < -4000 and fluxes[0, 3] > 5e6
    typical = torch.tensor([[-2600.0, -10.0, 0.0, 50.0], [3.0, 1e3, 4e6, -0.5]], dtype=torch.float64)
    value_only = (torch.sign(typical) * torch.log1p(typical.abs()) - chain.loc_lines) / chain.scale_lines
    assert torch.equal(chain.standardise(block, typical), value_only)


def test_joint_chain_with_lines_conditioned_on_core_samples():
    blocks = chain_blocks("props", num_couplings=2) + lines_blocks(num_couplings=2, parents=("core",))
    chain = _chain(blocks)
    draws = chain.sample(torch.randn(5, 3, dtype=torch.float64), num_draws=7)
    assert draws["lines"].shape == (7, 5, 4) and draws["core"].shape == (7, 5, 3)
    assert torch.isfinite(draws["lines"]).all()


# ---------------------------------------------------------------------------- BPT classes
# Hand-computed against the curves. At N2 = -0.5: Kauffmann+03 gives O3 = 0.61/(-0.55) + 1.3
# = 0.191, Kewley+01 gives 0.61/(-0.97) + 1.19 = 0.561. At N2 = 0.2 (right of the Kauffmann
# asymptote at 0.05): Kewley+01 gives 0.61/(-0.27) + 1.19 = -1.069. N2 = 0.6 is right of
# the Kewley asymptote at 0.47.
BPT_CASES = [  # (N2, O3, class)
    (-0.5, 0.0, 0), (-0.5, 0.15, 0), (-0.5, 0.25, 1), (-0.5, 0.5, 1), (-0.5, 0.6, 2), (-0.5, 1.0, 2),
    (-1.2, 0.7, 0), (-1.2, 0.818, 1), (-1.2, 0.9, 2),  # K03: 0.812, K01: 0.825
    (0.2, -1.5, 1), (0.2, -1.0, 2), (0.2, 0.5, 2),
    (0.6, -2.0, 2), (0.6, 1.0, 2),
]


def _fluxes(n2, o3, halpha=100.0, hbeta=40.0):
    return halpha, hbeta, halpha * 10.0**n2, hbeta * 10.0**o3


@pytest.mark.parametrize(("n2", "o3", "expected"), BPT_CASES)
def test_bpt_class_of_hand_computed_points(n2, o3, expected):
    assert physics.bpt_class(n2, o3) == expected
    assert bpt_class_of_fluxes(*_fluxes(n2, o3)) == expected


def test_bpt_class_is_undefined_for_non_positive_or_missing_fluxes():
    good = _fluxes(-0.5, 0.0)
    for i in range(4):
        for bad in (0.0, -1.0, -50.0, np.nan):
            fluxes = list(good)
            fluxes[i] = bad
            assert bpt_class_of_fluxes(*fluxes) == -1, (i, bad)
    classes = bpt_class_of_fluxes(*(np.array(f) for f in zip(*[_fluxes(n2, o3) for n2, o3, _ in BPT_CASES])))
    assert classes.dtype == np.int8
    assert classes.tolist() == [c for _, _, c in BPT_CASES]


# ---------------------------------------------------------------------------- derived quantities
def _a_halpha_ratio(a_halpha):
    """The Balmer decrement giving A(H-alpha) = a_halpha mag (Cardelli+89, inverted by hand)."""
    return physics.BALMER_INTRINSIC * 10 ** (a_halpha * (physics.K_HBETA - physics.K_HALPHA) / (2.5 * physics.K_HALPHA))


def _flux_for_log_l(log_l, z):
    """H-alpha flux (1e-17 erg/s/cm^2) of a line of luminosity 10**log_l erg/s at redshift z."""
    d_l = FlatLambdaCDM(H0=70, Om0=0.3).luminosity_distance(z).to_value(u.cm)
    return 10**log_l / (4 * np.pi * d_l**2) / 1e-17


def _posterior(fluxes, galaxy=(10, 11, 12), extra=None):
    """A posterior Dataset from a (draw, galaxy, 4) array of line fluxes."""
    fluxes = np.asarray(fluxes, dtype=np.float32)
    coords = {"chain": [0], "draw": np.arange(fluxes.shape[0]), "galaxy": list(galaxy)}
    data = {name: (("chain", "draw", "galaxy"), fluxes[None, ..., k]) for k, name in enumerate(LINE_FLUXES)}
    for name, values in (extra or {}).items():
        data[name] = (("chain", "draw", "galaxy"), np.asarray(values, dtype=np.float32)[None])
    return xr.Dataset(data, coords=coords)


def _hand_built():
    z = np.array([0.05, 0.1, 0.03])
    # galaxy 10: decrement 2.86 exactly -> A = 0; L(Ha) = 10**41.27 erg/s -> log SFR = 0.
    ha0 = _flux_for_log_l(41.27, z[0])
    g0 = [(ha0, ha0 / 2.86, ha0 * 10**-0.5, ha0 / 2.86)] * 4
    # galaxy 11: A(Ha) = 1 mag, L(Ha) = 10**42 observed -> log SFR = 42 + 0.4 - 41.27;
    # its draws: two star-forming, one AGN, one with a negative [O III] (undefined).
    ha1 = _flux_for_log_l(42.0, z[1])
    hb1 = ha1 / _a_halpha_ratio(1.0)
    g1 = [(ha1, hb1, ha1 * 10**-0.5, hb1 * 10**0.0), (ha1, hb1, ha1 * 10**-1.2, hb1 * 10**-0.3),
          (ha1, hb1, ha1 * 10**0.6, hb1 * 10**1.0), (ha1, hb1, ha1 * 10**-0.5, -3.0)]
    # galaxy 12: unusable inputs, NaN draws.
    g2 = [(np.nan,) * 4] * 4
    return np.stack([g0, g1, g2], axis=1), z


def test_derived_quantities_values_and_units():
    fluxes, z = _hand_built()
    posterior = _posterior(fluxes)
    derived = derived_quantities(posterior, z=xr.DataArray(z, dims="galaxy", coords={"galaxy": [10, 11, 12]}))
    for name, var in derived.data_vars.items():
        assert var.dims == ("chain", "draw", "galaxy"), name
        assert {"units", "description"} <= set(var.attrs), name
    assert derived["log_sfr_halpha"].attrs["units"] == "dex(Msun yr-1)"
    assert "fibre" in derived["log_sfr_halpha"].attrs["description"]
    assert derived["a_halpha"].attrs["units"] == "mag"
    assert derived["balmer_decrement"].attrs["units"] == ""
    assert derived["bpt_class"].dtype == np.int8

    g0, g1, g2 = (derived.sel(galaxy=g, chain=0) for g in (10, 11, 12))
    np.testing.assert_allclose(g0["balmer_decrement"], 2.86, rtol=1e-6)
    np.testing.assert_allclose(g0["a_halpha"], 0.0, atol=1e-6)
    np.testing.assert_allclose(g0["log_sfr_halpha"], 0.0, atol=1e-5)
    np.testing.assert_allclose(g1["a_halpha"], 1.0, atol=1e-5)
    np.testing.assert_allclose(g1["log_sfr_halpha"], 42.0 + 0.4 - 41.27, atol=1e-5)

    assert g0["bpt_class"].values.tolist() == [0, 0, 0, 0]
    assert g1["bpt_class"].values.tolist() == [0, 0, 2, -1]
    assert g2["bpt_class"].values.tolist() == [-1] * 4
    expected = {"star_forming": (1.0, 0.5), "composite": (0.0, 0.0), "agn": (0.0, 0.25), "undefined": (0.0, 0.25)}
    for name, (p0, p1) in expected.items():
        np.testing.assert_allclose(g0[f"p_bpt_{name}"], p0)  # constant along draws
        np.testing.assert_allclose(g1[f"p_bpt_{name}"], p1)
        assert np.isnan(g2[f"p_bpt_{name}"]).all()
    for name in ("balmer_decrement", "a_halpha", "log_sfr_halpha"):
        assert np.isnan(g2[name]).all()


def test_probabilities_sum_to_one_over_chains_and_draws():
    rng = np.random.default_rng(1)
    fluxes = rng.normal(50, 40, size=(3, 50, 6, 4))  # (chain, draw, galaxy, line), many negative
    posterior = xr.Dataset({name: (("chain", "draw", "galaxy"), fluxes[..., k]) for k, name in enumerate(LINE_FLUXES)},
                           coords={"chain": [0, 1, 2], "draw": np.arange(50), "galaxy": np.arange(6)})
    derived = derived_quantities(posterior)
    total = sum(derived[f"p_bpt_{c}"] for c in (*physics.BPT_CLASSES, "undefined"))
    np.testing.assert_allclose(total, 1.0, rtol=1e-6)
    undefined = (fluxes <= 0).any(-1).mean(axis=(0, 1))
    np.testing.assert_allclose(derived["p_bpt_undefined"].isel(chain=2, draw=7), undefined, rtol=1e-6)


def test_derived_quantities_take_z_from_the_posterior_or_skip_the_sfr():
    fluxes, z = _hand_built()
    with_z = _posterior(fluxes, extra={"z": np.broadcast_to(z, fluxes.shape[:2])})
    derived = derived_quantities(with_z)
    np.testing.assert_allclose(derived["log_sfr_halpha"].sel(galaxy=10), 0.0, atol=1e-5)
    assert "posterior z" in derived["log_sfr_halpha"].attrs["description"]

    without = derived_quantities(_posterior(fluxes))
    assert "log_sfr_halpha" not in without
    assert "no z" in without.attrs["log_sfr_halpha"]


def test_derived_quantities_name_bad_input():
    fluxes, z = _hand_built()
    posterior = _posterior(fluxes)
    with pytest.raises(ValueError, match="flux_oiii"):
        derived_quantities(posterior.drop_vars("flux_oiii"))
    with pytest.raises(ValueError, match="lacks galaxies"):
        derived_quantities(posterior, z=xr.DataArray(z[:2], dims="galaxy", coords={"galaxy": [10, 11]}))
    with pytest.raises(ValueError, match="dims"):
        derived_quantities(posterior, z=z)


# ---------------------------------------------------------------------------- fits
@pytest.fixture(scope="module")
def catalog():
    from galppl.data import simulate

    return simulate(2000, seed=1, image_size=None)


@pytest.fixture(scope="module")
def lines_model(catalog):
    torch.set_num_threads(1)
    return galppl.fit("lines", catalog, **SMALL)


def test_lines_fit_predicts_without_nan_and_save_load_round_trips(lines_model, catalog, tmp_path):
    test = catalog.sel(galaxy=lines_model.split["test"][:100])
    idata = lines_model.predict(test, num_samples=50, seed=3)
    posterior = idata.posterior
    for name in LINE_FLUXES:
        assert posterior[name].dims == ("chain", "draw", "galaxy")
        assert np.isfinite(posterior[name]).all(), name
        assert posterior[name].attrs["units"] == "1e-17 erg s-1 cm-2"
    for name in ("bpt_class", "p_bpt_agn", "balmer_decrement", "a_halpha", "log_sfr_halpha"):
        assert name in posterior
    assert np.isfinite(posterior["p_bpt_star_forming"]).all()
    # the lines model has no z draws: the SFR uses the catalog's z
    assert "the given z" in posterior["log_sfr_halpha"].attrs["description"]
    assert posterior["log_sfr_halpha"].attrs["units"] == "dex(Msun yr-1)"
    assert np.isfinite(posterior["log_sfr_halpha"]).any()
    assert list(idata.observed_data.data_vars) == list(LINE_FLUXES)

    path = lines_model.save(tmp_path / "lines")
    loaded = galppl.load(path)
    again = loaded.predict(test, num_samples=50, seed=3).posterior
    xr.testing.assert_identical(again, posterior)
    different = loaded.predict(test, num_samples=50, seed=4).posterior
    assert not np.array_equal(different["flux_halpha"].values, posterior["flux_halpha"].values)


def test_joint_fit_predicts_props_lines_and_derived_in_one_inference_data(catalog):
    torch.set_num_threads(1)
    joint = galppl.fit("joint", catalog, **SMALL)
    test = catalog.sel(galaxy=joint.split["test"][:60])
    idata = joint.predict(test, num_samples=40)
    posterior = idata.posterior
    for name in ("log_mstar", "log_sfr", "z", "log_mbh", "oh", "p_oh_detected", *LINE_FLUXES,
                 "p_bpt_composite", "a_halpha", "log_sfr_halpha"):
        assert name in posterior, name
        assert posterior[name].dims == ("chain", "draw", "galaxy")
    for name in ("log_mstar", *LINE_FLUXES):
        assert np.isfinite(posterior[name]).all(), name
    # the SFR uses the joint model's own z draws
    assert "posterior z" in posterior["log_sfr_halpha"].attrs["description"]
