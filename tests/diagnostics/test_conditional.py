import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

from galppl.diagnostics import DiagnosticsError, binned_calibration, conditional_calibration, plot_conditional_calibration
from galppl.diagnostics.conditional import binned_calibration_values
from galppl.diagnostics.synthetic import synthetic_idata

PARAMS = ["log_mstar", "log_sfr", "z", "log_mbh", "oh"]


def test_calibrated_posterior_passes_every_bin(calibrated):
    ds = conditional_calibration(calibrated)
    assert set(ds.dims) == {"parameter", "level", "by", "bin"}
    assert list(ds["by"].values) == ["r", "z", "log_mstar"] and list(ds["parameter"].values) == PARAMS
    np.testing.assert_allclose(ds["level"], [0.68, 0.95])
    # Every galaxy with a truth is in exactly one bin of each conditioning variable.
    n_truth = [int(np.isfinite(calibrated.observed_data[p]).sum()) for p in PARAMS]
    per_by = ds["count"].sum("bin").transpose("parameter", "by")
    np.testing.assert_array_equal(per_by, np.repeat(np.array(n_truth)[:, None], 3, axis=1))
    assert (ds["n_without_by"] == 0).all()
    # Within binomial error in every bin (3.5 sigma for 120 correlated comparisons), PIT too.
    assert (np.abs(ds["deviation"]) < 3.5).all(), float(np.abs(ds["deviation"]).max())
    assert (np.abs(ds["pit_mean"] - 0.5) < 3.5 * ds["pit_mean_stderr"]).all()
    assert (ds["pit_ks_pvalue"] > 1e-3).all()
    np.testing.assert_allclose(ds["stderr"].sel(level=0.68), np.sqrt(0.68 * 0.32 / ds["count"]))
    # r bins are the quartiles of the catalog's r magnitude among each parameter's galaxies with a truth.
    r = calibrated.constant_data["mag"].sel(band="r").values
    for name in ds["parameter"].values:
        truth = np.isfinite(calibrated.observed_data[name].values)
        np.testing.assert_allclose(ds["bin_low"].sel(by="r", parameter=name), np.quantile(r[truth], [0, 0.25, 0.5, 0.75]))


def test_overconfident_faint_galaxies_fail_exactly_the_faint_bin():
    # Calibrated, except half as wide for the faintest quarter in r (independent of the parameters).
    ds = conditional_calibration(synthetic_idata(2000, 200, faint_scale=0.5, seed=7), by={"r": ("mag", "r")})
    dev = ds["deviation"].sel(by="r")
    # Half-width intervals cover P(|Z| < 0.5 z_p): 0.39 at 68%, 0.67 at 95%.
    assert (dev.sel(bin=3) < -8).all(), dev.sel(bin=3).values
    assert (np.abs(dev.sel(bin=[0, 1, 2])) < 3.5).all(), dev.sel(bin=[0, 1, 2]).values
    np.testing.assert_allclose(ds["coverage"].sel(by="r", bin=3, level=0.68), 0.39, atol=0.07)
    # A symmetric narrowing leaves the PIT mean at 0.5 but not its uniformity.
    assert (ds["pit_ks_pvalue"].sel(by="r", bin=3) < 1e-4).all()
    assert (np.abs(ds["pit_mean"].sel(by="r", bin=3) - 0.5) < 4 * ds["pit_mean_stderr"].sel(by="r", bin=3)).all()


def test_conditioning_on_the_truth_is_not_calibration():
    # A calibrated posterior covers at the nominal rate given the data (its posterior median),
    # not given the true value: in the outer quartiles of true z the truths sit in the tails.
    idata = synthetic_idata(4000, 100, seed=1)
    on_estimate = conditional_calibration(idata, {"z": "z"}, var_names="z")["pit_mean"].squeeze()
    on_truth = conditional_calibration(idata, {"z": "z"}, var_names="z", condition_on="truth")["pit_mean"].squeeze()
    np.testing.assert_allclose(on_estimate, 0.5, atol=0.02)
    assert on_truth[0] < 0.42 and on_truth[-1] > 0.58, on_truth.values
    # The truth bins' edges are the quartiles of the true z.
    np.testing.assert_allclose(
        conditional_calibration(idata, {"z": "z"}, var_names="z", condition_on="truth")["bin_high"].sel(by="z", parameter="z")[:3],
        np.quantile(idata.observed_data["z"], [0.25, 0.5, 0.75]),
    )


