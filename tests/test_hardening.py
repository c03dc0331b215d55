"""Adversarial cases (issue #17): every bad input, corrupt file and interrupted write of the
issue gives a specific error or a per-galaxy flag, never a silent wrong answer."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import torch
import xarray as xr

import galppl
from galppl.cli import main
from galppl.data.files import CorruptFileError
from galppl.data.io import CatalogRows, load_catalog, read_catalog, save_catalog
from galppl.data.schema import CatalogError, flag, validate
from galppl.models import props_blocks
from galppl.models.chain import Block
from galppl.ood import OutOfDistributionWarning
from test_cli import fails_at_once  # one line, exit 2, no work done

SMALL = dict(max_epochs=1, num_couplings=2, hidden_dim=16, progress=False)


@pytest.fixture(scope="module")
def catalog():
    return galppl.simulate(300, seed=3, image_size=None, progress=False)


@pytest.fixture(scope="module")
def posterior(catalog):
    return galppl.fit("props", catalog, inputs="photometry", **SMALL)


@pytest.fixture(scope="module")
def test_galaxies():
    return galppl.simulate(20, seed=4, image_size=None, progress=False)


@pytest.fixture(scope="module")
def image_catalog():
    return galppl.simulate(60, seed=5, image_size=16, progress=False)


@pytest.fixture(scope="module")
def image_posterior(image_catalog):
    return galppl.fit("props", image_catalog, inputs="image+photometry", vae_max_epochs=1, **SMALL)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GALPPL_CACHE", str(tmp_path / "cache"))


def predicted(posterior, catalog):
    """(idata, the warnings' messages) of a 20-draw prediction."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = posterior.predict(catalog, 20)
    return idata, [str(w.message) for w in caught if issubclass(w.category, OutOfDistributionWarning)]


# ---------------------------------------------------------------- catalog files
@pytest.mark.parametrize("suffix", ["nc", "zarr"])
def test_catalog_round_trip_is_exact_and_the_checksums_stay_in_the_file(image_catalog, tmp_path, suffix):
    path = save_catalog(image_catalog, tmp_path / f"c.{suffix}")
    back = load_catalog(path)
    xr.testing.assert_identical(back, image_catalog)
    assert "galppl_sha256" not in back.attrs and "galppl_sha256" not in image_catalog.attrs
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"c.{suffix}"]  # no temporary left behind


def test_bit_rot_in_a_netcdf_catalog_is_an_error_naming_file_and_variable(test_galaxies, tmp_path):
    import h5py

    path = save_catalog(test_galaxies, tmp_path / "c.nc")
    with h5py.File(path, "r+") as f:
        mags = f["mag"][...]
        mags[:5, 2] = 30.0
        f["mag"][...] = mags
    with pytest.raises(CorruptFileError, match=r"c\.nc' is corrupt: the values of 'mag' differ from the checksums"):
        load_catalog(path)


@pytest.mark.parametrize("chunk", ["mag/0.0", "log_mstar/0", "quality/0", "image/0.0.0.0"])
def test_a_zarr_store_with_a_deleted_chunk_is_refused_naming_it(image_catalog, tmp_path, chunk):
    path = save_catalog(image_catalog, tmp_path / "c.zarr")
    os.remove(path / chunk)
    with pytest.raises(CorruptFileError, match=rf"chunk file\(s\) {chunk} are missing"):
        load_catalog(path)
    with pytest.raises(CorruptFileError, match=rf"{chunk} are missing"):
        CatalogRows(path)


def test_a_changed_zarr_chunk_is_caught_by_its_checksum(test_galaxies, tmp_path):
    path = save_catalog(test_galaxies, tmp_path / "c.zarr")
    other = save_catalog(test_galaxies.assign(log_mstar=test_galaxies["log_mstar"] + 1), tmp_path / "d.zarr")
    (path / "log_mstar" / "0").write_bytes((other / "log_mstar" / "0").read_bytes())
    with pytest.raises(CorruptFileError, match="the values of 'log_mstar' differ"):
        load_catalog(path)


def test_a_catalog_edited_and_saved_by_xarray_loads(test_galaxies, tmp_path):
    back = load_catalog(save_catalog(test_galaxies, tmp_path / "c.nc"))
    back["log_mstar"].values[:] += 0.1
    back.to_netcdf(tmp_path / "edited.nc", engine="h5netcdf")  # no stale checksums travel with it
    np.testing.assert_allclose(load_catalog(tmp_path / "edited.nc")["log_mstar"], test_galaxies["log_mstar"] + 0.1)


