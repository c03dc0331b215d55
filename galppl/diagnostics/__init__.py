"""Diagnostics of galppl posteriors: accuracy, calibration, uncertainty split, detectability, BPT,
and the latent-space interpretability of the image VAE.

Every posterior diagnostic takes an ``arviz.InferenceData`` with ``posterior`` draws (chain, draw,
galaxy) and the truth in ``observed_data`` (galaxy,), and returns an ``xarray.Dataset``; plots
return a ``matplotlib.figure.Figure``. `report` writes all of them into one Markdown report. The
interpretability functions (`latent_regression`, `perturbation_strip`, `latent_embeddings`) take
the VAE's latent means and a catalog instead.
"""

from ._checks import DiagnosticsError, flagged_out_of_distribution
from .accuracy import accuracy, point_metrics
from .bpt import bpt_probabilities, bpt_reliability, class_reliability, mean_bpt_ratios
from .calibration import coverage, pit, pit_uniformity, tarp, tarp_coverage
from .conditional import POSTERIOR_SD, binned_calibration, conditional_calibration
from .detection import detection
from .goals import calibration_goals
from .interpret import latent_embedding, latent_embeddings, latent_regression, perturbation_strip, separation_accuracy
from .interpret_plots import gri_to_rgb, plot_latent_embeddings, plot_perturbation_strip
from .lines_plots import plot_bpt, plot_lines_corner, plot_lines_pred_vs_true
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
from .photoz import photoz_metrics
from .report import report
from .sbc import sbc
from .uncertainty import uncertainty_split

__all__ = [
    "POSTERIOR_SD",
    "DiagnosticsError",
    "accuracy",
    "binned_calibration",
    "bpt_probabilities",
    "bpt_reliability",
    "calibration_goals",
    "class_reliability",
    "conditional_calibration",
    "coverage",
    "detection",
    "flagged_out_of_distribution",
    "gri_to_rgb",
    "latent_embedding",
    "latent_embeddings",
    "latent_regression",
    "mean_bpt_ratios",
    "perturbation_strip",
    "photoz_metrics",
    "pit",
    "pit_uniformity",
    "plot_bpt",
    "plot_conditional_calibration",
    "plot_coverage",
    "plot_latent_embeddings",
    "plot_lines_corner",
    "plot_lines_pred_vs_true",
    "plot_perturbation_strip",
    "plot_pit_ecdf",
    "plot_pred_vs_true",
    "plot_reliability",
    "plot_sbc",
    "plot_tarp",
    "plot_uncertainty",
    "point_metrics",
    "report",
    "sbc",
    "separation_accuracy",
    "tarp",
    "tarp_coverage",
    "uncertainty_split",
]
