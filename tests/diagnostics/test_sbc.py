import numpy as np
import pytest

from galppl.diagnostics import plot_sbc, sbc
from galppl.diagnostics.sbc import rank_chi2, rank_statistics
from galppl.diagnostics.synthetic import synthetic_idata


def test_sbc_of_calibrated_posteriors_is_uniform(calibrated):
    ds = sbc(calibrated)
    assert ds.attrs["label"] == "SBC"
    assert ds.attrs["n_draws"] == calibrated.posterior.sizes["draw"]
    r = ds["rank"].values
    ok = np.isfinite(r)
    assert r[ok].min() >= 0 and r[ok].max() <= ds.attrs["n_draws"] and np.all(r[ok] == np.round(r[ok]))
    assert (ds["n"].values == ok.sum(axis=1)).all()
    assert (ds["chi2_pvalue"] > 0.01).all(), ds["chi2_pvalue"].values
    assert (ds["ks_pvalue"] > 0.01).all()


@pytest.mark.parametrize("which", ["overconfident", "underconfident"])
def test_sbc_rejects_miscalibrated_posteriors(request, which):
    ds = sbc(request.getfixturevalue(which))
    assert (ds["chi2_pvalue"] < 1e-6).all(), ds["chi2_pvalue"].values
    assert (ds["ks_pvalue"] < 1e-3).all()
    assert (ds["ecdf_in_band"] == 0).all()


def test_sbc_label_and_thinning():
    idata = synthetic_idata(60, 40, n_chains=2, simulated=False, seed=4)
    ds = sbc(idata, ["log_mstar"], thin=4)
    assert ds.attrs["label"] == "held-out PIT (not SBC)"
    assert ds.attrs["n_draws"] == 2 * 10
    with pytest.raises(ValueError, match="thin must be a positive integer"):
        sbc(idata, thin=0)


def test_rank_chi2_is_exact_for_uneven_bins():
    # 11 rank values in 4 bins hold 3, 3, 3, 2 values: each value once is exactly as expected.
    chi2, p = rank_chi2(np.arange(11.0), n_draws=10, bins=4)
    assert chi2 == pytest.approx(0.0) and p == pytest.approx(1.0)
    # All ranks at the top: strongly rejected.
    _, p = rank_chi2(np.full(100, 10.0), n_draws=10, bins=4)
    assert p < 1e-10


def test_rank_statistics_counts_and_ties():
    draws = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    ranks = rank_statistics(draws, np.array([2.5, 5.0]), np.random.default_rng(0))
    assert ranks[0] == 2
    assert 0 <= ranks[1] <= 4
    all_ties = [rank_statistics(draws[1:], np.array([5.0]), np.random.default_rng(s))[0] for s in range(200)]
    assert set(all_ties) == {0.0, 1.0, 2.0, 3.0, 4.0}


def test_plot_sbc_is_labelled(overconfident):
    ds = sbc(overconfident, ["log_mstar", "z"])
    fig = plot_sbc(ds, num_trials=100, color="C3")
    assert "SBC" in fig._suptitle.get_text()
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    assert any(line.get_color() == "C3" for line in fig.axes[0].get_lines())