@pytest.mark.parametrize("suffix", ["nc", "zarr"])
def test_a_save_failing_half_way_leaves_the_earlier_catalog(test_galaxies, tmp_path, monkeypatch, suffix):
    path = save_catalog(test_galaxies, tmp_path / f"c.{suffix}")

    def half_then_fail(self, target, *args, **kwargs):
        os.makedirs(target, exist_ok=True) if suffix == "zarr" else open(target, "wb").write(b"\x89HDF partial")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf" if suffix == "nc" else "to_zarr", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_catalog(test_galaxies.assign(log_mstar=test_galaxies["log_mstar"] + 0.5), path)
    monkeypatch.undo()
    xr.testing.assert_identical(load_catalog(path), test_galaxies)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"c.{suffix}"]


def test_sigkill_while_overwriting_a_catalog_never_leaves_a_broken_file(tmp_path):
    path = tmp_path / "c.nc"
    script = textwrap.dedent(f"""
        import galppl
        from galppl.data.io import save_catalog
        catalog = galppl.simulate(500, seed=1, image_size=None, progress=False)
        save_catalog(catalog, {str(path)!r})
        print("ready", flush=True)
        while True:
            save_catalog(catalog, {str(path)!r})
    """)
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    assert process.stdout.readline().strip() == b"ready"
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert load_catalog(path).sizes["galaxy"] == 500


# ---------------------------------------------------------------- saved models
def mangle(path, name, how):
    target = path / name
    data = target.read_bytes()
    target.write_bytes({"truncate": data[: len(data) // 2], "empty": b""}[how])


@pytest.mark.parametrize("name, how, message", [
    ("chain.pt", "truncate", r"chain\.pt' is truncated or corrupt \(\d+ bytes, not a complete torch archive"),
    ("chain.pt", "empty", r"chain\.pt' is empty \(0 bytes\)"),
    ("config.json", "truncate", r"config\.json' is not valid JSON .*truncated or corrupt"),
    ("config.json", "empty", r"config\.json' is empty \(0 bytes of JSON\)"),
    ("featurizer.json", "truncate", r"featurizer\.json' is corrupt: its sha256 differs"),
    ("featurizer.json", "empty", r"featurizer\.json' is corrupt: its sha256 differs"),
])
def test_a_truncated_or_empty_model_file_is_named(posterior, tmp_path, name, how, message):
    path = posterior.save(tmp_path / "model")
    mangle(path, name, how)
    with pytest.raises(CorruptFileError, match=message):
        galppl.load(path)


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("blocks"), r"lacks the key\(s\) 'blocks'"),
    (lambda c: c.pop("split"), r"lacks the key\(s\) 'split'"),
    (lambda c: c.update(config={"chain": {"no_such_field": 1}}), r"does not describe a model .*no_such_field"),
])
def test_a_partial_config_json_is_named(posterior, tmp_path, change, message):
    path = posterior.save(tmp_path / "model")
    config = json.loads((path / "config.json").read_text())
    change(config)
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CorruptFileError, match=message):
        galppl.load(path)


def test_a_config_json_that_is_a_list_is_named(posterior, tmp_path):
    path = posterior.save(tmp_path / "model")
    (path / "config.json").write_text("[1, 2]")
    with pytest.raises(CorruptFileError, match=r"config\.json' holds a JSON list, not an object"):
        galppl.load(path)


def test_a_changed_weight_tensor_is_named(posterior, tmp_path):
    path = posterior.save(tmp_path / "model")
    state = torch.load(path / "chain.pt", weights_only=True)
    name = next(iter(state))
    state[name] = state[name] + 1e-3
    torch.save(state, path / "chain.pt")
    with pytest.raises(CorruptFileError, match=rf"chain\.pt' is corrupt: the tensor\(s\) {name} differ"):
        galppl.load(path)


def test_a_missing_featurizer_is_named(posterior, tmp_path):
    path = posterior.save(tmp_path / "model")
    (path / "featurizer.json").unlink()
    with pytest.raises(CorruptFileError, match=r"featurizer\.json' is missing from the saved model"):
        galppl.load(path)


