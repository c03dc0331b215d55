"""Every diagnostic rejects an InferenceData without what it needs, with a clear message."""

import arviz as az
import numpy as np
import pytest
import xarray as xr

import galppl.diagnostics as gd
from galppl.diagnostics.synthetic import synthetic_idata


@pytest.fixture(scope="module")
def small():
    return synthetic_idata(40, 20, seed=9)


def _without(idata, group):
    return az.InferenceData(**{g: idata[g] for g in idata.groups() if g != group})


def test_message_names_the_missing_group_and_what_is_there(small):
    no_obs = _without(small, "observed_data")
    with pytest.raises(gd.DiagnosticsError) as err:
        gd.accuracy(no_obs, "log_sfr")
    assert str(err.value) == (
        "accuracy needs group 'observed_data' with variable 'log_sfr'; idata has groups "
        "posterior, constant_data"
    )


@pytest.mark.parametrize(
    "func",
    [gd.accuracy, gd.pit, gd.coverage, gd.sbc, gd.tarp, gd.plot_pred_vs_true, gd.plot_pit_ecdf],
    ids=lambda f: f.__name__,
)
def test_functions_reject_missing_observed_data(small, func):
    with pytest.raises(gd.DiagnosticsError, match=r"needs group 'observed_data' with variables 'log_mstar', 'z'"):
        func(_without(small, "observed_data"), var_names=["log_mstar", "z"])


@pytest.mark.parametrize("func", [gd.accuracy, gd.pit, gd.coverage, gd.sbc], ids=lambda f: f.__name__)
def test_functions_reject_missing_variables(small, func):
    with pytest.raises(
        gd.DiagnosticsError,
        match=rf"^{func.__name__} needs group 'posterior' with variable 'log_sfr2'; group 'posterior' has variables log_mstar",
    ):
        func(small, var_names=["log_sfr2"])


def test_detection_and_report_reject_missing_groups(small):
    with pytest.raises(gd.DiagnosticsError, match="detection needs group 'observed_data' with variable 'oh_detected'"):
        gd.detection(_without(small, "observed_data"))
    with pytest.raises(gd.DiagnosticsError, match="report needs group 'posterior'"):
        gd.report(_without(small, "posterior"), "unused")
    with pytest.raises(gd.DiagnosticsError, match="uncertainty_split needs group 'posterior'"):
        gd.uncertainty_split([small, _without(small, "posterior")])


def test_rejects_non_inferencedata_and_bad_layouts(small):
    with pytest.raises(gd.DiagnosticsError, match="needs an arviz.InferenceData, got Dataset"):
        gd.pit(small.posterior)
    post = small.posterior.assign(log_mstar=small.posterior["log_mstar"].expand_dims(band=2, axis=-1))
    bad = az.InferenceData(posterior=post, observed_data=small.observed_data)
    with pytest.raises(gd.DiagnosticsError, match=r"has dims .* expected \(chain, draw, galaxy\)"):
        gd.pit(bad, "log_mstar")


def test_rejects_galaxy_ids_that_differ(small):
    obs = small.observed_data.assign_coords(galaxy=small.observed_data["galaxy"].values[::-1])
    with pytest.raises(gd.DiagnosticsError, match="galaxy ids of observed_data\\['z'\\] differ"):
        gd.coverage(az.InferenceData(posterior=small.posterior, observed_data=obs), var_names="z")


def test_default_variables_skip_discrete_ones(small):
    names = list(gd.pit(small).data_vars)
    assert "oh_detected" not in names and "p_oh_detected" not in names
    post = xr.Dataset({"oh_detected": small.posterior["oh_detected"]})
    with pytest.raises(gd.DiagnosticsError, match="found no continuous parameter"):
        gd.pit(az.InferenceData(posterior=post, observed_data=small.observed_data))


def test_galaxies_with_nan_draws_are_left_out_and_counted(small):
    # The models write NaN draws for galaxies with unusable inputs.
    post = small.posterior.copy(deep=True)
    post["log_mstar"][:, :, :3] = np.nan
    post["p_oh_detected"][:, :, :3] = np.nan
    idata = az.InferenceData(posterior=post, observed_data=small.observed_data)
    acc = gd.accuracy(idata, "log_mstar")
    assert int(acc["n_missing"].squeeze()) == 3 and np.isfinite(acc["rmse"]).all()
    assert np.isnan(gd.pit(idata, "log_mstar")["log_mstar"][:3]).all()
    assert int(gd.coverage(idata, var_names="log_mstar")["count"].squeeze()) == small.posterior.sizes["galaxy"] - 3
    assert int(gd.sbc(idata, "log_mstar")["n"].squeeze()) == small.posterior.sizes["galaxy"] - 3
    assert int(gd.detection(idata)["n_missing"]) == 3
    unc = gd.uncertainty_split([idata, small], "log_mstar")
    assert int(unc["count"].squeeze()) == small.posterior.sizes["galaxy"] - 3
    assert np.isfinite(unc["sigma_epi"]).all()


@pytest.mark.parametrize("flag, label", [("False", "held-out PIT (not SBC)"), ("true", "SBC"), (0, "held-out PIT (not SBC)")])
def test_simulated_flag_survives_netcdf_types(small, flag, label):
    post = small.posterior.assign_attrs(simulated=flag)
    assert gd.sbc(az.InferenceData(posterior=post, observed_data=small.observed_data), "z").attrs["label"] == label
