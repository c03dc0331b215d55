"""The BPT diagnostics and emission-line figures: per-galaxy BPT summaries, class-probability
reliability, the figures and the report's BPT section."""

from __future__ import annotations

import io

import arviz as az
import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

import galppl.diagnostics as gd
from galppl.data.schema import LINE_FLUXES
from galppl.diagnostics import (
    bpt_probabilities,
    bpt_reliability,
    class_reliability,
    mean_bpt_ratios,
    plot_bpt,
    plot_lines_corner,
    plot_lines_pred_vs_true,
    plot_reliability,
)
from galppl.diagnostics.lines_plots import signed_log1p
from galppl.diagnostics.synthetic import synthetic_idata
from galppl.models.derived import derived_quantities
from galppl.physics import BPT_OUTCOMES


@pytest.fixture(scope="module")
def idata():
    """30 draws for 25 galaxies: lognormal fluxes around a truth, some negative [O III] draws."""
    rng = np.random.default_rng(0)
    galaxy = np.arange(100, 125)
    truth = np.exp(rng.normal(4, 1, size=(25, 4)))
    truth[:5, 3] = -2.0  # measured [O III] below zero: undefined truth class
    draws = truth[None] * np.exp(rng.normal(0, 0.3, size=(30, 25, 4)))
    draws[:, :5, 3] = rng.normal(0, 5, size=(30, 5))
    dims = ("chain", "draw", "galaxy")
    posterior = xr.Dataset({name: (dims, draws[None, ..., k]) for k, name in enumerate(LINE_FLUXES)},
                           coords={"chain": [0], "draw": np.arange(30), "galaxy": galaxy})
    posterior = posterior.merge(derived_quantities(posterior))
    observed = xr.Dataset({name: ("galaxy", truth[:, k]) for k, name in enumerate(LINE_FLUXES)},
                          coords={"galaxy": galaxy})
    return az.InferenceData(posterior=posterior, observed_data=observed)


def _renders(fig):
    assert isinstance(fig, Figure)
    fig.savefig(io.BytesIO(), format="png", dpi=40)


def test_bpt_probabilities_are_the_draw_fractions(idata):
    p = bpt_probabilities(idata.posterior)
    assert p.dims == ("galaxy", "bpt_class")
    assert list(p["bpt_class"].values) == list(BPT_OUTCOMES)
    np.testing.assert_allclose(p.sum("bpt_class"), 1.0, rtol=1e-6)
    classes = idata.posterior["bpt_class"].values[0]
    np.testing.assert_allclose(p.sel(bpt_class="undefined"), (classes == -1).mean(0), rtol=1e-6)
    # the same from the bare line draws (p_bpt_* recomputed)
    bare = idata.posterior[list(LINE_FLUXES)]
    xr.testing.assert_allclose(bpt_probabilities(bare), p)


def test_mean_bpt_ratios_average_only_defined_draws(idata):
    means = mean_bpt_ratios(idata.posterior)
    post = idata.posterior.isel(chain=0)
    g = 110  # all draws positive
    expected = np.mean(np.log10(post["flux_nii"].sel(galaxy=g) / post["flux_halpha"].sel(galaxy=g)))
    np.testing.assert_allclose(means["n2"].sel(galaxy=g), expected, rtol=1e-6)
    assert float(means["defined_fraction"].sel(galaxy=g)) == 1.0
    negative = (post["flux_oiii"].sel(galaxy=100) <= 0).mean()
    np.testing.assert_allclose(means["defined_fraction"].sel(galaxy=100), 1 - negative)


def test_class_reliability_hand_computed():
    p = np.array([[1.0, 0.0, 0.0, 0.0],
                  [0.0, 1.0, 0.0, 0.0],
                  [0.5, 0.5, 0.0, 0.0],
                  [np.nan] * 4])
    outcome = np.array([0, 2, -1, 0])  # -1: undefined, the last column
    table = class_reliability(p, outcome, bins=2)
    # Brier: 0, then (1 + 1), then (0.25 + 0.25 + 1); the NaN galaxy left out
    assert table["brier"].item() == pytest.approx((0 + 2 + 1.5) / 3)
    assert table["n"].item() == 3
    assert table["n_missing"].item() == 1
    assert table["bin_count"].values.tolist() == [8, 4]  # edges 0, 0.5, 1: the 8 zeros low, the 1s and 0.5s high
    # high bin: p = 1, 1, 0.5, 0.5 with outcomes 1, 0, 0, 0
    assert table["observed_frequency"].values[1] == pytest.approx(0.25)
    assert table["mean_predicted"].values[1] == pytest.approx(0.75)


