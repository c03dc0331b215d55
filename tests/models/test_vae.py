"""The image VAE: training, encoding, shapes, persistence and bad-input errors."""

import dataclasses
import json

import numpy as np
import pyro
import pytest
import torch

from galppl.data.prepare import ImageError
from galppl.data.schema import CatalogError, attrs_for, flag, new_catalog
from galppl.guides.encoder import Encoder
from galppl.models.vae import Decoder, FittedVAE, VAEConfig, VAEModel, fit_vae

SIZE = 16


def blob_images(n, size=SIZE, seed=0):
    """Elliptical Gaussian galaxies with a colour, plus sky noise, in nanomaggies."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    width = rng.uniform(1.0, size / 5, n)[:, None, None]
    axis = rng.uniform(0.4, 1.0, n)[:, None, None]
    angle = rng.uniform(0, np.pi, n)[:, None, None]
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = (yy * np.cos(angle) - xx * np.sin(angle)) / axis
    profile = np.exp(-0.5 * (u**2 + v**2) / width**2)
    flux = 10 ** rng.uniform(0.5, 2.0, (n, 1, 1, 1)) * np.array([0.6, 1.0, 1.3])[None, :, None, None]
    images = flux * profile[:, None] / profile.sum(axis=(1, 2))[:, None, None, None]
    return (images + rng.normal(0, 0.05, images.shape)).astype(np.float32)


def blob_catalog(n, size=SIZE, seed=0):
    ds = new_catalog(np.arange(1000, 1000 + n), ra=np.linspace(10, 11, n), dec=np.zeros(n), source="test blobs")
    ds["image"] = (("galaxy", "channel", "y", "x"), blob_images(n, size, seed), attrs_for("image"))
    return ds


TINY = VAEConfig(latent_dim=4, conv_channels=(8, 8, 16), hidden=32, lr=5e-3, batch_size=16, max_epochs=4, patience=4)


@pytest.fixture(scope="module")
def fitted():
    return fit_vae(blob_catalog(240), TINY, progress=False)


def test_elbo_decreases_and_reconstructions_beat_the_mean(fitted):
    h = fitted.history
    assert h.epochs_run == 4 and h.stopped_because == "max_epochs"
    assert h.train_loss[-1] < 0.6 * h.train_loss[0]
    assert h.val_loss[-1] < h.val_loss[0]
    # Predicting the channel mean everywhere scores ~1 in standardised units; the sky
    # noise alone leaves ~0.4.
    assert fitted.info["val_mse"] < 0.6
    assert fitted.info == {**fitted.info, "n_train": 204, "n_val": 36, "n_excluded": 0}


def test_encode_is_deterministic_and_labelled(fitted):
    ds = blob_catalog(10, seed=5)
    first, second = fitted.encode(ds), fitted.encode(ds, batch_size=3)
    np.testing.assert_allclose(first.latent_mean, second.latent_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(fitted.encode(ds).latent_mean, first.latent_mean)
    assert first.latent_mean.dims == ("galaxy", "latent") and first.latent_mean.shape == (10, 4)
    assert (first.latent_std > 0).all()
    np.testing.assert_array_equal(first.galaxy, ds.galaxy)
    np.testing.assert_array_equal(first.ra, ds.ra)
    assert not fitted.encoder.training
    # Arrays are numbered 0..n-1.
    from_array = fitted.encode(ds["image"].values)
    np.testing.assert_array_equal(from_array.galaxy, np.arange(10))
    np.testing.assert_array_equal(from_array.latent_mean, first.latent_mean)


def test_bad_images_in_a_catalog_give_nan_rows(fitted):
    ds = blob_catalog(6, seed=6)
    ds["image"].values[1, 0, 2, 2] = np.nan
    flag(ds, "bad_image", [False, False, False, True, False, False])
    enc = fitted.encode(ds)
    bad = np.isnan(enc.latent_mean.values).all(axis=1)
    assert bad.tolist() == [False, True, False, True, False, False]
    assert np.isfinite(enc.latent_mean.values[~bad]).all()
    assert enc.image_usable.values.tolist() == (~bad).tolist()
    recon = fitted.reconstruct(ds)
    assert np.isnan(recon[1]).all() and np.isfinite(recon[0]).all()


def test_decode_returns_input_units(fitted):
    images = blob_images(5, seed=7)
    z = fitted.encode(images)
    decoded, scaled = fitted.decode(z), fitted.decode(z.latent_mean.values, scaled=True)
    assert decoded.shape == images.shape and decoded.dtype == np.float32
    np.testing.assert_allclose(fitted.scaler.transform(decoded), scaled, atol=1e-3)
    # The reconstructed total flux follows the input's (bright galaxies stay bright).
    assert np.corrcoef(decoded.sum(axis=(1, 2, 3)), images.sum(axis=(1, 2, 3)))[0, 1] > 0.5
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        fitted.decode(np.zeros((2, 3)))


def test_save_load_round_trip(fitted, tmp_path):
    fitted.save(tmp_path / "vae")
    meta = json.loads((tmp_path / "vae" / "config.json").read_text())
    assert meta["kind"] == "vae" and meta["config"]["latent_dim"] == 4 and meta["scaler"]["units"] == "nanomaggy"
    assert "galppl_version" in meta and meta["history"]["epochs_run"] == 4
    loaded = FittedVAE.load(tmp_path / "vae")
    ds = blob_catalog(7, seed=8)
    a, b = fitted.encode(ds), loaded.encode(ds)
    np.testing.assert_array_equal(a.latent_mean, b.latent_mean)
    np.testing.assert_array_equal(a.latent_std, b.latent_std)
    np.testing.assert_array_equal(fitted.decode(a), loaded.decode(a))
    assert loaded.config == fitted.config and loaded.history == fitted.history
    with pytest.raises(FileNotFoundError, match="not a saved galppl VAE"):
        FittedVAE.load(tmp_path)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((0, 3, SIZE, SIZE), "no images"),
        ((4, 1, SIZE, SIZE), "3 channels"),
        ((4, 3, 20, 20), "multiple of 8"),
        ((3, SIZE, SIZE), "4-d"),
    ],
)
def test_bad_image_shapes_are_clear_errors(fitted, shape, message):
    images = np.ones(shape, dtype=np.float32)
    with pytest.raises(ImageError, match=message):
        fit_vae(images, TINY, progress=False)
    with pytest.raises(ImageError, match=message):
        fitted.encode(images)


def test_nan_pixels_in_an_array_are_a_clear_error(fitted):
    images = blob_images(5)
    images[3, 2, 0, 0] = np.nan
    with pytest.raises(ImageError, match="NaN or infinite pixels.*indices 3"):
        fitted.encode(images)
    with pytest.raises(ImageError, match="indices 3"):
        fit_vae(images, TINY, progress=False)


def test_wrong_size_or_units_are_clear_errors(fitted):
    with pytest.raises(ImageError, match="takes 16 px images, got 24 px"):
        fitted.encode(blob_images(2, size=24))
    ds = blob_catalog(3)
    ds["image"].attrs["units"] = "relative"
    with pytest.raises(ImageError, match="fitted on images in 'nanomaggy'"):
        fitted.encode(ds)
    ds["image"].attrs["units"] = "counts"
    with pytest.raises(CatalogError, match="units 'counts'"):
        fitted.encode(ds)
    with pytest.raises(ImageError, match="image_size is 32"):
        fit_vae(blob_images(8), VAEConfig(image_size=32), progress=False)


def test_learned_scale_on_relative_images_excludes_flagged(tmp_path):
    ds = blob_catalog(64, seed=9)
    ds["image"].values[:] = np.clip(ds["image"].values / 5, 0, 1)
    ds["image"].attrs["units"] = "relative"
    ds["image"].values[5] = np.nan
    flag(ds, "bad_image", np.isnan(ds["image"].values).any(axis=(1, 2, 3)))
    cfg = VAEConfig(**{**TINY.to_dict(), "likelihood_scale": "learned", "max_epochs": 1})
    fitted = fit_vae(ds, cfg, progress=False)
    assert fitted.info["n_excluded"] == 1 and fitted.scaler.units == "relative"
    assert fitted.vae_model.log_scale.requires_grad
    assert not torch.allclose(fitted.vae_model.log_scale, torch.zeros(3))  # it was trained
    loaded = FittedVAE.load(fitted.save(tmp_path / "learned"))
    torch.testing.assert_close(loaded.vae_model.likelihood_scale(), fitted.vae_model.likelihood_scale())
    assert np.isnan(loaded.encode(ds).latent_mean.values[5]).all()


@pytest.mark.parametrize("size", [64, 160])
def test_shapes(size):
    images = torch.randn(2, 3, size, size)
    encoder = Encoder(image_size=size)
    loc, scale = encoder(images)
    assert loc.shape == scale.shape == (2, 32) and (scale > 0).all()
    decoder = Decoder(image_size=size)
    assert decoder(loc).shape == (2, 3, size, size)
    # The Pyro model and guide agree on the sites and scale the minibatch to n_total.
    vae = VAEModel(VAEConfig(image_size=size))
    guide = pyro.poutine.trace(encoder.guide).get_trace(images, n_total=10)
    model = pyro.poutine.trace(pyro.poutine.replay(vae.model, trace=guide)).get_trace(images, n_total=10)
    assert model.nodes["z"]["value"].shape == (2, 32)
    assert model.nodes["image"]["fn"].event_shape == (3, size, size)
    assert model.nodes["image"]["scale"] == guide.nodes["z"]["scale"] == 5.0
    pyro.clear_param_store()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_size": 20}, "multiple of 8"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"likelihood_scale": -1.0}, "likelihood_scale"),
        ({"likelihood_scale": "fixed"}, "likelihood_scale"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"norm": "layer"}, "norm"),
        ({"conv_channels": (8, 8)}, "conv_channels"),
        ({"lr": -1.0}, "VAEConfig.lr"),
        ({"batch_size": 0}, "VAEConfig.batch_size"),
        ({"device": "gpu"}, "device"),
        ({"trainer": "jax"}, "VAEConfig.trainer must be one of"),
        ({"precision": "float16"}, "VAEConfig.precision must be one of"),
        ({"trainer": "pyro", "precision": "bfloat16"}, "'bfloat16' needs trainer='torch'"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VAEConfig(**kwargs)


def test_galppl_fit_vae_and_galppl_load_round_trip(tmp_path):
    """The public entry points: galppl.fit_vae(data, ...) and galppl.load."""
    import galppl

    ds = blob_catalog(48, seed=10)
    fitted = galppl.fit_vae(ds, max_epochs=1, progress=False)
    assert isinstance(fitted, FittedVAE)
    assert fitted.config.image_size == SIZE and fitted.config.lr == 1e-4 and fitted.history.epochs_run == 1
    enc = fitted.encode(ds)
    assert enc.latent_mean.dims == enc.latent_std.dims == ("galaxy", "latent")
    assert enc.latent_mean.shape == (48, 32)
    loaded = galppl.load(fitted.save(tmp_path / "vae"))
    assert isinstance(loaded, FittedVAE)
    again = loaded.encode(ds)
    np.testing.assert_array_equal(enc.latent_mean, again.latent_mean)
    np.testing.assert_array_equal(enc.latent_std, again.latent_std)
    assert loaded.scaler.to_dict() == fitted.scaler.to_dict()


@pytest.mark.parametrize("likelihood_scale", [0.1, "learned"])
def test_negative_elbo_equals_pyros_trace_elbo(likelihood_scale):
    """The plain-torch loss is the Pyro model's Trace_ELBO: same value and gradients on the same draws."""
    config = VAEConfig(image_size=SIZE, latent_dim=4, conv_channels=(8, 8, 16), hidden=32,
                       likelihood_scale=likelihood_scale)
    torch.manual_seed(0)
    encoder, vae = Encoder(SIZE, 4, 3, (8, 8, 16), 32), VAEModel(config)
    if vae.learned_scale:
        with torch.no_grad():
            vae.log_scale.copy_(torch.tensor([-1.0, -0.5, 0.3]))
    images = torch.randn(6, 3, SIZE, SIZE)
    params = [p for m in (encoder, vae) for p in m.parameters()]

    def loss_and_grads(fn):
        torch.manual_seed(1)  # the same draw of z for both
        loss = fn()
        return loss.item(), torch.autograd.grad(loss, params)

    with pyro.get_param_store().scope():
        elbo = pyro.infer.Trace_ELBO()
        pyro_loss, pyro_grads = loss_and_grads(lambda: elbo.differentiable_loss(vae.model, encoder.guide, images, 40))
    torch_loss, torch_grads = loss_and_grads(lambda: vae.negative_elbo(encoder, images, 40))
    assert torch_loss == pytest.approx(pyro_loss, rel=1e-5)
    for got, want in zip(torch_grads, pyro_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())
    # The minibatch stands for n_total galaxies, as the galaxy plate scales it.
    torch.manual_seed(1)
    whole = vae.negative_elbo(encoder, images).item()
    assert torch_loss == pytest.approx(whole * 40 / 6, rel=1e-6)
    with pytest.raises(ValueError, match=r"n_total \(3\) cannot be smaller than the minibatch \(6"):
        vae.negative_elbo(encoder, images, 3)


