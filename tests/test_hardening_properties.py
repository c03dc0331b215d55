"""Property-based tests (hypothesis) of preprocessing and checksums over wide input ranges."""

import numpy as np
import pytest
import xarray as xr
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from galppl.data.files import array_sha256
from galppl.data.prepare import ImageError, ImageScaler, Standardizer, photometry_features
from galppl.data.schema import BANDS, flag, new_catalog

magnitudes = arrays(np.float64, (6, 5), elements=st.floats(5.0, 40.0) | st.just(np.nan))


@settings(max_examples=40, deadline=None)
@given(mag=magnitudes, missing=arrays(bool, 6))
def test_photometry_features_are_differences_finite_where_the_inputs_are(mag, missing):
    catalog = new_catalog(np.arange(6), source="test")
    catalog["mag"] = (("galaxy", "band"), mag, {"units": "mag"})
    flag(catalog, "missing_mag", missing)
    features = photometry_features(catalog).values
    complete = np.isfinite(mag).all(axis=1) & ~missing
    assert np.isfinite(features[complete]).all()
    assert np.isnan(features[~complete]).any(axis=1).all()
    assert np.isnan(features[missing]).all()
    np.testing.assert_allclose(features[complete, :4], mag[complete, :-1] - mag[complete, 1:])


@settings(max_examples=40, deadline=None)
@given(x=arrays(np.float64, (8, 3), elements=st.floats(-1e6, 1e6)))
@example(x=np.vstack([[1.0, 1.0, 1.66131488e-294], np.zeros((7, 3))]))  # found by a CI run: squares underflow
def test_standardizer_round_trips_and_stays_finite(x):
    # A feature constant up to rounding (its spread 0, or below 1e-12 of its values, or so small,
    # e.g. 1e-294 among zeros, that its squares underflow to 0) carries nothing: refused by name.
    spread = np.std(x, axis=0, ddof=1)
    if (~(spread > 1e-12 * np.abs(x).max(axis=0))).any():
        with pytest.raises(ValueError, match="zero variance"):
            Standardizer().fit(x)
        return
    scaler = Standardizer().fit(x)
    z = scaler.transform(x)
    assert np.isfinite(z).all()
    np.testing.assert_allclose(scaler.inverse_transform(z), x, rtol=1e-6, atol=1e-6 * (1 + np.abs(x).max()))


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(1e-6, 1e6), offset=st.floats(-1e3, 1e3), seed=st.integers(0, 2**16))
def test_image_scaler_gives_finite_pixels_over_wide_flux_ranges(scale, offset, seed):
    images = np.random.default_rng(seed).normal(offset, scale, (4, 3, 16, 16))
    try:
        scaler = ImageScaler().fit(images)
    except ImageError as err:  # noise below float32 resolution of the offset: refused by name
        assert "are constant over the training images" in str(err)
        return
    scaled = scaler.transform(images)
    assert scaled.dtype == np.float32 and np.isfinite(scaled).all()


@settings(max_examples=50, deadline=None)
@given(values=arrays(np.float64, st.integers(1, 20), elements=st.floats(allow_nan=True, allow_infinity=True)),
       where=st.integers(0, 19))
def test_array_checksum_is_stable_and_sees_every_change(values, where):
    changed = values.copy()
    k = where % len(values)
    changed[k] = 1.0 if not values[k] == 1.0 else 2.0
    assert array_sha256(changed) != array_sha256(values)
    assert array_sha256(xr.DataArray(values).values) == array_sha256(values.copy())
