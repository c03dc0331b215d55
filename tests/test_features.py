"""galppl.features: the Featurizer (input variants, training input ranges, save/load) and catalog_tensors."""

import numpy as np
import pytest
import torch
import xarray as xr

import galppl
from galppl.features import INPUTS, RANGE_QUANTILES, Featurizer, build_features, catalog_tensors
from galppl.models import Block
from galppl.models.vae import VAEConfig

PHOTOMETRY = ["u_g", "g_r", "r_i", "i_z", "mag_u", "mag_g", "mag_r", "mag_i", "mag_z"]


@pytest.fixture(scope="module")
def catalog():
    return galppl.simulate(60, seed=5, image_size=16, cache=False)


@pytest.fixture(scope="module")
def vae(catalog):
    tiny = VAEConfig(latent_dim=3, conv_channels=(4, 4, 8), hidden=16, batch_size=16, max_epochs=1)
    return galppl.fit_vae(catalog, tiny, progress=False)


@pytest.mark.parametrize("inputs", INPUTS)
def test_each_input_variant_reads_its_parts(catalog, vae, inputs):
    reads_images = inputs != "photometry"
    features = build_features(catalog, inputs, vae if reads_images else None)
    featurizer = Featurizer.from_training(inputs, vae if reads_images else None, features, features)
    latents = [f"latent_mean_{i}" for i in range(3)] + [f"latent_log_std_{i}" for i in range(3)]
    expected = {"image+photometry": latents + PHOTOMETRY, "photometry": PHOTOMETRY, "image": latents}[inputs]
    assert featurizer.feature_names == expected and featurizer.reads_images == reads_images
    features = featurizer.features(catalog)
    assert features.dims == ("galaxy", "feature") and list(features["feature"].values) == expected
    np.testing.assert_array_equal(features["galaxy"].values, catalog["galaxy"].values)


def test_input_ranges_are_quantiles_of_the_complete_training_rows(catalog):
    features = build_features(catalog, "photometry")
    features.values[3, 0] = np.nan  # an incomplete galaxy does not enter the ranges
    featurizer = Featurizer.from_training("photometry", None, features, features)
    ranges = featurizer.input_ranges
    assert ranges.dims == ("feature", "quantile") and ranges["quantile"].values.tolist() == list(RANGE_QUANTILES)
    complete = np.delete(features.values, 3, axis=0)
    np.testing.assert_allclose(ranges.sel(quantile=0.0).values, complete.min(0))
    np.testing.assert_allclose(ranges.sel(quantile=1.0).values, complete.max(0))
    np.testing.assert_allclose(ranges.sel(quantile=0.5).values, np.median(complete, 0))


def test_save_load_round_trip_with_and_without_vae(tmp_path, catalog, vae):
    for inputs, model in (("photometry", None), ("image+photometry", vae)):
        features = build_features(catalog, inputs, model)
        featurizer = Featurizer.from_training(inputs, model, features, features)
        loaded = Featurizer.load(featurizer.save(tmp_path / inputs))
        assert loaded.inputs == inputs and loaded.feature_names == featurizer.feature_names
        xr.testing.assert_identical(loaded.input_ranges, featurizer.input_ranges)
        xr.testing.assert_identical(loaded.features(catalog), featurizer.features(catalog))
        assert (loaded.vae is None) == (model is None)


def test_featurizer_errors(catalog, vae):
    features = build_features(catalog, "photometry")
    with pytest.raises(ValueError, match="inputs 'image' need a fitted VAE"):
        Featurizer.from_training("image", None, features, features)
    with pytest.raises(ValueError, match="inputs 'photometry' read no images: give vae=None"):
        Featurizer.from_training("photometry", vae, features, features)
    with pytest.raises(ValueError, match="inputs must be one of"):
        build_features(catalog, "spectra")
    with pytest.raises(ValueError, match="0 training galaxies have complete inputs"):
        Featurizer.from_training("photometry", None, features * np.nan, features)
    fitted = Featurizer.from_training("photometry", None, features, features)
    reordered = fitted.input_ranges.isel(feature=slice(None, None, -1))
    featurizer = Featurizer("photometry", None, reordered["feature"].values, reordered, fitted.ood)
    with pytest.raises(ValueError, match="the model was fitted on"):
        featurizer.features(catalog)
    with pytest.raises(ValueError, match=r"input_ranges must be \(feature, quantile\)"):
        Featurizer("photometry", None, PHOTOMETRY, reordered, fitted.ood)
    with pytest.raises(FileNotFoundError, match="holds no saved featurizer"):
        Featurizer.load(".")


def test_catalog_tensors_rows_mask_and_targets(catalog):
    features = build_features(catalog, "photometry")
    features.values[1, 2] = np.nan
    blocks = (Block("core", ("log_mstar", "z"), "realnvp"), Block("absent", ("not_in_catalog",), "affine"))
    tensors = catalog_tensors(features, catalog, blocks)
    assert tensors.usable.tolist() == [i != 1 for i in range(60)]
    assert tensors.features.dtype == torch.float32 and tensors.features.shape == (60, 9)
    np.testing.assert_array_equal(tensors.targets["core"][:, 1].numpy(), catalog["z"].values.astype(np.float32))
    assert torch.isnan(tensors.targets["absent"]).all()
    ids = catalog["galaxy"].values[[5, 1, 0]]
    picked = tensors.select(ids)
    np.testing.assert_array_equal(picked.galaxy, ids)
    assert picked.usable.tolist() == [True, False, True]
    complete = picked.usable_rows()
    np.testing.assert_array_equal(complete.galaxy, ids[[0, 2]])
    assert set(complete.batch()) == {"features", "core", "absent"} and torch.isfinite(complete.features).all()
    with pytest.raises(KeyError, match="not in the catalog"):
        tensors.select([-99])
