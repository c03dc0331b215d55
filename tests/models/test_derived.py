"""Derived quantities declared by blocks: the registry and ``add_derived``."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from galppl.data.schema import LINE_FLUXES
from galppl.models import chain_blocks
from galppl.models.chain import Block
from galppl.models.derived import DERIVED, add_derived, derived_quantities


def _posterior(with_z: bool = False, galaxies: int = 4, draws: int = 20) -> xr.Dataset:
    rng = np.random.default_rng(2)
    dims = ("chain", "draw", "galaxy")
    data = {name: (dims, np.exp(rng.normal(3, 1, size=(1, draws, galaxies)))) for name in LINE_FLUXES}
    if with_z:
        data["z"] = (dims, rng.uniform(0.05, 0.15, size=(1, draws, galaxies)))
    return xr.Dataset(data, coords={"chain": [0], "draw": np.arange(draws), "galaxy": np.arange(galaxies) + 7})


def _catalog(galaxies: int = 4) -> xr.Dataset:
    return xr.Dataset({"z": ("galaxy", np.linspace(0.05, 0.2, galaxies))}, coords={"galaxy": np.arange(galaxies) + 7})


def test_the_lines_blocks_derived_quantities_are_applied_with_the_catalog_z():
    posterior, catalog = _posterior(), _catalog()
    blocks = chain_blocks("lines", num_couplings=2)
    out = add_derived(posterior, blocks, catalog)
    expected = derived_quantities(posterior, z=catalog["z"])
    for name in ("bpt_class", "p_bpt_agn", "balmer_decrement", "a_halpha", "log_sfr_halpha"):
        xr.testing.assert_identical(out[name], expected[name])
    assert "the given z" in out["log_sfr_halpha"].attrs["description"]
    for name in LINE_FLUXES:  # the draws themselves are untouched
        xr.testing.assert_identical(out[name], posterior[name])


def test_a_joint_posterior_uses_its_own_z_draws():
    posterior = _posterior(with_z=True)
    out = add_derived(posterior, chain_blocks("joint", num_couplings=2), _catalog())
    assert "posterior z" in out["log_sfr_halpha"].attrs["description"]
    xr.testing.assert_identical(out["log_sfr_halpha"], derived_quantities(posterior)["log_sfr_halpha"])


def test_a_chain_without_derived_quantities_adds_nothing():
    posterior = _posterior(with_z=True)
    blocks = chain_blocks("props", num_couplings=2)
    assert all(block.derived == () for block in blocks)
    xr.testing.assert_identical(add_derived(posterior, blocks, _catalog()), posterior)


def test_an_unknown_name_is_refused_naming_the_block_and_the_registered_names():
    blocks = (Block("lines", LINE_FLUXES, derived=("emission_lines",)),
              Block("extra", ("log_mstar", "log_sfr"), derived=("emision_lines",)))
    with pytest.raises(ValueError, match=r"block 'extra'.*'emision_lines'.*registered names: \['emission_lines'\]"):
        add_derived(_posterior(), blocks, _catalog())
    assert sorted(DERIVED) == ["emission_lines"]