def test_figures_render(idata):
    _renders(plot_bpt(idata, s=10))
    _renders(plot_lines_pred_vs_true(idata, max_errorbars=5))
    _renders(plot_lines_corner(idata, 103, bins=10))
    _renders(plot_lines_corner(idata, 103, log_space=False))
    table = class_reliability(bpt_probabilities(idata.posterior).values, np.zeros(25, int))
    _renders(plot_reliability({"galppl": table, "from the InferenceData": bpt_reliability(idata)}))
    _renders(plot_reliability(bpt_reliability(idata)))


def test_figures_name_bad_input(idata):
    with pytest.raises(ValueError, match="galaxy 7"):
        plot_lines_corner(idata, 7)
    with pytest.raises(ValueError, match="flux_nii"):
        plot_bpt(idata, truth=idata.observed_data.drop_vars("flux_nii"))


def test_signed_log1p_matches_the_chain_transform():
    import torch

    from galppl.models.chain import VALUE_TRANSFORMS

    x = np.array([-1e6, -50.0, -1.5, 0.0, 0.3, 1e6])
    forward = VALUE_TRANSFORMS["signed_log1p"]
    np.testing.assert_allclose(signed_log1p(x), forward(torch.tensor(x)).numpy())


def test_corner_axes_keep_a_truth_far_in_the_tail(idata):
    far = idata.observed_data.copy()
    far["flux_halpha"] = far["flux_halpha"] * 0 + 1e6  # far above every draw
    fig = plot_lines_corner(idata, 110, truth=far)
    axes = fig.axes
    n = len(LINE_FLUXES)
    low, high = axes[0].get_xlim()  # H-alpha marginal
    assert low < signed_log1p(1e6) < high
    low, high = axes[n].get_xlim()  # H-beta vs H-alpha
    assert low < signed_log1p(1e6) < high


def test_bpt_reliability_scores_the_class_of_the_true_fluxes(idata):
    table = bpt_reliability(idata, bins=4)
    outcome = _true_classes(idata)
    assert (outcome[:5] == -1).all()  # the negative true [O III]: undefined, the last column
    expected = class_reliability(bpt_probabilities(idata.posterior).values, outcome, bins=4)
    xr.testing.assert_identical(table.drop_attrs(), expected.drop_attrs())
    assert table["n"].item() == 25 and table.attrs["variable"] == "BPT class"
    # galaxies without all four true fluxes are left out, not scored as "undefined"
    partial = idata.observed_data.copy()
    partial["flux_hbeta"] = partial["flux_hbeta"].where(partial["galaxy"] != 110)
    assert bpt_reliability(idata, partial, bins=4)["n_missing"].item() == 1


def _true_classes(idata):
    from galppl.physics import bpt_class_of_fluxes

    return bpt_class_of_fluxes(*(idata.observed_data[name].values for name in LINE_FLUXES))


def _links(md: str) -> set[str]:
    import re

    return set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md))


def test_report_has_a_bpt_section_for_line_draws_and_none_for_props(tmp_path):
    lines = synthetic_idata(60, 30, kind="lines", seed=3)
    md = gd.report(lines, tmp_path / "lines", var_names=["flux_halpha"], band_trials=50).read_text()
    assert "## BPT classes" in md
    assert {"bpt_probabilities.png", "bpt_diagram.png"} <= _links(md)
    row = next(line for line in md.splitlines() if line.startswith("| 60 | 0 |"))
    assert 0.0 <= float(row.split("|")[3]) <= 2.0  # the multi-class Brier score
    for name in ("bpt_probabilities.png", "bpt_diagram.png"):
        assert (tmp_path / "lines" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    props = synthetic_idata(60, 30, seed=4)
    md = gd.report(props, tmp_path / "props", var_names=["log_mstar"], band_trials=50).read_text()
    assert "BPT" not in md
    assert not list((tmp_path / "props").glob("bpt_*.png"))


def test_report_skips_the_bpt_section_without_true_line_fluxes(tmp_path):
    lines = synthetic_idata(40, 20, kind="lines", seed=5)
    del lines.observed_data["flux_nii"]
    md = gd.report(lines, tmp_path, var_names=["flux_halpha"], band_trials=50).read_text()
    assert "## BPT classes" in md
    assert "_Skipped: the truth lacks ['flux_nii']" in md
