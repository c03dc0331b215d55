"""One Markdown report with every diagnostic's table and figure.

`report` writes ``report.md`` and PNG figures (embedded by relative path) into a folder.
Sections whose inputs are absent (no detection head in a lines model, no ensemble, fewer than
two parameters for TARP) are skipped with a note saying why, never silently. The BPT section
(class probabilities against the truth's class, the BPT diagram) belongs to models with line
draws (lines, joint) and appears only for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from ._checks import DiagnosticsError, flagged_out_of_distribution, is_simulated, require, resolve_var_names
from .accuracy import accuracy
from .bpt import bpt_reliability, has_line_draws
from .calibration import TARP_MIN_TRUTH_FRACTION, coverage, pit, pit_uniformity, tarp, tarp_parameters
from .conditional import DEFAULT_CONDITIONS, POSTERIOR_SD, conditional_calibration
from .detection import detection
from .goals import (
    GOAL_BAND_PROB,
    GOAL_COVERAGE_TOLERANCE,
    GOAL_PIT_MEAN_TOLERANCE,
    GOAL_TARP_ATC_TOLERANCE,
    calibration_goals,
)
from .lines_plots import plot_bpt
from .plots import (
    plot_conditional_calibration,
    plot_coverage,
    plot_pit_ecdf,
    plot_pred_vs_true,
    plot_reliability,
    plot_sbc,
    plot_tarp,
    plot_uncertainty,
)
from .sbc import sbc
from .uncertainty import uncertainty_split

REPORT_NAME = "report.md"
FIG_DPI = 110


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    value = float(value)
    if not np.isfinite(value):
        return "n/a"
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.4g}"


def _table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _per_parameter(ds: xr.Dataset, columns: Sequence[str]) -> str:
    rows = [
        [str(p)] + [ds[c].sel(parameter=p).item() for c in columns] for p in ds["parameter"].values
    ]
    return _table(["parameter", *columns], rows)


class _Writer:
    """Collects Markdown and figures in ``out_dir``."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.lines: list[str] = []

    def add(self, text: str = "") -> None:
        self.lines.append(text)

    def figure(self, fig, name: str, caption: str) -> None:
        fig.savefig(self.out_dir / f"{name}.png", dpi=FIG_DPI)
        self.add(f"![{caption}]({name}.png)")
        self.add()

    def section(self, heading: str, body: Callable[[], None]) -> None:
        self.add(f"## {heading}")
        self.add()
        try:
            body()
        except DiagnosticsError as err:
            self.add(f"_Skipped: {err}_")
            self.add()


