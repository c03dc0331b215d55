"""Feature preparation: image checks, the image scaler, photometric features, standardisation."""

import json

import numpy as np
import pytest
import xarray as xr

from galppl.data.prepare import (
    ImageError,
    ImageScaler,
    Standardizer,
    check_images,
    image_quality,
    image_stack,
    photometry_features,
)
from galppl.data.schema import BANDS, CatalogError, attrs_for, flag, new_catalog


def noisy_images(n=20, size=16, noise=(0.02, 0.05, 0.1), seed=0):
    """Gaussian blobs plus per-channel sky noise, in nanomaggies."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    blob = np.exp(-0.5 * (xx**2 + yy**2) / 2.0**2)
    flux = rng.uniform(1, 30, (n, 3, 1, 1))
    sky = rng.normal(size=(n, 3, size, size)) * np.asarray(noise)[None, :, None, None]
    return (flux * blob + sky).astype(np.float32)


# -- check_images --------------------------------------------------------------------------
def test_check_images_accepts_a_clean_stack():
    images = noisy_images(3, 24)
    assert check_images(images) is not None and check_images(images).shape == (3, 3, 24, 24)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((3, 16, 16), "4-d.*add a leading galaxy axis"),
        ((0, 3, 16, 16), "no images"),
        ((2, 1, 16, 16), "3 channels.*got 1"),
        ((2, 5, 16, 16), "3 channels.*got 5"),
        ((2, 3, 16, 24), "square"),
        ((2, 3, 20, 20), "multiple of 8.*got 20"),
    ],
)
def test_check_images_rejects_bad_shapes(shape, message):
    with pytest.raises(ImageError, match=message):
        check_images(np.zeros(shape, dtype=np.float32))


def test_check_images_names_the_galaxies_with_bad_pixels():
    images = noisy_images(8, 16)
    images[2, 1, 3, 3] = np.nan
    images[6, 0, 0, 0] = np.inf
    with pytest.raises(ImageError, match="indices 2, 6"):
        check_images(images)
    assert check_images(images, finite=False) is not None


def test_image_quality_flags_rather_than_raises():
    images = noisy_images(4, 16)
    images[1, 0, 0, 0] = np.nan
    ds = new_catalog([10, 11, 12, 13], source="test")
    ds["image"] = (("galaxy", "channel", "y", "x"), images, attrs_for("image"))
    flag(ds, "bad_image", [False, False, False, True])
    usable = image_quality(ds)
    assert usable.dims == ("galaxy",) and list(usable.galaxy.values) == [10, 11, 12, 13]
    assert usable.values.tolist() == [True, False, True, False]
    with pytest.raises(CatalogError, match="no 'image'"):
        image_quality(new_catalog([1], source="test"))


def test_image_stack_masks_a_catalog_and_checks_an_array():
    images = noisy_images(4, 16)
    images[1, 0, 0, 0] = np.nan
    ds = new_catalog([10, 11, 12, 13], source="test")
    ds["image"] = (("galaxy", "channel", "x", "y"), images.transpose(0, 1, 3, 2), attrs_for("image"))
    stack, usable, units, catalog = image_stack(ds)
    np.testing.assert_array_equal(stack, images)  # transposed to (galaxy, channel, y, x)
    assert usable.tolist() == [True, False, True, True] and units == "nanomaggy" and catalog is ds
    with pytest.raises(ImageError, match="indices 1"):
        image_stack(images)
    clean = images[[0, 2]]
    for data in (clean, xr.DataArray(clean)):
        stack, usable, units, catalog = image_stack(data)
        np.testing.assert_array_equal(stack, clean)
        assert usable.tolist() == [True, True] and units == "nanomaggy" and catalog is None
    ds["image"].attrs["units"] = "counts"
    with pytest.raises(CatalogError, match="units 'counts'"):
        image_stack(ds)


# -- ImageScaler ---------------------------------------------------------------------------
def test_scaler_standardises_and_inverts():
    images = noisy_images(30, 16)
    scaler = ImageScaler().fit(images)
    scaled = scaler.transform(images)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(scaled.std(axis=(0, 2, 3)), 1, atol=1e-3)
    np.testing.assert_allclose(scaler.inverse_transform(scaled), images, rtol=1e-4, atol=1e-5)


def test_scaler_softening_is_the_sky_noise():
    noise = (0.02, 0.05, 0.1)
    scaler = ImageScaler(border=3).fit(noisy_images(40, 32, noise=noise, seed=1))
    np.testing.assert_allclose(scaler.softening, noise, rtol=0.1)
    # Given softening is used as is.
    assert ImageScaler(softening=0.5).fit(noisy_images(5, 16)).softening.tolist() == [0.5] * 3


def test_scaler_json_round_trip():
    images = noisy_images(10, 16)
    scaler = ImageScaler().fit(images)
    back = ImageScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    np.testing.assert_array_equal(back.transform(images), scaler.transform(images))
    assert back.units == "nanomaggy"


def test_scaler_refuses_other_pixel_units():
    images = noisy_images(10, 16)
    scaler = ImageScaler().fit(images, units="nanomaggy")
    with pytest.raises(ImageError, match="fitted on images in 'nanomaggy'.*'relative'"):
        scaler.transform(images, units="relative")
    relative = ImageScaler().fit(np.clip(images / 30, 0, 1), units="relative")
    assert relative.softening is None  # JPEG composites are already stretched
    assert relative.to_dict()["units"] == "relative"
    with pytest.raises(ImageError, match="fitted on images in 'relative'"):
        relative.transform(images, units="nanomaggy")


def test_scaler_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        ImageScaler().transform(noisy_images(2, 16))
    with pytest.raises(ValueError, match="units"):
        ImageScaler().fit(noisy_images(2, 16), units="adu")
    with pytest.raises(ImageError, match="constant"):
        ImageScaler(softening=1.0).fit(np.ones((3, 3, 16, 16)))
    with pytest.raises(ImageError, match="sky noise"):
        ImageScaler().fit(np.zeros((3, 3, 16, 16)))
    with pytest.raises(ValueError, match="softening"):
        ImageScaler(softening=-1)


# -- photometry_features and Standardizer -------------------------------------------------
def photometry_catalog(with_extinction=True):
    rng = np.random.default_rng(3)
    n = 6
    ds = new_catalog(np.arange(100, 100 + n), source="test")
    mag = rng.uniform(15, 20, (n, 5))
    mag[2, 1] = np.nan  # g missing for the third galaxy
    ds["mag"] = (("galaxy", "band"), mag, attrs_for("mag"))
    if with_extinction:
        ds["extinction"] = (("galaxy", "band"), rng.uniform(0, 0.3, (n, 5)), attrs_for("extinction"))
    return ds


def test_photometry_features_are_corrected_colours_and_magnitudes():
    ds = photometry_catalog()
    feats = photometry_features(ds)
    assert feats.dims == ("galaxy", "feature")
    assert list(feats.feature.values) == ["u_g", "g_r", "r_i", "i_z", "mag_u", "mag_g", "mag_r", "mag_i", "mag_z"]
    corrected = ds["mag"] - ds["extinction"]
    for band in BANDS:
        xr.testing.assert_allclose(feats.sel(feature=f"mag_{band}", drop=True), corrected.sel(band=band, drop=True))
    for a, b in zip(BANDS, BANDS[1:]):
        expected = (corrected.sel(band=a) - corrected.sel(band=b)).values
        np.testing.assert_allclose(feats.sel(feature=f"{a}_{b}").values, expected)
    # The missing g magnitude makes exactly u-g, g-r and mag_g NaN for that galaxy.
    nan = np.isnan(feats.isel(galaxy=2).values)
    assert [f for f, m in zip(feats.feature.values, nan) if m] == ["u_g", "g_r", "mag_g"]
    assert np.isfinite(feats.drop_sel(galaxy=102).values).all()
    assert feats.attrs["extinction_corrected"] == 1


def test_photometry_features_without_extinction_says_so():
    ds = photometry_catalog(with_extinction=False)
    feats = photometry_features(ds)
    assert feats.attrs["extinction_corrected"] == 0 and "NOT" in feats.attrs["description"]
    np.testing.assert_allclose(feats.sel(feature="mag_r").values, ds["mag"].sel(band="r").values)


def test_standardizer_round_trip_with_nan():
    feats = photometry_features(photometry_catalog())
    std = Standardizer().fit(feats)
    z = std.transform(feats)
    assert isinstance(z, xr.DataArray) and z.dims == feats.dims
    np.testing.assert_allclose(np.nanmean(z.values, axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(np.nanstd(z.values, axis=0, ddof=1), 1, atol=1e-12)
    assert np.isnan(z.isel(galaxy=2).sel(feature="g_r"))
    xr.testing.assert_allclose(std.inverse_transform(z), feats)
    back = Standardizer.from_dict(json.loads(json.dumps(std.to_dict())))
    np.testing.assert_array_equal(back.transform(feats.values), z.values)


def test_standardizer_errors_name_the_feature():
    x = xr.DataArray(
        np.array([[1.0, 5.0, np.nan], [2.0, 5.0, np.nan]]),
        dims=("galaxy", "feature"),
        coords={"feature": ["a", "b", "c"]},
    )
    with pytest.raises(ValueError, match="feature\\(s\\) b, c have zero variance"):
        Standardizer().fit(x)
    std = Standardizer().fit(np.array([[1.0, 2.0], [3.0, 5.0]]))
    with pytest.raises(ValueError, match="expected 2 features"):
        std.transform(np.zeros((1, 3)))
    with pytest.raises(RuntimeError, match="not fitted"):
        Standardizer().transform(np.zeros((1, 2)))


def test_standardizer_ignores_non_finite_values_and_takes_names():
    x = np.array([[1.0, 10.0], [np.inf, 20.0], [3.0, np.nan], [5.0, 30.0]])
    std = Standardizer().fit(x, names=["mag_r", "flux"])
    np.testing.assert_allclose(std.mean, [3.0, 20.0])
    np.testing.assert_allclose(std.std, [2.0, 10.0])  # sample standard deviations (ddof=1)
    assert std.features == ["mag_r", "flux"]
    with pytest.raises(ValueError, match="feature\\(s\\) flux have zero variance or fewer than 2 finite values"):
        Standardizer().fit(np.array([[1.0, 2.0], [3.0, np.nan]]), names=["mag_r", "flux"])
    with pytest.raises(ValueError, match="3 names"):
        Standardizer().fit(x, names=["a", "b", "c"])


def test_scaler_chunking_does_not_change_results(monkeypatch):
    import galppl.data.prepare as prepare

    images = noisy_images(11, 16, seed=4)
    whole = ImageScaler().fit(images)
    monkeypatch.setattr(prepare, "_CHUNK", 3)
    chunked = ImageScaler().fit(images)
    np.testing.assert_allclose(chunked.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(chunked.std, whole.std, rtol=1e-10)
    np.testing.assert_array_equal(chunked.transform(images), whole.transform(images))