def test_torch_trainer_learns_what_the_pyro_trainer_learns():
    """Same seed, same data: the float32 torch path follows the Pyro SVI path step for step."""
    ds = blob_catalog(240)
    fits = {
        trainer: fit_vae(ds, VAEConfig(**{**TINY.to_dict(), "trainer": trainer, "precision": "float32"}), progress=False)
        for trainer in ("pyro", "torch")
    }
    pyro_fit, torch_fit = fits["pyro"], fits["torch"]
    np.testing.assert_allclose(torch_fit.history.train_loss, pyro_fit.history.train_loss, rtol=1e-4)
    np.testing.assert_allclose(torch_fit.history.val_loss, pyro_fit.history.val_loss, rtol=1e-4)
    assert torch_fit.info["val_mse"] == pytest.approx(pyro_fit.info["val_mse"], rel=1e-3)
    assert pyro_fit.info["trainer"] == "pyro" and torch_fit.info["precision"] == "float32"
    # Channels-last training leaves the weights in the default layout (saved files unchanged).
    assert all(p.is_contiguous() for m in (torch_fit.encoder, torch_fit.vae_model) for p in m.parameters())


def test_bfloat16_training_keeps_the_loss_and_the_reconstructions():
    config = VAEConfig(**{**TINY.to_dict(), "precision": "bfloat16"})
    torch.manual_seed(0)
    encoder, vae = Encoder(SIZE, 4, 3, (8, 8, 16), 32), VAEModel(dataclasses.replace(config, image_size=SIZE))
    images = torch.randn(6, 3, SIZE, SIZE)
    torch.manual_seed(1)
    exact = vae.negative_elbo(encoder, images).item()
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = vae.negative_elbo(encoder, images)
    assert low.dtype == torch.float32 and low.item() == pytest.approx(exact, rel=1e-2)
    fitted = fit_vae(blob_catalog(240), config, progress=False)
    assert fitted.info["precision"] == "bfloat16"
    h = fitted.history
    assert h.train_loss[-1] < 0.6 * h.train_loss[0] and fitted.info["val_mse"] < 0.6


def test_a_vae_saved_by_galppl_0_2_0_still_loads(fitted, tmp_path):
    """0.2.0 wrote no ``trainer``/``precision`` (and its info had no such keys): the defaults fill in."""
    path = fitted.save(tmp_path / "old")
    meta = json.loads((path / "config.json").read_text())
    for key in ("trainer", "precision"):
        del meta["config"][key]
        del meta["info"][key]
    meta["galppl_version"] = "0.2.0"
    (path / "config.json").write_text(json.dumps(meta))
    loaded = FittedVAE.load(path)
    assert loaded.config == fitted.config
    ds = blob_catalog(4, seed=11)
    np.testing.assert_array_equal(loaded.encode(ds).latent_mean, fitted.encode(ds).latent_mean)