def report(
    idata,
    out_dir: str | Path,
    *,
    ensemble: Sequence | None = None,
    title: str = "galppl report",
    var_names: Sequence[str] | None = None,
    seed: int = 0,
    band_trials: int = 500,
) -> Path:
    """Write all diagnostic figures (PNG) and ``report.md`` into ``out_dir``; return its path.

    Parameters
    ----------
    idata : arviz.InferenceData
        Needs ``posterior`` and ``observed_data``; ``oh_detected``/``p_oh_detected`` enable the
        detection section, ``constant_data["mag"]`` with band ``r`` the accuracy-by-magnitude
        table.
    out_dir : str or Path
        Created if needed; existing files of the same names are overwritten.
    ensemble : list of InferenceData, optional
        K >= 2 fits of the same galaxies for the aleatoric/epistemic table (`uncertainty_split`).
    var_names : list of str, optional
        Parameters to report; default every continuous parameter with a truth.
    seed : int
        Seed of the PIT tie-breaking, the ECDF bands and the TARP reference points.
    band_trials : int
        Simulations behind each figure's simultaneous ECDF band (about 2 ms each per panel).
    """
    require(idata, "report", "posterior")
    require(idata, "report", "observed_data")
    names = resolve_var_names(idata, var_names, "report")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w = _Writer(out)
    simulated = is_simulated(idata)
    n_gal = idata.posterior.sizes.get("galaxy", 0)
    w.add(f"# {title}")
    w.add()
    w.add(
        f"{n_gal} galaxies; parameters: {', '.join(names)}; truths are "
        + ("simulated (calibration tests are SBC)." if simulated else "catalog values (held-out PIT, not SBC).")
    )
    cd = idata.constant_data if "constant_data" in idata.groups() else None
    if cd is not None and "usable" in cd:
        n_bad = int((~cd["usable"].values.astype(bool)).sum())
        if n_bad:
            w.add(
                f"{n_bad} galaxies have unusable inputs (NaN draws) and are counted as missing "
                "in every table below."
            )
    outside = idata.posterior["galaxy"].values[flagged_out_of_distribution(idata)]
    if len(outside):
        more = f" and {len(outside) - 20} more" if len(outside) > 20 else ""
        w.add(
            f"{len(outside)} galaxies are out of distribution (inputs unlike the training galaxies', "
            f"constant_data['out_of_distribution']): {', '.join(map(str, outside[:20]))}{more}. Their "
            "posteriors are extrapolations; every table below includes them."
        )
    w.add()

    def _accuracy():
        acc = accuracy(idata, names)
        w.add(
            "R^2 and RMSE in parameter units; bias and NMAD of the residual (dz/(1+z) for z); "
            "outliers: |dz|/(1+z) > 0.05 for z, |residual| > 3 NMAD otherwise."
        )
        w.add()
        w.add(_per_parameter(acc, ["units", "count", "n_missing", "r2", "rmse", "bias", "nmad", "outlier_fraction"]))
        w.add()
        if cd is not None and "mag" in cd and "band" in cd["mag"].dims and "r" in cd["mag"]["band"].values:
            binned = accuracy(idata, names, by=("mag", "r"), bins=4)
            w.add("NMAD in quantile bins of r magnitude:")
            w.add()
            heads = [f"r {lo:.2f}-{hi:.2f}" for lo, hi in zip(binned["bin_low"].values, binned["bin_high"].values, strict=True)]
            rows = [[str(p)] + list(binned["nmad"].sel(parameter=p).values) for p in binned["parameter"].values]
            w.add(_table(["parameter", *heads], rows))
            w.add()
        w.figure(plot_pred_vs_true(idata, names, seed=seed), "pred_vs_true", "posterior mean vs truth")

    def _pit():
        pit_ds = pit(idata, names, seed=seed)
        uni = pit_uniformity(pit_ds, seed=seed)
        w.add(
            f"PIT = P(theta <= truth | data), label: {pit_ds.attrs['label']}. Calibrated: mean 0.5, "
            "std 0.289 (smaller: under-confident, larger: over-confident), KS p-value not small, "
            "ECDF inside the 99% simultaneous band."
        )
        w.add()
        w.add(_per_parameter(uni, ["n", "mean", "std", "ks_pvalue", "ecdf_in_band"]))
        w.add()
        w.figure(plot_pit_ecdf(pit_ds, seed=seed, num_trials=band_trials), "pit_ecdf", "PIT ECDF difference")

    def _coverage():
        cov = coverage(idata, var_names=names)
        w.add("Empirical coverage of central credible intervals (nominal in the header).")
        w.add()
        rows = []
        for p in cov["parameter"].values:
            row = [str(p), cov["count"].sel(parameter=p).item()]
            for lev in (0.68, 0.95):
                c = cov.sel(parameter=p, level=lev)
                row += [c["coverage"].item(), c["deviation"].item()]
            rows.append(row)
        w.add(_table(["parameter", "n", "68%", "68% dev (sigma)", "95%", "95% dev (sigma)"], rows))
        w.add()
        w.figure(plot_coverage(cov), "coverage", "coverage vs nominal")

    def _conditional():
        by = {**DEFAULT_CONDITIONS, "posterior sd": POSTERIOR_SD}
        cond = conditional_calibration(idata, by, var_names=names, skip_missing=True, seed=seed)
        w.add(
            f"Coverage of the central 68% and 95% intervals and the PIT in quartile bins of each "
            "conditioning variable (a parameter as condition: its posterior median, since a calibrated "
            "posterior need not cover at the nominal rate conditional on the truth; posterior sd: each "
            "parameter's own, which shows narrow posteriors that are too narrow and wide ones too wide). "
            "dev: (coverage - nominal) / binomial standard error; PIT mean 0.5 when calibrated."
        )
        for reason in filter(None, cond.attrs["skipped"].split("\n")):
            w.add(f"_Not binned on {reason}_")
        w.add()
        for label in cond["by"].values:
            d = cond.sel(by=label)
            w.add(f"By **{label}**:")
            w.add()
            rows = []
            for p in d["parameter"].values:
                for b in np.flatnonzero(np.isfinite(d["bin_low"].sel(parameter=p).values)):
                    c = d.sel(parameter=p).isel(bin=b)
                    row = [str(p), f"{c['bin_low'].item():.4g} to {c['bin_high'].item():.4g}", c["count"].item()]
                    for lev in (0.68, 0.95):
                        row += [c["coverage"].sel(level=lev).item(), c["deviation"].sel(level=lev).item()]
                    rows.append(row + [c["pit_mean"].item(), c["pit_ks_pvalue"].item()])
            w.add(_table(["parameter", f"{label} bin", "n", "68%", "68% dev", "95%", "95% dev", "PIT mean", "PIT KS p"], rows))
            w.add()
        w.figure(plot_conditional_calibration(cond), "conditional_coverage", "coverage per bin")

    def _goals():
        goals = calibration_goals(idata, names, seed=seed)
        w.add(
            f"The goals of issue #12: SBC rank ECDF inside the {GOAL_BAND_PROB:.0%} simultaneous band; "
            f"|mean PIT - 0.5| <= {GOAL_PIT_MEAN_TOLERANCE}; 68% and 95% coverage within "
            f"{GOAL_COVERAGE_TOLERANCE} of nominal in every quartile bin (worst bin shown); "
            f"|TARP ATC| <= {GOAL_TARP_ATC_TOLERANCE}. stderr: the statistic's standard error for a "
            "calibrated posterior of this many galaxies (a threshold near it fails by chance)."
        )
        w.add()
        rows = [
            [g["goal"].item(), g["parameter"].item(), g["statistic"].item(), g["threshold"].item(),
             g["stderr"].item(), "pass" if g["passed"].item() else "**FAIL**", g["where"].item()]
            for g in (goals.isel(check=i) for i in range(goals.sizes["check"]))
        ]
        w.add(_table(["goal", "parameter", "statistic", "threshold", "stderr", "result", "where"], rows))
        w.add()
        w.add(f"All goals met: **{'yes' if goals.attrs['all_passed'] else 'no'}**.")
        for note in filter(None, [goals.attrs["not_checked"], *goals.attrs["skipped"].split("\n")]):
            w.add(f"_Not checked: {note}_")
        w.add()

    def _tarp():
        used, have = tarp_parameters(idata, names)
        joint = tarp(idata, used, seed=seed)
        w.add(
            f"Joint coverage of {', '.join(used)} on {joint.attrs['n_galaxies']} galaxies with all "
            "these truths (TARP, Lemos et al. 2023). ATC < 0: over-confident, > 0: under-confident."
        )
        left = [f"{n} ({have[n]:.0%})" for n in names if n not in used]
        if left:
            w.add(
                f"Left out, with a truth for fewer than {TARP_MIN_TRUTH_FRACTION:.0%} of the galaxies: "
                + ", ".join(left) + "."
            )
        w.add()
        w.add(_table(["ATC", "max abs(ECP - alpha)", "KS p-value"],
                     [[joint["atc"].item(), joint["ks_statistic"].item(), joint["ks_pvalue"].item()]]))
        w.add()
        w.figure(plot_tarp(joint), "tarp", "TARP expected coverage")

    def _sbc():
        ranks = sbc(idata, names, seed=seed)
        w.add(f"Rank of the truth among {ranks.attrs['n_draws']} draws; label: **{ranks.attrs['label']}**.")
        w.add()
        w.add(_per_parameter(ranks, ["n", "chi2", "chi2_pvalue", "ks_pvalue", "ecdf_in_band"]))
        w.add()
        w.figure(plot_sbc(ranks, seed=seed, num_trials=band_trials), "sbc", "rank ECDF difference")

    def _detection():
        det = detection(idata)
        w.add(f"Predicted {det.attrs['probability']} against observed {det.attrs['variable']} "
              f"(threshold {det.attrs['threshold']}).")
        w.add()
        keys = ["n", "base_rate", "accuracy", "precision", "recall", "roc_auc", "brier"]
        w.add(_table(keys, [[det[k].item() for k in keys]]))
        w.add()
        c = det["confusion"].values
        w.add(_table(["", "predicted 0", "predicted 1"], [["true 0", *c[0]], ["true 1", *c[1]]]))
        w.add()
        w.figure(plot_reliability(det), "reliability", "reliability diagram")

    def _bpt():
        rel = bpt_reliability(idata)
        w.add(
            "Posterior BPT class probabilities (star-forming, composite, AGN, undefined; Kauffmann+03, "
            "Kewley+01) against the class of the observed fluxes, one-vs-rest: multi-class Brier score "
            "(0 is perfect) and reliability diagram."
        )
        w.add()
        w.add(_table(["n", "n_missing", "Brier"], [[rel["n"].item(), rel["n_missing"].item(), rel["brier"].item()]]))
        w.add()
        w.figure(plot_reliability({"posterior": rel}), "bpt_probabilities", "BPT class probability reliability")
        w.figure(plot_bpt(idata), "bpt_diagram", "BPT diagram: truth and posterior means")

    def _uncertainty():
        if ensemble is None:
            raise DiagnosticsError("no ensemble given (pass ensemble=[idata_1, ..., idata_K])")
        unc = uncertainty_split(ensemble, [n for n in names if n in ensemble[0].posterior])
        w.add(f"Ensemble of {unc.attrs['n_models']} fits on {unc.attrs['n_galaxies']} galaxies.")
        w.add()
        w.add(_per_parameter(unc, ["sigma_ale", "sigma_epi", "sigma_total", "frac_epi"]))
        w.add()
        w.figure(plot_uncertainty(unc), "uncertainty", "aleatoric vs epistemic")

    w.section("Accuracy", _accuracy)
    w.section("Calibration: PIT", _pit)
    w.section("Calibration: coverage", _coverage)
    w.section("Conditional calibration", _conditional)
    w.section("Calibration: TARP (joint)", _tarp)
    w.section("SBC" if simulated else "Rank statistics (held-out PIT, not SBC)", _sbc)
    w.section("Calibration goals", _goals)
    w.section("Detectability", _detection)
    if has_line_draws(idata):
        w.section("BPT classes", _bpt)
    w.section("Aleatoric vs epistemic uncertainty", _uncertainty)

    path = out / REPORT_NAME
    path.write_text("\n".join(w.lines) + "\n")
    return path
