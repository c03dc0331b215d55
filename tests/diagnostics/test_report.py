import re

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

import galppl.diagnostics as gd
from galppl.diagnostics.synthetic import synthetic_idata


def _links(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def _section(md: str, heading: str) -> str:
    """The text of one "## heading" section of a report."""
    return md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_report_writes_markdown_and_figures(tmp_path):
    idata = synthetic_idata(120, 60, scale=0.6, seed=21)
    ensemble = [synthetic_idata(120, 60, seed=30 + k) for k in range(2)]
    names = ["log_mstar", "z", "oh"]  # three of five parameters keep the figures (and the test) small
    path = gd.report(idata, tmp_path / "out", ensemble=ensemble, title="mock props", var_names=names, band_trials=100)
    assert path == tmp_path / "out" / "report.md"
    md = path.read_text()
    assert md.startswith("# mock props")
    links = _links(md)
    assert set(links) == {
        "pred_vs_true.png", "pit_ecdf.png", "coverage.png", "conditional_coverage.png", "tarp.png", "sbc.png",
        "reliability.png", "uncertainty.png",
    }
    for name in links:
        data = (path.parent / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert "Skipped" not in md
    assert "label: **SBC**" in md
    # oh has a truth only where detected (~2/3 of galaxies): TARP leaves it out and says so.
    assert "Joint coverage of log_mstar, z on 120 galaxies" in md
    assert re.search(r"Left out, with a truth for fewer than 80% of the galaxies: oh \(\d+%\)", md)
    # Over-confident input: the coverage table's 68% column is well below 0.68.
    row = next(line for line in md.splitlines() if line.startswith("| log_mstar | 120 |") and "dev" not in line)
    assert float(row.split("|")[3]) < 0.55
    # Conditional calibration: a table per conditioning variable, four quartile bins of 30 galaxies.
    conditional = _section(md, "Conditional calibration")
    for by in ("r", "z", "log_mstar", "posterior sd"):
        assert f"By **{by}**:" in conditional
    assert len(re.findall(r"^\| log_mstar \| [-\d.]+ to [-\d.]+ \| 30 \|", conditional, re.M)) == 16
    # Calibration goals: the over-confident posteriors fail the per-bin coverage goal.
    goals = _section(md, "Calibration goals")
    assert re.search(r"^\| coverage_per_bin \| log_mstar \| [\d.]+ \| 0.02 \| [\d.]+ \| \*\*FAIL\*\* \|", goals, re.M)
    assert re.search(r"^\| tarp_atc \| log_mstar\+z \|", goals, re.M)
    assert "All goals met: **no**." in goals


def test_report_skips_missing_optional_parts(tmp_path):
    # A lines fit (no detection head), no ensemble, one parameter (no joint TARP).
    lines = synthetic_idata(80, 40, kind="lines", simulated=False, seed=22)
    # Two galaxies with unusable inputs: NaN draws, flagged in constant_data as the models do.
    lines.posterior["flux_halpha"][:, :, :2] = np.nan
    lines.constant_data["usable"] = ("galaxy", np.arange(80) >= 2)
    md = gd.report(lines, tmp_path, var_names=["flux_halpha"], band_trials=100).read_text()
    assert "2 galaxies have unusable inputs" in md
    assert "| flux_halpha | 1e-17 erg s-1 cm-2 | 78 | 2 |" in md
    assert "held-out PIT (not SBC)" in md
    assert "_Skipped: detection needs group 'observed_data' with variable 'oh_detected'" in md
    assert "_Skipped: no ensemble given" in md
    assert "_Skipped: TARP is a joint test and needs at least two parameters" in md
    assert "reliability.png" not in md and not (tmp_path / "reliability.png").exists()
    # a lines fit also gets the BPT section (its class probabilities and diagram)
    assert set(_links(md)) == {"pred_vs_true.png", "pit_ecdf.png", "coverage.png", "conditional_coverage.png", "sbc.png",
                               "bpt_probabilities.png", "bpt_diagram.png"}
    # A lines fit has no redshift or stellar mass: binned on r only, with a note naming both.
    conditional = _section(md, "Conditional calibration")
    assert "_Not binned on z: conditional_calibration: by='z' is not a variable" in conditional
    assert "_Not binned on log_mstar: " in conditional and "By **r**:" in conditional and "By **z**" not in conditional
    goals = _section(md, "Calibration goals")
    assert re.search(r"^\| pit_mean \| flux_halpha \|", goals, re.M)
    assert "_Not checked: tarp_atc: TARP is a joint test" in goals
    for name in _links(md):
        assert (tmp_path / name).exists()


def test_report_of_a_joint_fit_checks_properties_and_line_fluxes(tmp_path):
    props = synthetic_idata(100, 40, seed=23)
    lines = synthetic_idata(100, 40, kind="lines", seed=24)
    joint = props.copy()
    for group in ("posterior", "observed_data"):
        joint[group] = xr.merge([props[group], lines[group]])
    md = gd.report(joint, tmp_path, var_names=["log_mstar", "z", "flux_halpha", "flux_nii"], band_trials=100).read_text()
    conditional = _section(md, "Conditional calibration")
    assert "Not binned" not in conditional
    assert len(re.findall(r"^\| flux_nii \| ", conditional, re.M)) == 4 * 4
    goals = _section(md, "Calibration goals")
    for goal in ("sbc_ecdf_in_band", "pit_mean", "coverage_per_bin"):
        assert len(re.findall(rf"^\| {goal} \| (log_mstar|z|flux_halpha|flux_nii) \|", goals, re.M)) == 4
    assert re.search(r"^\| tarp_atc \| log_mstar\+z\+flux_halpha\+flux_nii \|", goals, re.M)


def test_pred_vs_true_draws_skewed_posteriors():
    # 90% of the draws at 0 and 10% at 100: the mean (10) lies outside the 16-84% interval.
    idata = synthetic_idata(30, 50, kind="lines", seed=5)
    draws = np.zeros((1, 50, 30))
    draws[:, :5] = 100.0
    idata.posterior["flux_nii"] = (("chain", "draw", "galaxy"), draws)
    fig = gd.plot_pred_vs_true(idata, ["flux_nii"])
    points = fig.axes[0].get_lines()[0].get_ydata()
    np.testing.assert_allclose(points, 10.0)


def test_plots_return_figures_and_take_style_kwargs(calibrated):
    figs = [
        gd.plot_pred_vs_true(calibrated, ["log_mstar", "oh"], color="C2"),
        gd.plot_coverage(calibrated, ["z"], lw=3),
        gd.plot_tarp(calibrated, ["log_mstar", "z"], color="k"),
        gd.plot_pit_ecdf(gd.pit(calibrated, "log_sfr"), num_trials=100, color="C4"),
    ]
    assert all(isinstance(f, Figure) for f in figs)
    assert "$R^2$=" in figs[0].axes[0].get_title()
    assert any(line.get_linewidth() == 3 for line in figs[1].axes[0].get_lines())
    assert any(line.get_color() == "C4" for line in figs[3].axes[0].get_lines())
    assert np.isclose(figs[2].axes[0].get_lines()[-1].get_ydata()[-1], 1.0)
