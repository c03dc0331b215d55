"""The command line on tiny data: every command runs, and bad arguments fail at once in one line."""

import json
import sys

import arviz as az
import numpy as np
import pytest

import galppl
from galppl.cli import main
from galppl.data import load_catalog

TINY_TOML = """seed = 1

[data]
n_galaxies = 300

[chain]
inputs = "photometry"
hidden_dim = 16
num_couplings = 2

[train]
max_epochs = 2
batch_size = 128
"""


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GALPPL_CACHE", str(tmp_path / "cache"))


def fails_at_once(argv, capsys, monkeypatch, message):
    def no_work(*args, **kwargs):
        raise AssertionError("arguments must be checked before any work")

    monkeypatch.setattr(sys.modules["galppl.fit"], "default_catalog", no_work)
    monkeypatch.setattr(galppl.data, "simulate", no_work)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--minutes", "-1"], "galppl run: error: argument --minutes: expected a number of minutes > 0, got -1"),
        (["run", "--minutes", "nan"], "expected a number of minutes > 0"),
        (["run", "--n-galaxies", "0"], "argument --n-galaxies: expected a positive integer, got 0"),
        (["run", "--image-size", "60"], "DataConfig.image_size must be a multiple of 8"),
        (["run", "--seed", "-3"], "argument --seed: expected a non-negative integer"),
        (["run", "--num-samples", "0"], "argument --num-samples: expected a positive integer"),
        (["run", "--config", "absent.toml"], "--config 'absent.toml': no such file"),
        (["simulate", "10", "out.csv"], "galppl simulate: error: out 'out.csv' must end in .nc (netCDF) or .zarr"),
        (["simulate", "10", "out.nc", "--image-size", "12"], "--image-size must be 0 (no images) or a multiple of 8"),
        (["simulate", "-5", "out.nc"], "argument n: expected a positive integer, got -5"),
        (["predict", "absent_model", "absent.nc", "out.nc"], "catalog 'absent.nc': no such file or folder"),
        (["predict", "absent_model", "sky.nc", "out.csv"], "out 'out.csv' must end in .zarr (per-galaxy summaries"),
        (["predict", "absent_model", "sky.csv", "out.zarr"], "catalog 'sky.csv': a csv file is read whole"),
        (["predict", "absent_model", "sky.nc", "out.nc", "--keep-draws"], "--keep-draws and --chunk-size are for"),
        (["predict", "absent_model", "sky.nc", "out.zarr"], "model 'absent_model': no such file or folder"),
        (["predict", "absent_model", "sky.txt", "out.zarr"], "cannot tell the format of 'sky.txt'"),
        (["predict", "sky.nc", "sky.nc", "out.zarr", "--chunk-size", "0"],
         "argument --chunk-size: expected a positive"),
        (["fit", "absent.csv", "--out", "model"], "galppl fit: error: catalog 'absent.csv': no such file or folder"),
        (["fit", "sky.csv"], "the following arguments are required: --out"),
        (["fit", "sky.csv", "--out", "model"], "inputs 'image+photometry' read images, and a csv table has none: give"),
        (["fit", "sky.csv", "--out", "model", "--cutouts", "absent"], "--cutouts 'absent': no such folder"),
        (["fit", "sky.csv", "--out", "full", "--inputs", "photometry"], "--out 'full' exists and is not empty"),
        (["fit", "sky.csv", "--out", "m", "--config", "absent.toml"], "--config 'absent.toml': no such file"),
        (["recalibrate", "absent_model", "sky.nc", "--out", "new"], "model 'absent_model': no such file or folder"),
        (["recalibrate", "sky.nc", "absent.nc", "--out", "new"], "catalog 'absent.nc': no such file or folder"),
        (["recalibrate", "sky.nc", "sky.nc"], "the following arguments are required: --out"),
        (["diagnose", "absent.nc"], "galppl diagnose: error: posterior 'absent.nc': no such file or folder"),
        (["diagnose", "sky.csv"], "posterior 'sky.csv' is not an InferenceData netCDF file"),
    ],
)
def test_bad_arguments_fail_at_once_in_one_line(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("sky.nc", "sky.csv", "sky.txt", "full/model.pt"):  # files the checks find, not read
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("objID\n1\n")
    fails_at_once(argv, capsys, monkeypatch, message)


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"galppl {galppl.__version__}"


def test_bad_config_file_is_named(tmp_path, capsys, monkeypatch):
    (tmp_path / "fit.toml").write_text("seed = 1\n[chain]\nlayers = 3\n")
    fails_at_once(["run", "--config", str(tmp_path / "fit.toml")], capsys, monkeypatch,
                  "fit.toml': unknown FitConfig.chain field(s) ['layers']; the fields are ['inputs'")
    (tmp_path / "fit.toml").write_text("seed = [\n")
    fails_at_once(["run", "--config", str(tmp_path / "fit.toml")], capsys, monkeypatch, "fit.toml': ")


def test_run_config_mirrors_the_dataclasses_and_flags_override_it(tmp_path):
    from galppl.cli import build_parser, run_config

    (tmp_path / "fit.toml").write_text(TINY_TOML)
    config = run_config(build_parser().parse_args(["run", "--config", str(tmp_path / "fit.toml"), "--seed", "4"]))
    assert config.seed == 4 and config.data.n_galaxies == 300 and config.chain.inputs == "photometry"
    assert config.train.max_epochs == 2 and config.train.max_seconds is None  # no --minutes: the file's budget
    budget = run_config(build_parser().parse_args(["run", "--minutes", "2"]))
    assert budget.train.max_seconds == pytest.approx(54) and budget.vae.max_seconds == pytest.approx(42)


def test_run_writes_model_posteriors_report_and_summary(tmp_path, capsys):
    (tmp_path / "fit.toml").write_text(TINY_TOML)
    out = tmp_path / "run"
    # --minutes 0.001 stops the chain at its budget after one epoch: the run says so and how to give it more
    assert main(["run", "--config", str(tmp_path / "fit.toml"), "--out", str(out), "--num-samples", "20",
                 "--minutes", "0.001", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_because"]["chain"] == "max_seconds"
    assert summary["inputs"] == "photometry" and summary["n_test"] == 45
    assert set(summary["parameters"]) == {"log_mstar", "log_sfr", "z", "log_mbh", "oh"}
    assert set(summary["detectability"]) == {"oh_detected"}  # the gate, read from the chain's blocks
    # R^2 also without the galaxies flagged out-of-distribution (their posteriors are extrapolations)
    flagged = az.from_netcdf(out / "posterior.nc").constant_data["out_of_distribution"].values.astype(bool)
    assert summary["n_flagged_out_of_distribution"] == flagged.sum()
    assert all(np.isfinite(row["r2_unflagged"]) for row in summary["parameters"].values())
    for name in ("posterior.nc", "pred_vs_true.png", "corner_one_galaxy.png", "model/config.json"):
        assert (out / name).exists(), name
    assert galppl.load(out / "model").config.seed == 1
    printed = capsys.readouterr().out
    assert "oh_detected: accuracy" in printed
    assert "the chain stopped at its time budget" in printed and "rerun with --minutes 0.002" in printed
    assert "(chain stopped by max_seconds)" in printed  # a photometry-only run names no VAE
    assert f"R^2 of the {45 - flagged.sum()} galaxies not flagged out-of-distribution" in printed


def test_simulate_then_predict(tmp_path, capsys):
    catalog_path = tmp_path / "sky.nc"
    assert main(["simulate", "200", str(catalog_path), "--image-size", "0", "--seed", "2"]) == 0
    catalog = load_catalog(catalog_path)
    assert catalog.sizes["galaxy"] == 200 and "image" not in catalog
    posterior = galppl.fit("props", catalog, inputs="photometry", max_epochs=1, num_couplings=2, hidden_dim=16,
                           progress=False)
    model = posterior.save(tmp_path / "model")
    assert main(["predict", str(model), str(catalog_path), str(tmp_path / "draws.nc"), "--num-samples", "7"]) == 0
    idata = az.from_netcdf(tmp_path / "draws.nc")
    assert idata.posterior["log_mstar"].shape == (1, 7, 200)
    assert np.isfinite(idata.posterior["oh"].values).all()
    assert "wrote" in capsys.readouterr().out


def test_recalibrate_writes_a_new_model_with_the_outlier_share_and_leaves_the_old_one(tmp_path, capsys):
    catalog = galppl.simulate(600, seed=2, image_size=None, progress=False)
    posterior = galppl.fit("props", catalog.isel(galaxy=slice(0, 400)), inputs="photometry", max_epochs=1,
                           num_couplings=2, hidden_dim=16, progress=False)
    model = posterior.save(tmp_path / "model")
    held = catalog.isel(galaxy=slice(400, None)).drop_vars(["log_sfr", "log_mbh", "oh", "oh_detected"])
    galppl.data.save_catalog(held, tmp_path / "held.nc")
    argv = ["recalibrate", str(model), str(tmp_path / "held.nc"), "--out"]
    assert main(argv + [str(tmp_path / "new")]) == 0
    printed = capsys.readouterr().out
    assert "recalibrated on" in printed and "z: temperature" in printed and f"wrote {tmp_path / 'new'}/" in printed
    assert "log_sfr labelled on 0" in printed  # the warning, as a note
    new, old = galppl.load(tmp_path / "new"), galppl.load(model)
    z = new.chain.blocks[0].variables.index("z")
    assert new.chain.outlier_fraction_core[z] > 0 and old.chain.outlier_fraction_core[z] == 0
    assert new.history["recalibrations"][-1]["calibration"]["core"]["variables"] == ["log_mstar", "z"]
    assert main(argv + [str(tmp_path / "one"), "--one-temperature"]) == 0
    assert galppl.load(tmp_path / "one").chain.outlier_fraction_core[z] == 0
    with pytest.raises(SystemExit) as stop:  # the model's own folder: refused before any work
        main(argv + [str(model)])
    assert stop.value.code == 2 and "is the model's own folder" in capsys.readouterr().err

    # A label outside its support (a negative redshift) is refused, or set missing and named.
    from test_scale import sdss_table

    table = sdss_table(held).assign(z=held["z"].values, lgm_tot_p50=held["log_mstar"].values)
    table.loc[:4, "z"] = -1e-5
    table.to_csv(tmp_path / "held.csv", index=False)
    argv = ["recalibrate", str(model), str(tmp_path / "held.csv"), "--out"]
    with pytest.raises(SystemExit) as stop:
        main(argv + [str(tmp_path / "refused")])
    assert stop.value.code == 1 and "'z' lie outside its physical support" in capsys.readouterr().err
    assert main(argv + [str(tmp_path / "physical"), "--unphysical-as-missing"]) == 0
    assert "z: 5 value(s) outside its physical support (0.0, 0.4) set missing" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["run", "fit", "predict", "recalibrate", "diagnose", "simulate"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0 and f"usage: galppl {command}" in capsys.readouterr().out


def test_fit_predict_resume_and_diagnose_a_users_table(tmp_path, capsys):
    from test_scale import sdss_table

    catalog = galppl.simulate(300, seed=2, image_size=None, progress=False)
    sdss_table(catalog).to_parquet(tmp_path / "sky.parquet", row_group_size=100)
    (tmp_path / "fit.toml").write_text(TINY_TOML)
    # The model learns from the simulated catalog (it has the targets); it predicts the table.
    galppl.data.save_catalog(catalog, tmp_path / "sky.nc")
    model = tmp_path / "model"
    assert main(["fit", str(tmp_path / "sky.nc"), "--config", str(tmp_path / "fit.toml"), "--out", str(model),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {model}/ (props, inputs photometry" in printed
    loaded = galppl.load(model)
    history = loaded.history
    # 300 galaxies: too few for a calibration split of their own, so the validation galaxies calibrate.
    assert len(loaded.split["calibration"]) == 0
    assert (f"calibrated on {history['n_calibration']} validation galaxies "
            f"({history['calibration_left_out_of_distribution']} flagged out-of-distribution left out)") in printed
    assert loaded.config.seed == 1

    out = tmp_path / "summaries.zarr"
    argv = ["predict", str(model), str(tmp_path / "sky.parquet"), str(out), "--num-samples", "20",
            "--chunk-size", "100", "--quiet"]
    with pytest.warns(galppl.ood.OutOfDistributionWarning):
        assert main(argv) == 0
    assert "summaries of 300 galaxies" in capsys.readouterr().out
    import xarray as xr

    first = xr.open_zarr(out, consolidated=False).load()
    with pytest.warns(galppl.ood.OutOfDistributionWarning):  # every chunk done: nothing recomputed
        assert main(argv) == 0
    xr.testing.assert_identical(xr.open_zarr(out, consolidated=False).load(), first)
    assert first["log_mstar"].sel(summary="q0.5").notnull().all()
    with pytest.raises(SystemExit) as stop:
        main(argv[:-3] + ["--num-samples", "30", "--quiet"])
    assert stop.value.code == 1 and "num_samples was 20, now 30" in capsys.readouterr().err

    with pytest.warns(galppl.ood.OutOfDistributionWarning):
        assert main(["predict", str(model), str(tmp_path / "sky.nc"), str(tmp_path / "draws.nc"),
                     "--num-samples", "20"]) == 0
    capsys.readouterr()
    assert main(["diagnose", str(tmp_path / "draws.nc")]) == 0
    printed = capsys.readouterr().out
    assert "log_mstar" in printed and "oh_detected: accuracy" in printed
    summary = json.loads((tmp_path / "draws_diagnostics" / "summary.json").read_text())
    assert set(summary["parameters"]) == {"log_mstar", "log_sfr", "z", "log_mbh", "oh"}
    assert (tmp_path / "draws_diagnostics" / "pred_vs_true.png").exists()


def test_fit_a_table_labelling_only_z_and_mstar_with_unphysical_redshifts(tmp_path, capsys):
    """What the DR9 extract is: z and log M* (its stellar_mass column) only, galaxies with
    z < 0 (the extract has one; five here, so that the training split has some), one without a
    u magnitude. --variables fits a (log M*, z) chain; the unphysical
    label is refused unless --unphysical-as-missing, which names it; diagnose draws its corner
    plot for a galaxy that has draws."""
    from test_scale import sdss_table

    catalog = galppl.simulate(300, seed=2, image_size=None, progress=False)
    table = sdss_table(catalog).assign(redshift=catalog["z"].values, stellar_mass=catalog["log_mstar"].values)
    table.loc[0, "modelMag_u"] = -9999.0  # the first galaxy has no draws
    table.loc[5:9, "redshift"] = -1e-5
    table.to_csv(tmp_path / "dr9.csv", index=False)
    (tmp_path / "fit.toml").write_text(TINY_TOML)
    argv = ["fit", str(tmp_path / "dr9.csv"), "--config", str(tmp_path / "fit.toml"), "--variables", "z,log_mstar",
            "--quiet", "--out"]
    with pytest.raises(SystemExit) as stop:
        main(argv + [str(tmp_path / "refused")])
    assert stop.value.code == 1 and "'z' lie outside its physical support" in capsys.readouterr().err
    assert main(argv + [str(tmp_path / "model"), "--unphysical-as-missing"]) == 0
    printed = capsys.readouterr().out
    ids = ", ".join(str(i) for i in table.loc[5:9, "objID"])
    assert f"z: 5 value(s) outside its physical support (0.0, 0.4) set missing (galaxy ids {ids})" in printed
    model = galppl.load(tmp_path / "model")
    assert [(b.name, b.variables) for b in model.chain.blocks] == [("targets", ("log_mstar", "z"))]

    with pytest.warns(galppl.ood.OutOfDistributionWarning):
        assert main(["predict", str(tmp_path / "model"), str(tmp_path / "dr9.csv"), str(tmp_path / "draws.nc"),
                     "--num-samples", "20"]) == 0
    assert main(["diagnose", str(tmp_path / "draws.nc")]) == 0
    assert (tmp_path / "draws_diagnostics" / "corner_one_galaxy.png").exists()
    summary = json.loads((tmp_path / "draws_diagnostics" / "summary.json").read_text())
    assert set(summary["parameters"]) == {"log_mstar", "z"}


def test_fit_variables_must_be_props_variables(tmp_path, capsys, monkeypatch):
    galppl.data.save_catalog(galppl.simulate(20, seed=2, image_size=None, progress=False), tmp_path / "sky.nc")
    fails_at_once(["fit", str(tmp_path / "sky.nc"), "--out", str(tmp_path / "m"), "--variables", "z,mass"], capsys,
                  monkeypatch, "variables must be distinct names among ('log_mstar', 'log_sfr', 'z', 'log_mbh', 'oh'), "
                               "got ['z', 'mass'] (['mass'] unknown)")


def test_an_interrupted_fit_resumes_from_its_checkpoints(tmp_path, capsys, monkeypatch):
    from galppl.checkpoint import TrainingCheckpoint

    catalog = galppl.simulate(300, seed=2, image_size=None, progress=False)
    galppl.data.save_catalog(catalog, tmp_path / "sky.nc")
    (tmp_path / "fit.toml").write_text(TINY_TOML)
    argv = ["fit", str(tmp_path / "sky.nc"), "--config", str(tmp_path / "fit.toml"), "--quiet", "--out"]
    assert main(argv + [str(tmp_path / "whole")]) == 0

    original = TrainingCheckpoint.save

    def interrupted(self, state):  # Ctrl-C right after the first epoch's checkpoint
        original(self, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(TrainingCheckpoint, "save", interrupted)
    with pytest.raises(SystemExit) as stop:
        main(argv + [str(tmp_path / "model")])
    assert stop.value.code == 130
    assert "galppl fit: interrupted; run the same command again to resume" in capsys.readouterr().err
    assert (tmp_path / ".model.checkpoints" / "training-1.pt").exists() and not (tmp_path / "model").exists()
    monkeypatch.undo()
    assert main(argv + [str(tmp_path / "model")]) == 0
    assert not (tmp_path / ".model.checkpoints").exists()
    whole, resumed = galppl.load(tmp_path / "whole"), galppl.load(tmp_path / "model")
    assert resumed.history["val_loss"] == whole.history["val_loss"]