def test_numpy_core_by_hand():
    pit_values = np.array([0.1, 0.9, np.nan, 0.5, 0.2])
    hits = np.array([[1.0, 0.0, np.nan, 1.0, 1.0], [1.0, 1.0, np.nan, 1.0, 1.0]])
    bins = np.array([0, 0, 1, -1, 1])  # galaxy 3 in no bin; galaxy 2 has no truth
    out = binned_calibration_values(pit_values, hits, bins, 3)
    np.testing.assert_array_equal(out["count"], [2, 1, 0])
    np.testing.assert_allclose(out["coverage"], [[0.5, 1.0, np.nan], [1.0, 1.0, np.nan]])
    np.testing.assert_allclose(out["pit_mean"], [0.5, 0.2, np.nan])
    assert np.isnan(out["pit_ks_pvalue"][1:]).all()  # fewer than 2 values: no test


def test_xarray_layer_with_a_discrete_condition_and_missing_values():
    pit_ds = xr.Dataset({"x": ("galaxy", [0.2, 0.4, 0.6, 0.8, 0.5, 0.1])})
    hits = xr.DataArray(np.array([[[1, 1, 0, 1, 1, 0]]], float), dims=("parameter", "level", "galaxy"),
                        coords={"parameter": ["x"], "level": [0.5]})
    conditions = xr.Dataset({"flag": ("galaxy", [0.0, 0.0, 1.0, 1.0, np.nan, 1.0])})
    ds = binned_calibration(pit_ds, hits, conditions, bins=4)
    assert ds.sizes["bin"] == 4 and int(ds["n_without_by"].sel(by="flag")) == 1
    # Two distinct values give two bins; the other two stay empty (NaN edges, count 0).
    np.testing.assert_array_equal(ds["count"].sel(parameter="x", by="flag"), [2, 3, 0, 0])
    np.testing.assert_allclose(ds["coverage"].sel(parameter="x", by="flag", level=0.5), [1.0, 1 / 3, np.nan, np.nan])
    assert np.isnan(ds["bin_low"].sel(by="flag", parameter="x")[2:]).all()


def test_absent_condition_names_it_and_what_is_available():
    lines = synthetic_idata(60, 20, kind="lines", seed=3)
    with pytest.raises(DiagnosticsError, match=r"by='z' is not a variable of observed_data or constant_data; "
                       r"observed_data has flux_halpha, flux_hbeta, flux_nii, flux_oiii; constant_data has mag"):
        conditional_calibration(lines)
    ds = conditional_calibration(lines, skip_missing=True)
    assert list(ds["by"].values) == ["r"]
    assert ds.attrs["skipped"].startswith("z: ") and "\nlog_mstar: " in ds.attrs["skipped"]
    with pytest.raises(DiagnosticsError, match=r"'K' is not a band of constant_data\['mag'\]; choose one of"):
        conditional_calibration(lines, {"K": ("mag", "K")})
    with pytest.raises(DiagnosticsError, match="no conditioning variable is available: conditional_calibration: by='z'"):
        conditional_calibration(lines, {"z": "z"}, skip_missing=True)
    del lines.constant_data
    with pytest.raises(DiagnosticsError, match="needs group 'constant_data' with variable 'mag'"):
        conditional_calibration(lines, {"r": ("mag", "r")})


def test_argument_errors(calibrated):
    with pytest.raises(DiagnosticsError, match=r"condition_on must be one of \('estimate', 'truth'\), got 'median'"):
        conditional_calibration(calibrated, condition_on="median")
    with pytest.raises(DiagnosticsError, match="level must lie in"):
        conditional_calibration(calibrated, levels=[0.68, 1.5])
    with pytest.raises(DiagnosticsError, match="bins must be a positive integer, got 0"):
        conditional_calibration(calibrated, bins=0)


