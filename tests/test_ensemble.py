"""galppl.fit(..., ensemble=k) and EnsemblePosterior: pooled draws, densities, the uncertainty split, save/load."""

import json

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

import galppl
from galppl import diagnostics
from galppl.data import simulate
from galppl.ensemble import EnsemblePosterior, member_posteriors

QUICK = dict(max_epochs=3, num_couplings=2, hidden_dim=32, batch_size=128, progress=False)


@pytest.fixture(scope="module")
def catalog():
    return simulate(800, seed=11, image_size=None, cache=False)


@pytest.fixture(scope="module")
def ensemble(catalog):
    return galppl.fit("props", catalog, inputs="photometry", ensemble=2, seed=3, **QUICK)


@pytest.fixture(scope="module")
def test_galaxies(catalog, ensemble):
    return catalog.sel(galaxy=ensemble.split["test"][:40])


def test_members_share_one_split_and_featurizer_and_differ_in_seed(ensemble):
    assert isinstance(ensemble, EnsemblePosterior) and len(ensemble) == 2
    first, second = ensemble.members
    assert ensemble.seeds == [3, 4] and second.featurizer is first.featurizer
    assert first.split == second.split
    assert first.config.data.split_seed == second.config.data.split_seed == 3
    assert not torch.equal(first.chain.representation[0].weight, second.chain.representation[0].weight)


def test_pooled_draws_are_the_members_draws_split_evenly(ensemble, test_galaxies):
    idata = ensemble.predict(test_galaxies, num_samples=31, seed=5)
    post = idata.posterior
    assert post["z"].shape == (1, 31, 40) and post["z"].dims == ("chain", "draw", "galaxy")
    np.testing.assert_array_equal(post["draw"].values, np.arange(31))
    np.testing.assert_array_equal(post["member"].values, [0] * 16 + [1] * 15)
    assert post.attrs["ensemble_members"] == 2
    # Member i draws with seed 5 * k + i: distinct for every (seed, member) pair.
    for i, (member, rows) in enumerate(zip(ensemble.members, (slice(0, 16), slice(16, 31)))):
        own = member.predict(test_galaxies, num_samples=rows.stop - rows.start, seed=5 * 2 + i)
        for name in own.posterior.data_vars:
            np.testing.assert_array_equal(post[name].values[:, rows], own.posterior[name].values)
    own = ensemble.members[0].predict(test_galaxies, num_samples=16, seed=10)
    for group in ("observed_data", "constant_data"):
        assert idata[group].identical(own[group])
    raw = ensemble.sample(test_galaxies, 31, seed=5)
    np.testing.assert_array_equal(raw["z"], post["z"].values[0])
    means = post["z"].groupby("member").mean("draw")
    assert means.dims == ("chain", "member", "galaxy") and not np.allclose(means[0, 0], means[0, 1])


def test_log_prob_is_the_log_of_the_mean_member_density(ensemble, test_galaxies):
    lp = ensemble.log_prob(test_galaxies, num_draws=8, seed=1)
    parts = [member.log_prob(test_galaxies, num_draws=8, seed=1) for member in ensemble.members]
    for name in parts[0].data_vars:
        expected = logsumexp(np.stack([p[name].values for p in parts]), axis=0) - np.log(2)
        np.testing.assert_allclose(lp[name].values, expected)
        assert lp[name].attrs["units"] == "nats"
    assert np.isfinite(lp["core"].values).all()


def test_uncertainty_split_in_one_call(ensemble, test_galaxies):
    table = ensemble.uncertainty_split(test_galaxies, num_samples=31, seed=2)
    assert table.attrs["n_models"] == 2 and {"z", "log_mstar"} <= set(table["parameter"].values.tolist())
    np.testing.assert_allclose(table["frac_ale"] + table["frac_epi"], 1.0)
    assert (table["sigma_epi"] > 0).all()
    idata = ensemble.predict(test_galaxies, num_samples=31, seed=2)
    members = member_posteriors(idata)  # 16 and 15 draws: both keep 15
    assert [m.posterior.sizes["draw"] for m in members] == [15, 15]
    assert table.identical(diagnostics.uncertainty_split(members))
    assert table.identical(ensemble.uncertainty_split(idata))


def test_save_load_round_trip_gives_identical_draws(tmp_path, ensemble, test_galaxies):
    path = ensemble.save(tmp_path / "ensemble")
    manifest = json.loads((path / "config.json").read_text())
    assert manifest["kind"] == "ensemble" and manifest["members"] == ["member_0", "member_1"]
    assert manifest["seeds"] == [3, 4]
    loaded = galppl.load(path)
    assert isinstance(loaded, EnsemblePosterior) and loaded.seeds == [3, 4]
    assert loaded.members[1].featurizer is loaded.members[0].featurizer
    a = ensemble.predict(test_galaxies, num_samples=20, seed=7)
    b = loaded.predict(test_galaxies, num_samples=20, seed=7)
    for name in a.posterior.data_vars:
        np.testing.assert_array_equal(a.posterior[name].values, b.posterior[name].values)


def test_ensemble_errors(catalog, ensemble, test_galaxies):
    with pytest.raises(ValueError, match=r"ensemble must be an integer >= 2 \(the number of members\), got 1"):
        galppl.fit("props", catalog, inputs="photometry", ensemble=1, **QUICK)
    with pytest.raises(ValueError, match="at least 2 members, got 1"):
        EnsemblePosterior(ensemble.members[:1])
    with pytest.raises(ValueError, match=r"num_samples must be an integer >= 2"):
        ensemble.predict(test_galaxies, num_samples=1)
    other = galppl.fit("props", catalog, inputs="photometry", seed=9, **QUICK)  # its own split and input density
    with pytest.raises(ValueError, match="member 1 reads other input features than member 0"):
        EnsemblePosterior([ensemble.members[0], other])
    with pytest.raises(ValueError, match="no 'member' coordinate"):
        member_posteriors(other.predict(test_galaxies, num_samples=4))
