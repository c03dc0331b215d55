import arviz as az
import numpy as np
import pytest
import xarray as xr

from galppl.diagnostics import plot_uncertainty, uncertainty_split

K, G, S = 5, 300, 300
SIG_ALE = {"a": 0.1, "b": 2.0}
SIG_EPI = {"a": 0.3, "b": 0.5}


def _ensemble(seed=0, galaxies=None):
    rng = np.random.default_rng(seed)
    galaxies = np.arange(G) if galaxies is None else galaxies
    base = {k: rng.normal(0, 5, G) for k in SIG_ALE}
    members = []
    for _ in range(K):
        post = {}
        for k in SIG_ALE:
            means = base[k] + rng.normal(0, SIG_EPI[k], G)  # model disagreement
            draws = rng.normal(means, SIG_ALE[k], size=(1, S, G))  # within-model spread
            post[k] = (("chain", "draw", "galaxy"), draws, {"units": "dex"})
        members.append(az.InferenceData(posterior=xr.Dataset(post, coords={"galaxy": galaxies})))
    return members


def test_uncertainty_split_recovers_known_spreads():
    ens = _ensemble()
    ds = uncertainty_split(ens)
    assert ds.attrs == {"n_models": K, "n_galaxies": G}
    for k in SIG_ALE:
        row = ds.sel(parameter=k)
        np.testing.assert_allclose(float(row["sigma_ale"]), SIG_ALE[k], rtol=0.02)
        # ddof=0 across K models: E[var] = (K-1)/K sigma_epi^2.
        np.testing.assert_allclose(float(row["sigma_epi"]), SIG_EPI[k] * np.sqrt((K - 1) / K), rtol=0.05)
        np.testing.assert_allclose(float(row["frac_ale"] + row["frac_epi"]), 1.0)
    assert float(ds["frac_epi"].sel(parameter="a")) > 0.8 > float(ds["frac_epi"].sel(parameter="b"))


def test_total_is_the_variance_of_the_pooled_ensemble():
    ens = _ensemble(seed=1)
    ds = uncertainty_split(ens, "a")
    pooled = np.concatenate([e.posterior["a"].values.reshape(-1, G) for e in ens])  # (K*S, G)
    np.testing.assert_allclose(float(ds["sigma_total"].squeeze()) ** 2, pooled.var(axis=0).mean(), rtol=1e-10)


def test_uncertainty_split_rejects_mismatched_ensembles():
    ens = _ensemble()
    other = _ensemble(galaxies=np.arange(G) + 1)[0]
    with pytest.raises(ValueError, match=r"idatas\[2\] has galaxies that differ"):
        uncertainty_split([ens[0], ens[1], other])
    with pytest.raises(ValueError, match="at least 2 fits"):
        uncertainty_split(ens[:1])
    with pytest.raises(ValueError, match=r"idatas\[1\]: uncertainty_split needs group 'posterior' with variable 'c'"):
        uncertainty_split([ens[0].map(lambda d: d.assign(c=d["a"]), groups="posterior"), ens[1]], ["a", "c"])


def test_plot_uncertainty():
    fig = plot_uncertainty(uncertainty_split(_ensemble()[:2]))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b"]