def test_plot_has_a_panel_per_condition_and_level(calibrated):
    ds = conditional_calibration(calibrated, var_names=["log_mstar", "z"])
    fig = plot_conditional_calibration(ds, lw=3)
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 * 3
    assert axes[0].get_title() == "68% interval by r" and axes[5].get_title() == "95% interval by log_mstar"
    curves = [line for line in axes[0].get_lines() if line.get_linewidth() == 3]
    assert len(curves) == 2
    np.testing.assert_allclose(curves[1].get_ydata(), ds["coverage"].sel(parameter="z", by="r", level=0.68))
    assert any(np.allclose(line.get_ydata(), 0.68) for line in axes[0].get_lines())  # the nominal line
    assert "posterior median" in fig._suptitle.get_text()


def test_each_parameter_is_binned_on_the_quantiles_of_its_own_galaxies():
    # O/H-like: a truth only for the faint half in r. Its four bins split that half, not the catalog.
    r = np.linspace(14.0, 18.0, 400)
    pit_ds = xr.Dataset({"all": ("galaxy", np.full(400, 0.5)), "faint": ("galaxy", np.where(r > 16, 0.5, np.nan))})
    hits = xr.DataArray(np.ones((2, 1, 400)), dims=("parameter", "level", "galaxy"),
                        coords={"parameter": ["all", "faint"], "level": [0.68]})
    hits[1, 0, r <= 16] = np.nan
    ds = binned_calibration(pit_ds, hits, xr.Dataset({"r": ("galaxy", r)}), bins=4)
    np.testing.assert_array_equal(ds["count"].sel(by="r", parameter="all"), [100, 100, 100, 100])
    np.testing.assert_array_equal(ds["count"].sel(by="r", parameter="faint"), [50, 50, 50, 50])
    np.testing.assert_allclose(ds["bin_low"].sel(by="r", parameter="faint"), np.quantile(r[r > 16], [0, 0.25, 0.5, 0.75]))


def test_posterior_sd_bins_show_a_spread_that_was_not_learned():
    """Each galaxy's posterior widened or narrowed by its own width relative to the median
    (narrow ones too narrow, wide ones too wide): binned on r every bin is alike, binned on each
    parameter's own posterior sd the narrowest quartile is over-confident and the widest
    under-confident; a calibrated posterior passes both."""
    from galppl.diagnostics import POSTERIOR_SD

    calibrated = synthetic_idata(3000, 200, seed=3)
    distorted = calibrated.copy()
    for name in ["log_mstar", "z"]:
        draws = distorted.posterior[name]
        mean, sd = draws.mean(("chain", "draw")), draws.std(("chain", "draw"))
        distorted.posterior[name] = mean + (draws - mean) * sd / sd.median()
    by = {"r": ("mag", "r"), "sd": POSTERIOR_SD}
    good = conditional_calibration(calibrated, by, var_names=["log_mstar", "z"])
    bad = conditional_calibration(distorted, by, var_names=["log_mstar", "z"])
    assert (np.abs(good["deviation"]) < 3.5).all(), float(np.abs(good["deviation"]).max())
    on_r = bad["coverage"].sel(by="r")  # off overall, but alike in every bin of r
    assert (np.abs(on_r - on_r.mean("bin")) / bad["stderr"].sel(by="r") < 3.5).all()
    worst = bad["deviation"].sel(by="sd", level=0.68)
    assert (worst.isel(bin=0) < -4).all() and (worst.isel(bin=-1) > 4).all(), worst.values
    # The bins are each parameter's own quartiles of its posterior sd.
    sd = distorted.posterior["z"].std(("chain", "draw")).values
    np.testing.assert_allclose(bad["bin_low"].sel(by="sd", parameter="z"), np.quantile(sd, [0, 0.25, 0.5, 0.75]))
    assert (bad["count"].sel(by="sd") == 750).all()


def test_posterior_sd_bins_leave_out_galaxies_without_a_posterior_quietly():
    """``predict`` gives a galaxy it refuses (bad image, missing magnitude) all-NaN draws: the
    posterior-sd bins leave it out, as the other bins do, without numpy's all-NaN warnings."""
    import warnings

    from galppl.diagnostics import POSTERIOR_SD

    idata = synthetic_idata(400, 100, seed=5)
    for name in ["log_mstar", "z"]:
        idata.posterior[name][..., :2] = np.nan  # galaxies 0 and 1 got no posterior
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        table = conditional_calibration(idata, {"sd": POSTERIOR_SD}, var_names=["log_mstar", "z"])
    assert (table["count"].sum("bin") == 398).all()