@pytest.mark.parametrize("version", ["99.0.0", "0.99.0", "0.2.0", "garbage"])
def test_a_model_from_a_newer_or_older_galppl_is_refused_naming_both(posterior, tmp_path, version):
    path = posterior.save(tmp_path / "model")
    config = json.loads((path / "config.json").read_text())
    config["galppl_version"] = version
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=rf"saved by galppl {version}, this is galppl {galppl.__version__}"):
        galppl.load(path)


def test_a_save_failing_half_way_keeps_the_earlier_model(posterior, tmp_path, monkeypatch):
    path = posterior.save(tmp_path / "model")
    before = {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        posterior.save(path)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    galppl.load(path)


def test_saving_over_a_folder_of_other_files_is_refused(posterior, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is a folder holding other files, not a saved model"):
        posterior.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_truncated_vae_weights_file_is_named(image_posterior, tmp_path):
    path = image_posterior.save(tmp_path / "model")
    mangle(path, "vae/weights.pt", "truncate")
    with pytest.raises(CorruptFileError, match=r"vae/weights\.pt' is corrupt: its sha256 differs"):
        galppl.load(path)


# ---------------------------------------------------------------- inputs at prediction
def shifted(catalog, how):
    out = catalog.copy(deep=True)
    mag = out["mag"].values
    if how == "plus5":
        mag += 5
    elif how == "colours_inverted":
        mag[:] = mag[:, ::-1]
    elif how == "r15_i24":
        out["mag"].loc[dict(band="r")] = 15.0
        out["mag"].loc[dict(band="i")] = 24.0
    elif how == "nanomaggies":  # fluxes in nanomaggies (10-40 here) passed as magnitudes
        mag[:] = np.clip(10 ** (-0.4 * (mag - 22.5)), 10, 39)
    return out


@pytest.mark.parametrize("how", ["plus5", "colours_inverted", "r15_i24", "nanomaggies"])
def test_wrong_photometry_is_flagged_and_warned(posterior, test_galaxies, how):
    idata, messages = predicted(posterior, shifted(test_galaxies, how))
    flagged = idata.constant_data["out_of_distribution"].values
    assert flagged.mean() >= 0.9
    assert ((idata.constant_data["quality"].values & 64) > 0).mean() >= 0.9
    assert messages and "have inputs unlike the training galaxies'" in messages[0]


def test_magnitudes_five_too_faint_are_named_as_outside_the_training_range(posterior, test_galaxies):
    idata, messages = predicted(posterior, shifted(test_galaxies, "plus5"))
    assert idata.constant_data["outside_training_range"].values.all()
    assert "features outside the training range: mag_" in messages[0]


def test_clean_galaxies_are_not_flagged_outside_the_training_range(posterior, test_galaxies):
    idata, _ = predicted(posterior, test_galaxies)
    assert idata.constant_data["outside_training_range"].values.mean() <= 0.1


def test_fluxes_divided_by_ten_as_magnitudes_are_refused(posterior, test_galaxies):
    bad = test_galaxies.copy(deep=True)
    bad["mag"].values[:] = 10 ** (-0.4 * (bad["mag"].values - 22.5)) / 10
    with pytest.raises(CatalogError, match="'mag' has values below the physical limit 5.0"):
        posterior.predict(bad, 10)


def test_the_missing_mag_bit_makes_a_galaxy_unusable(posterior, test_galaxies):
    marked = test_galaxies.copy(deep=True)
    flag(marked, "missing_mag", np.arange(20) < 3)
    idata, _ = predicted(posterior, marked)
    usable = idata.constant_data["usable"].values
    assert not usable[:3].any() and usable[3:].all()
    assert np.isnan(idata.posterior["log_mstar"].values[..., :3]).all()


def test_a_catalog_without_extinction_is_warned_of_for_a_model_trained_with_it(posterior, test_galaxies):
    with pytest.warns(OutOfDistributionWarning, match="trained on magnitudes corrected for Milky Way extinction "
                                                      "and this catalog has no 'extinction'"):
        posterior.predict(test_galaxies.drop_vars("extinction"), 10)


def test_extinction_given_to_a_model_trained_without_it_is_warned_of(catalog, test_galaxies):
    uncorrected = galppl.fit("props", catalog.drop_vars("extinction"), inputs="photometry", **SMALL)
    with pytest.warns(OutOfDistributionWarning, match="NOT corrected for Milky Way extinction"):
        uncorrected.predict(test_galaxies, 10)
    _, messages = predicted(uncorrected, test_galaxies.drop_vars("extinction"))
    assert not any("extinction" in m for m in messages)


@pytest.mark.parametrize("line", ["flux_halpha", "flux_hbeta", "flux_nii", "flux_oiii"])
def test_a_line_flux_sentinel_is_refused_naming_it(catalog, line):
    bad = catalog.copy(deep=True)
    bad[line].values[:40] = -9999.0
    with pytest.raises(CatalogError, match=rf"'{line}' has values below the physical limit -5000.0 .*-9999 looks "
                                           "like a missing-value code"):
        galppl.fit("lines", bad, inputs="photometry", **SMALL)


def test_a_magnitude_sentinel_of_99_is_refused_naming_it(test_galaxies):
    bad = test_galaxies.copy(deep=True)
    bad["mag"].values[0, 0] = 99.0
    with pytest.raises(CatalogError, match="above the physical limit 40.0 .*99 looks like a missing-value code"):
        validate(bad)


def test_a_negative_line_flux_within_noise_is_accepted(test_galaxies):
    noisy = test_galaxies.copy(deep=True)
    noisy["flux_oiii"].values[0] = -35.0
    validate(noisy)


def test_an_html_page_saved_as_csv_is_refused(tmp_path):
    page = tmp_path / "table.csv"
    page.write_text("<!DOCTYPE html>\n<html><head><title>503</title></head><body>Service unavailable</body></html>\n")
    with pytest.raises(CatalogError, match="is an HTML/XML page, not a CSV table"):
        read_catalog(page)


def test_a_csv_with_a_header_and_no_rows_is_refused(tmp_path):
    table = tmp_path / "table.csv"
    table.write_text("objid,ra,dec,petroMag_r\n")
    with pytest.raises(CatalogError, match="has a header row .* but no rows"):
        read_catalog(table)


def test_a_block_listing_a_variable_twice_is_refused(catalog):
    with pytest.raises(ValueError, match=r"block 'twice' lists \['log_mstar'\] more than once"):
        galppl.fit((Block("twice", ("log_mstar", "log_mstar"), kind="realnvp"),), catalog, inputs="photometry",
                   **SMALL)


# ---------------------------------------------------------------- arguments
@pytest.mark.parametrize("kwargs, message", [
    ({"num_samples": 2.5}, r"num_samples must be an integer >= 1, got 2.5 \(float\)"),
    ({"num_samples": 0}, "num_samples must be an integer >= 1, got 0"),
    ({"num_samples": True}, "num_samples must be an integer >= 1, got True"),
    ({"num_samples": "100"}, r"num_samples must be an integer >= 1, got '100' \(str\)"),
    ({"max_batch_size": 0}, "max_batch_size must be an integer >= 1, got 0"),
    ({"seed": -1}, "seed must be an integer >= 0, got -1"),
])
def test_predict_arguments_are_checked(posterior, test_galaxies, kwargs, message):
    with pytest.raises(ValueError, match=message):
        posterior.predict(test_galaxies, **{"num_samples": 10, **kwargs})


def test_log_prob_arguments_are_checked(posterior, test_galaxies):
    with pytest.raises(ValueError, match="num_draws must be an integer >= 1, got 0.5"):
        posterior.log_prob(test_galaxies, num_draws=0.5)


@pytest.mark.parametrize("model, message", [
    (123, "model must be 'props', 'lines', 'joint' or a sequence of galppl Blocks, got int 123"),
    ([1, 2], "model must be .* a sequence of galppl Blocks, got list"),
    ("nonsense", "unknown model 'nonsense'"),
])
def test_fit_refuses_a_model_that_is_no_chain(catalog, model, message):
    with pytest.raises((TypeError, ValueError), match=message):
        galppl.fit(model, catalog, inputs="photometry", **SMALL)


def test_fit_refuses_a_vae_that_is_no_vae(catalog):
    with pytest.raises(TypeError, match="vae must be a fitted VAE .* got str 'x'"):
        galppl.fit("props", catalog, vae="x", **SMALL)


def test_fit_refuses_data_that_is_no_catalog():
    with pytest.raises(TypeError, match="data must be a galppl catalog .* got ndarray"):
        galppl.fit("props", np.zeros((3, 5)), **SMALL)


def test_fit_refuses_nan_fractions(catalog):
    with pytest.raises(ValueError, match=r"DataConfig.fractions must be 3 positive shares .* got \(nan, 0.5, 0.5\)"):
        galppl.fit("props", catalog, inputs="photometry", fractions=(float("nan"), 0.5, 0.5), **SMALL)


def test_a_diverging_fit_says_so_and_suggests_a_smaller_lr(catalog):
    with pytest.raises(FloatingPointError, match=r"training diverged: the loss went non-finite .* at lr=1e\+06; "
                                                 "use a smaller learning rate"):
        galppl.fit("props", catalog, inputs="photometry", lr=1e6, **{**SMALL, "max_epochs": 3})


def test_fit_refuses_an_empty_catalog(catalog):
    with pytest.raises(ValueError, match="the catalog has 0 galaxies: nothing to fit"):
        galppl.fit("props", catalog.isel(galaxy=slice(0, 0)), **SMALL)


def test_predict_refuses_an_empty_catalog(posterior, test_galaxies):
    with pytest.raises(CatalogError, match="the catalog has 0 galaxies: nothing to predict"):
        posterior.predict(test_galaxies.isel(galaxy=slice(0, 0)), 10)


def test_an_image_model_refuses_an_empty_catalog(image_posterior, image_catalog):
    with pytest.raises(CatalogError, match="the catalog has 0 galaxies: nothing to predict"):
        image_posterior.predict(image_catalog.isel(galaxy=slice(0, 0)), 10)


def test_a_block_on_an_unknown_variable_is_refused_before_the_vae_is_fitted(image_catalog, monkeypatch):
    def no_vae(*args, **kwargs):
        raise AssertionError("the VAE must not be fitted before the blocks are checked")

    monkeypatch.setattr(sys.modules["galppl.fit"], "fit_vae", no_vae)
    blocks = props_blocks() + (Block("dust", ("log_dust_mass",), kind="affine"),)
    with pytest.raises(ValueError, match=r"block 'dust' needs catalog variables \['log_dust_mass'\]"):
        galppl.fit(blocks, image_catalog, **SMALL)


# ---------------------------------------------------------------- command line
def test_cli_run_refuses_negative_minutes_before_simulating(capsys, monkeypatch):
    fails_at_once(["run", "--minutes", "-1"], capsys, monkeypatch, "expected a number of minutes > 0, got -1")


def test_cli_simulate_refuses_an_unwritable_output_before_simulating(capsys, monkeypatch, tmp_path):
    (tmp_path / "a_file").write_text("")
    fails_at_once(["simulate", "10", str(tmp_path / "a_file" / "out.nc")], capsys, monkeypatch,
          "cannot be written: " + repr(str(tmp_path / "a_file")) + " is a file, not a folder")


def test_cli_run_refuses_an_unwritable_out_folder_before_simulating(capsys, monkeypatch, tmp_path):
    (tmp_path / "a_file").write_text("")
    fails_at_once(["run", "--out", str(tmp_path / "a_file" / "run")], capsys, monkeypatch, "is a file, not a folder")


def test_cli_predict_with_a_corrupt_model_is_one_line(posterior, test_galaxies, capsys, monkeypatch, tmp_path):
    model = posterior.save(tmp_path / "model")
    mangle(model, "config.json", "truncate")
    catalog = save_catalog(test_galaxies, tmp_path / "c.nc")
    fails_at_once(["predict", str(model), str(catalog), str(tmp_path / "out.nc")], capsys, monkeypatch,
          "config.json' is not valid JSON")


def test_cli_predict_failing_mid_write_keeps_the_earlier_result(posterior, test_galaxies, capsys, monkeypatch,
                                                                   tmp_path):
    model = posterior.save(tmp_path / "model")
    catalog = save_catalog(test_galaxies, tmp_path / "c.nc")
    out = tmp_path / "out.nc"
    assert main(["predict", str(model), str(catalog), str(out), "--num-samples", "5"]) == 0
    before = out.read_bytes()

    def half_then_fail(self, target, *args, **kwargs):
        open(target, "wb").write(before[:100])
        raise OSError("disk full")

    import arviz

    monkeypatch.setattr(arviz.InferenceData, "to_netcdf", half_then_fail)
    with pytest.raises(SystemExit) as stop:
        main(["predict", str(model), str(catalog), str(out), "--num-samples", "5"])
    assert stop.value.code == 1 and "disk full" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.nc", "model", "out.nc"]
