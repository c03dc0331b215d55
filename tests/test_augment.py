"""Noise augmentation with the catalog's magnitude errors (galppl.augment, fit(..., mag_noise=...))."""

import numpy as np
import pytest
import torch

import galppl
from galppl.augment import band_to_feature_map, magnitude_errors, with_magnitude_noise
from galppl.data import simulate
from galppl.data.prepare import photometry_features

QUICK = dict(max_epochs=2, num_couplings=2, hidden_dim=16, batch_size=128, progress=False)


@pytest.fixture(scope="module")
def catalog():
    return simulate(400, seed=3, image_size=None, cache=False)


def test_moving_the_magnitudes_moves_the_features_exactly_as_the_map_says(catalog):
    features = photometry_features(catalog)
    matrix = band_to_feature_map(features["feature"].values)
    delta = np.random.default_rng(0).normal(0, 0.1, size=(catalog.sizes["galaxy"], 5))
    moved = catalog.copy(deep=True)
    moved["mag"].values = moved["mag"].transpose("galaxy", "band").values + delta
    expected = photometry_features(moved).values
    np.testing.assert_allclose(features.values + delta @ matrix.double().numpy(), expected, atol=1e-9)
    with pytest.raises(ValueError, match=r"none of \['latent_mean_0'\]"):
        band_to_feature_map(["latent_mean_0"])


def test_the_wrapper_moves_features_only_in_training_by_the_errors_and_never_where_none_is_given():
    module = torch.nn.Linear(1, 1)
    names = ["u_g", "g_r", "r_i", "i_z", "mag_u", "mag_g", "mag_r", "mag_i", "mag_z"]
    seen = {}
    loss = with_magnitude_noise(lambda features, **batch: seen.setdefault("x", features), module,
                                band_to_feature_map(names), scale=2.0)
    features = torch.zeros(50000, 9)
    errors = torch.tensor([0.1, 0.02, 0.0, 0.03, 0.05]).expand(50000, 5)
    loss(features, mag_err=errors)
    moved = seen.pop("x")
    # 2 x N(0, err^2) per band: mag_u sd 0.2, mag_r (no error) fixed, u-g sd 2 sqrt(0.1^2 + 0.02^2).
    np.testing.assert_allclose(moved[:, 4:].std(0).numpy(), [0.2, 0.04, 0.0, 0.06, 0.1], rtol=0.02, atol=1e-7)
    np.testing.assert_allclose(moved[:, 0].std().item(), 2 * np.hypot(0.1, 0.02), rtol=0.02)
    module.eval()
    loss(features, mag_err=errors)
    assert torch.equal(seen["x"], features)
    with pytest.raises(ValueError, match=r"scale must be > 0, got 0"):
        with_magnitude_noise(loss, module, band_to_feature_map(names), scale=0)


def test_fit_with_mag_noise_trains_other_weights_and_needs_errors(catalog):
    assert magnitude_errors(catalog, catalog["galaxy"].values[:3]).shape == (3, 5)
    plain = galppl.fit("props", catalog, inputs="photometry", **QUICK)
    noisy = galppl.fit("props", catalog, inputs="photometry", mag_noise=1.0, **QUICK)
    assert noisy.config.chain.mag_noise == 1.0 and plain.config.chain.mag_noise == 0.0
    assert not torch.equal(plain.chain.representation[0].weight, noisy.chain.representation[0].weight)
    # A fine-tune does not inherit the augmentation: its small real catalog may have no errors.
    tuned = galppl.fit(data=catalog.drop_vars("mag_err"), init=noisy, **QUICK)
    assert tuned.config.chain.mag_noise == 0.0
    with pytest.raises(ValueError, match=r"mag_noise needs the catalog's magnitude errors"):
        galppl.fit("props", catalog.drop_vars("mag_err"), inputs="photometry", mag_noise=1.0, **QUICK)
    with pytest.raises(ValueError, match=r"ChainConfig.mag_noise must be a finite number >= 0 .*got -1"):
        galppl.fit("props", catalog, inputs="photometry", mag_noise=-1, **QUICK)
    bad = catalog.copy(deep=True)
    bad["mag_err"].values[0, 0] = -0.1
    with pytest.raises(ValueError, match=r"mag_err must be >= 0 mag, got -0.1"):
        magnitude_errors(bad, bad["galaxy"].values)
