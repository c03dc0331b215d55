"""Images unlike an image model's training stamps (issue #17): all zeros, negated, pure noise,
a 0..1 display stretch labelled as nanomaggies, or 1e30 get the quality bit 'bad_image' and no
posterior (usable False, NaN draws) at prediction, with a warning naming them; clean mock
stamps are not flagged."""

import warnings

import numpy as np
import pytest

import galppl
from galppl.data.image_checks import IMAGE_STATISTICS, ImageRanges, image_statistics
from galppl.data.schema import has_flag
from galppl.ood import OutOfDistributionWarning

SMALL = dict(max_epochs=1, num_couplings=2, hidden_dim=16, progress=False)
CORRUPTED = 10  # galaxies whose stamps each test spoils


@pytest.fixture(scope="module")
def image_posterior():
    catalog = galppl.simulate(300, seed=5, image_size=16, progress=False)
    return galppl.fit("props", catalog, inputs="image+photometry", vae_max_epochs=1, **SMALL)


@pytest.fixture(scope="module")
def new_galaxies():
    return galppl.simulate(150, seed=6, image_size=16, progress=False)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GALPPL_CACHE", str(tmp_path / "cache"))


def predict_quietly(posterior, catalog):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDistributionWarning)
        return posterior.predict(catalog, num_samples=8)


def test_clean_mock_stamps_are_not_flagged(image_posterior, new_galaxies):
    constant = predict_quietly(image_posterior, new_galaxies).constant_data
    flagged = has_flag(constant, "bad_image").values
    print(f"false-flag rate of clean mock stamps: {flagged.mean():.1%} ({int(flagged.sum())} of {flagged.size})")
    assert flagged.mean() < 0.02


def display_stretch(stamps):
    """0..1 per channel after an arcsinh stretch, as a JPEG composite's values."""
    stretched = np.arcsinh(stamps / 0.07)
    low, high = stretched.min(axis=(-2, -1), keepdims=True), stretched.max(axis=(-2, -1), keepdims=True)
    return (stretched - low) / (high - low)


CORRUPTIONS = {
    "all zeros": lambda stamps, rng: np.zeros_like(stamps),
    "negated": lambda stamps, rng: -stamps,
    "pure noise": lambda stamps, rng: rng.normal(0.0, 0.07, stamps.shape),
    "0-1 stretch as nanomaggies": lambda stamps, rng: display_stretch(stamps),
    "1e30": lambda stamps, rng: np.full_like(stamps, 1e30),
    "1e30 times the flux": lambda stamps, rng: stamps * 1e30,
}


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_a_spoilt_image_gets_bad_image_and_no_posterior(image_posterior, new_galaxies, how):
    catalog = new_galaxies.copy(deep=True)
    image = catalog["image"].transpose("galaxy", "channel", "y", "x")
    spoilt = CORRUPTIONS[how](image.values[:CORRUPTED].astype(np.float64), np.random.default_rng(0))
    catalog["image"] = image.copy(data=np.concatenate([spoilt, image.values[CORRUPTED:]]).astype(np.float32))
    with pytest.warns(OutOfDistributionWarning, match=r"images unlike the training stamps \(galaxy ids 0, 1, 2"):
        idata = image_posterior.predict(catalog, num_samples=8)
    constant = idata.constant_data
    bad = has_flag(constant, "bad_image").values
    assert bad[:CORRUPTED].all()
    assert not constant["usable"].values[:CORRUPTED].any()
    assert np.isnan(idata.posterior["log_mstar"].values[..., :CORRUPTED]).all()
    assert bad[CORRUPTED:].mean() < 0.02  # the clean galaxies beside them keep their answers
    assert np.isfinite(idata.posterior["log_mstar"].values[..., CORRUPTED:][..., ~bad[CORRUPTED:]]).all()


def test_the_training_image_ranges_travel_with_the_saved_model(image_posterior, new_galaxies, tmp_path):
    loaded = galppl.load(image_posterior.save(tmp_path / "model"))
    saved, original = loaded.featurizer.vae.scaler.ranges, image_posterior.featurizer.vae.scaler.ranges
    np.testing.assert_array_equal(saved.low, original.low)
    np.testing.assert_array_equal(saved.high, original.high)
    catalog = new_galaxies.copy(deep=True)
    catalog["image"].values[:3] = 0.0
    with pytest.warns(OutOfDistributionWarning, match="images unlike"):
        bad = has_flag(loaded.predict(catalog, num_samples=4).constant_data, "bad_image").values
    assert bad[:3].all()


def test_image_ranges_round_trip_and_leave_undefined_statistics_unchecked():
    rng = np.random.default_rng(1)
    noise_free = np.zeros((20, 3, 16, 16))
    noise_free[:, :, 6:10, 6:10] = rng.uniform(1, 2, (20, 3, 1, 1))  # no sky noise: undefined statistics
    ranges = ImageRanges.fit(noise_free, "nanomaggy")
    assert np.isinf(ranges.low[IMAGE_STATISTICS.index("log_sky_noise")]).all()
    back = ImageRanges.from_dict(ranges.to_dict())
    np.testing.assert_array_equal(back.low, ranges.low)
    np.testing.assert_array_equal(back.unlike_training(noise_free), ranges.unlike_training(noise_free))
    assert image_statistics(noise_free).shape == (20, len(IMAGE_STATISTICS), 3)


def test_image_ranges_from_another_galppl_are_refused_naming_the_statistics():
    data = ImageRanges.fit(np.random.default_rng(2).normal(size=(10, 3, 16, 16)), "nanomaggy").to_dict()
    data["statistics"] = ["log_sky_noise"]
    with pytest.raises(ValueError, match="record statistics \\['log_sky_noise'\\], this galppl computes"):
        ImageRanges.from_dict(data)
