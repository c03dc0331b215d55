"""JPEG colour-composite cutouts: the real Wu & Boada set and small JPEGs written here."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from galppl.data.io import load_catalog, save_catalog
from galppl.data.loaders import load_jpeg_cutouts
from galppl.data.schema import CatalogError, has_flag


def write_jpeg(path, rgb, quality=100):
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(path, quality=quality, subsampling=0)


def write_labels(folder, rows):
    with open(folder / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["objID", "oh_p50"])
        writer.writerows(rows)


@pytest.fixture
def folder(tmp_path):
    """Three 16x16 JPEGs with distinct colours and a labels file for them."""
    rng = np.random.default_rng(0)
    for gid in (101, 102, 103):
        rgb = rng.integers(0, 256, size=(8, 8, 3)).repeat(2, axis=0).repeat(2, axis=1)  # 2x2 constant blocks
        write_jpeg(tmp_path / f"{gid}.jpg", rgb)
    write_labels(tmp_path, [(101, 8.7), (102, -99.9), (103, 9.1)])
    return tmp_path


def test_real_wu_boada_cutouts(sdss_dir):
    src = sdss_dir / "wu_boada_cutouts"
    ds = load_jpeg_cutouts(src, size=64)
    assert ds["image"].shape == (400, 3, 64, 64)
    assert ds["image"].dtype == np.float32
    assert float(ds["image"].min()) >= 0.0 and float(ds["image"].max()) <= 1.0
    assert ds["image"].attrs["units"] == "relative" and ds["image"].attrs["flux_calibrated"] == 0
    with open(src / "labels.csv") as fh:
        labels = {int(r["objID"]): float(r["oh_p50"]) for r in csv.DictReader(fh)}
    assert set(ds["galaxy"].values.tolist()) == set(labels)
    np.testing.assert_allclose(ds["oh"].values, [labels[g] for g in ds["galaxy"].values.tolist()])
    assert (ds["oh_detected"] == 1).all() and (ds["quality"] == 0).all()
    # Channel order: g comes from the JPEG's blue plane (mean over the 2x2 area average).
    gid = int(ds["galaxy"].values[0])
    rgb = np.asarray(Image.open(src / "images" / f"{gid}.jpg"), dtype=np.float64) / 255
    blue = rgb[:, :, 2].reshape(64, 2, 64, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(ds["image"].sel(channel="g").values[0], blue, atol=1e-6)


def test_channels_area_resampling_and_labels(folder):
    full = load_jpeg_cutouts(folder, size=16)
    half = load_jpeg_cutouts(folder, size=8)
    # Area averaging: each output pixel is the mean of a 2x2 input block.
    blocks = full["image"].values.reshape(3, 3, 8, 2, 8, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(half["image"].values, blocks, atol=1e-6)
    rgb = np.asarray(Image.open(folder / "101.jpg"), dtype=np.float32) / 255
    np.testing.assert_allclose(full["image"].sel(galaxy=101, channel="i").values, rgb[:, :, 0], atol=1e-6)
    np.testing.assert_allclose(full["image"].sel(galaxy=101, channel="g").values, rgb[:, :, 2], atol=1e-6)
    # MPA-JHU's -99.9 is "not measurable": NaN and oh_detected = 0, not a defect.
    np.testing.assert_array_equal(full["oh_detected"].values, [1, 0, 1])
    assert np.isnan(full["oh"].values[1]) and (full["quality"] == 0).all()


def test_enlarging_stays_in_range(folder):
    big = load_jpeg_cutouts(folder, size=40)
    assert big["image"].shape == (3, 3, 40, 40)
    assert 0.0 <= float(big["image"].min()) and float(big["image"].max()) <= 1.0


def test_grey_and_rectangular_images_are_converted_and_recorded(tmp_path):
    Image.fromarray(np.full((16, 16), 128, np.uint8), mode="L").save(tmp_path / "1.jpg", quality=100)
    write_jpeg(tmp_path / "2.jpg", np.full((16, 24, 3), 50))
    ds = load_jpeg_cutouts(tmp_path, size=8, labels=None)
    grey = ds["image"].sel(galaxy=1).values
    np.testing.assert_allclose(grey, grey[0:1].repeat(3, axis=0))  # the grey plane in g, r and i
    assert "1.jpg: mode L -> RGB" in ds.attrs["conversions"]
    assert "2.jpg: centre-cropped 24x16 -> 16x16" in ds.attrs["conversions"]
    assert "oh" not in ds


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_jpeg_raises_or_flags(folder, damage):
    good = (folder / "102.jpg").read_bytes()
    (folder / "102.jpg").write_bytes(b"not a jpeg" * 50 if damage == "garbage" else good[: len(good) // 2])
    with pytest.raises(CatalogError, match=r"102\.jpg"):
        load_jpeg_cutouts(folder, size=8)
    ds = load_jpeg_cutouts(folder, size=8, on_error="flag")
    np.testing.assert_array_equal(has_flag(ds, "bad_image").values, [False, True, False])
    assert np.isnan(ds["image"].sel(galaxy=102)).all()
    assert np.isfinite(ds["image"].sel(galaxy=[101, 103])).all()
    assert "102.jpg" in ds.attrs["conversions"]


def test_labels_and_images_that_do_not_match(folder):
    write_labels(folder, [(101, 8.7), (102, 8.8), (999, 9.0)])  # 103 unlabelled, 999 has no image
    with pytest.raises(CatalogError, match="999"):
        load_jpeg_cutouts(folder, size=8)
    ds = load_jpeg_cutouts(folder, size=8, on_error="flag")
    assert ds["galaxy"].values.tolist() == [101, 102, 999, 103]
    np.testing.assert_array_equal(has_flag(ds, "bad_image").values, [False, False, True, False])
    np.testing.assert_array_equal(has_flag(ds, "missing_target").values, [False, False, False, True])
    assert np.isnan(ds["oh"].sel(galaxy=103)) and ds["oh_detected"].sel(galaxy=103) == 0


def test_bad_arguments(folder):
    with pytest.raises(ValueError, match="multiple of 8"):
        load_jpeg_cutouts(folder, size=60)
    with pytest.raises(ValueError, match="on_error"):
        load_jpeg_cutouts(folder, on_error="ignore")
    with pytest.raises(FileNotFoundError):
        load_jpeg_cutouts(folder / "absent")


def test_round_trip(folder, tmp_path):
    ds = load_jpeg_cutouts(folder, size=8)
    back = load_catalog(save_catalog(ds, tmp_path / "out" / "jpeg.nc"))
    np.testing.assert_array_equal(back["image"].values, ds["image"].values)
    np.testing.assert_array_equal(back["oh"].values, ds["oh"].values)
    assert back["image"].attrs["units"] == "relative"
    assert back.attrs["conversions"] == ds.attrs["conversions"]
