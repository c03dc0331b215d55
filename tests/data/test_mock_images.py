"""Mock SDSS stamps: flux, sizes, shapes, PSF, pixel integration, noise, seeds, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galppl.data.mock import images, stamp_scene
from galppl.data.mock.images import render_stamps
from galppl.data.mock.stamp_noise import SDSS_COUNTS_PER_NMGY, SDSS_GAIN, background_sigma, noise_equivalent_area
from galppl.data.mock.stamp_reference import render_stamps_reference
from galppl.data.mock.stamp_scene import PSF_AMP, StampParams, StampParamsError, draw_extras, psf_sigmas

PIX = stamp_scene.SDSS_PIXEL_SCALE


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def make_params(n: int = 1, **overrides) -> StampParams:
    """A bulge + disc galaxy of r ~ 17.4 mag, repeated n times, with overrides."""
    values = dict(
        flux_bulge=np.tile([20.0, 40.0, 55.0], (n, 1)),
        flux_disc=np.tile([40.0, 60.0, 70.0], (n, 1)),
        r50_bulge=np.full(n, 0.6),
        r50_disc=np.full(n, 1.0),
        q_bulge=np.full(n, 0.8),
        q_disc=np.full(n, 0.5),
        position_angle=np.full(n, 30.0),
        psf_fwhm=np.tile([1.5, 1.4, 1.3], (n, 1)),
        clumpiness=np.zeros(n),
    )
    for key, value in overrides.items():
        value = np.asarray(value, dtype=float)
        values[key] = np.broadcast_to(value, values[key].shape).copy()
    return StampParams(**values)


def centroid(img: np.ndarray) -> tuple[float, float]:
    y, x = np.indices(img.shape)
    return float((img * x).sum() / img.sum()), float((img * y).sum() / img.sum())


def second_moments(img: np.ndarray) -> np.ndarray:
    """Flux-weighted covariance [[xx, xy], [xy, yy]] in pixels^2 about the centroid."""
    cx, cy = centroid(img)
    y, x = np.indices(img.shape)
    dx, dy = x - cx, y - cy
    w = img / img.sum()
    return np.array([[(w * dx * dx).sum(), (w * dx * dy).sum()], [(w * dx * dy).sum(), (w * dy * dy).sum()]])


def test_shape_dtype_and_centre():
    params = make_params(5, clumpiness=0.0)
    out = render_stamps(params, 64, seed=3, neighbours=False)
    assert out.shape == (5, 3, 64, 64) and out.dtype == np.float32
    assert np.isfinite(out).all()
    clean = render_stamps(params, 64, seed=3, noise=False, neighbours=False)
    jitter = draw_extras(params, 64, 3, neighbours=False).jitter
    assert np.all(np.abs(jitter) <= 0.5) and np.ptp(jitter) > 0.1
    for i in range(5):  # a symmetric galaxy's centroid is pixel (S/2, S/2) + jitter
        cx, cy = centroid(clean[i, 1])
        assert cx == pytest.approx(32 + jitter[i, 0], abs=0.01)
        assert cy == pytest.approx(32 + jitter[i, 1], abs=0.01)


def test_total_flux_is_conserved():
    params = make_params(3, r50_disc=[1.0, 1.5, 0.5], r50_bulge=[0.3, 1.0, 2.0])
    out = render_stamps(params, 64, seed=0, noise=False, neighbours=False)
    expected = params.flux_bulge + params.flux_disc
    np.testing.assert_allclose(out.sum(axis=(2, 3)), expected, rtol=0.01)


def test_clumps_conserve_flux_and_change_the_image():
    smooth = make_params(4, r50_disc=2.0, clumpiness=0.0)
    clumpy = make_params(4, r50_disc=2.0, clumpiness=1.0)
    a = render_stamps(smooth, 64, seed=1, noise=False, neighbours=False)
    b = render_stamps(clumpy, 64, seed=1, noise=False, neighbours=False)
    np.testing.assert_allclose(b.sum(axis=(2, 3)), a.sum(axis=(2, 3)), rtol=2e-3)
    # up to 20% of the disc flux moved into knots: the images differ by a few per cent
    change = np.abs(b - a).sum(axis=(2, 3)) / a.sum(axis=(2, 3))
    assert np.all(change > 0.03)
    # knots are blue: more of the g than of the i light moved
    assert np.all(change[:, 0] > change[:, 2])


@pytest.mark.parametrize("profile, size", [("exp", 96), ("dev", 128)])
def test_half_light_radius_of_round_profiles(profile, size):
    r50 = 3.0  # arcsec, 7.6 pixels; a sharp PSF (0.3") so the profile itself is measured
    if profile == "exp":
        params = make_params(1, flux_bulge=0.0, r50_disc=r50, q_disc=1.0, psf_fwhm=0.3)
    else:
        params = make_params(1, flux_disc=0.0, r50_bulge=r50, q_bulge=1.0, psf_fwhm=0.3)
    img = render_stamps(params, size, seed=2, noise=False, neighbours=False)[0, 1]
    cx, cy = centroid(img)
    y, x = np.indices(img.shape)
    radius = np.hypot(x - cx, y - cy).ravel()
    order = np.argsort(radius)
    grown = np.cumsum(img.ravel()[order])
    half = 0.5 * (params.flux_disc[0, 1] + params.flux_bulge[0, 1])
    measured = np.interp(half, grown, radius[order]) * PIX
    assert measured == pytest.approx(r50, rel=0.01)


@pytest.mark.parametrize("pa", [30.0, 120.0])
def test_axis_ratio_and_position_angle_from_moments(pa):
    q = 0.45
    params = make_params(1, flux_bulge=0.0, r50_disc=2.5, q_disc=q, position_angle=pa, psf_fwhm=0.3)
    img = render_stamps(params, 96, seed=4, noise=False, neighbours=False)[0, 1]
    cov = second_moments(img)
    # remove the PSF and pixel-box second moments (both round) before reading the shape
    psf_var = np.sum(PSF_AMP * psf_sigmas(0.3) ** 2) / PIX**2 + 1.0 / 12.0
    evals, evecs = np.linalg.eigh(cov - psf_var * np.eye(2))
    assert np.sqrt(evals[0] / evals[1]) == pytest.approx(q, abs=0.015)
    vx, vy = evecs[:, 1]  # major axis; PA is east (-x) of north (+y)
    measured_pa = np.rad2deg(np.arctan2(-vx, vy)) % 180.0
    assert measured_pa == pytest.approx(pa, abs=0.5)


def test_psf_fwhm_of_point_source():
    fwhm = np.array([1.6, 1.3, 1.1])
    # the double Gaussian falls to half its peak at FWHM / 2
    sig = psf_sigmas(fwhm)
    profile = lambda r: np.sum(PSF_AMP / sig**2 * np.exp(-(r[:, None] ** 2) / (2 * sig**2)), axis=-1)  # noqa: E731
    np.testing.assert_allclose(profile(fwhm / 2) / profile(np.zeros(3)), 0.5, rtol=1e-6)
    # and a point source in the stamp has that PSF's second moments plus the pixel's 1/12
    params = make_params(1, r50_bulge=1e-3, r50_disc=1e-3, psf_fwhm=fwhm)
    out = render_stamps(params, 64, seed=5, noise=False, neighbours=False)[0]
    for band in range(3):
        cov = second_moments(out[band])
        expected = np.sum(PSF_AMP * sig[band] ** 2) / PIX**2 + 1.0 / 12.0
        np.testing.assert_allclose(np.diag(cov), expected, rtol=0.01)
        assert abs(cov[0, 1]) < 1e-3 * expected
        # FWHM from the moments through the double-Gaussian shape
        core = np.sqrt((cov[0, 0] - 1 / 12) / np.sum(PSF_AMP * stamp_scene.PSF_SIGMA_RATIO**2)) * PIX
        assert core * stamp_scene.PSF_FWHM_PER_SIGMA == pytest.approx(fwhm[band], rel=0.01)


def test_fourier_rendering_matches_oversampled_brute_force(monkeypatch):
    # a neighbour in every stamp, clumps on, one PSF sharp enough to need alias folding,
    # one galaxy much larger than the stamp (its light must not wrap around into it)
    monkeypatch.setattr(stamp_scene, "NEIGHBOUR_PROBABILITY", 1.0)
    params = make_params(
        3,
        r50_disc=[0.8, 1.2, 8.0],
        r50_bulge=[0.3, 0.5, 4.0],
        clumpiness=[1.0, 0.5, 0.0],
        psf_fwhm=[[1.5, 1.4, 1.3], [1.1, 1.0, 0.9], [1.5, 1.4, 1.3]],
    )
    assert set(images._alias_order(params.psf_fwhm, PIX)) == {0, 1}
    extras = draw_extras(params, 32, 6)
    assert extras.neighbour.all()
    assert images._fft_size(params, extras, 32, PIX)[2] >= 3 * 32
    fast = render_stamps(params, 32, seed=6, noise=False)
    slow = render_stamps_reference(params, 32, seed=6, oversample=10)
    for i in range(3):
        for b in range(3):
            peak = slow[i, b].max()
            bright = slow[i, b] > 0.1 * peak
            assert np.max(np.abs(fast[i, b] - slow[i, b])[bright] / slow[i, b][bright]) < 0.01
            assert np.max(np.abs(fast[i, b] - slow[i, b])) < 2e-3 * peak


def test_knots_lie_on_the_disc_and_neighbours_are_rare_faint_and_near_the_edge():
    n = 4000
    rng = np.random.default_rng(1)
    params = make_params(
        n, r50_disc=rng.uniform(0.5, 5, n), q_disc=rng.uniform(0.2, 1, n), position_angle=rng.uniform(0, 180, n)
    )
    ex = draw_extras(params, 64, seed=13)
    pa = np.deg2rad(params.position_angle)[:, None]
    major = ex.clump_offset[..., 0] * -np.sin(pa) + ex.clump_offset[..., 1] * np.cos(pa)
    minor = ex.clump_offset[..., 0] * np.cos(pa) + ex.clump_offset[..., 1] * np.sin(pa)
    radius = np.hypot(major, minor / params.q_disc[:, None]) / (params.r50_disc[:, None] / PIX)
    assert radius.min() >= stamp_scene.CLUMP_RADII[0] * 0.99 and radius.max() <= stamp_scene.CLUMP_RADII[1] * 1.01
    np.testing.assert_allclose(ex.clump_weight.sum(axis=1), 1.0)
    assert ex.neighbour.mean() == pytest.approx(stamp_scene.NEIGHBOUR_PROBABILITY, abs=0.012)
    primary = params.flux_bulge[:, 1] + params.flux_disc[:, 1]
    assert np.all(ex.neighbour_flux[ex.neighbour, 1] < 0.51 * primary[ex.neighbour])
    assert np.all(ex.neighbour_flux[~ex.neighbour] == 0)
    where = np.abs(ex.neighbour_offset + ex.jitter)[ex.neighbour]  # from the stamp centre
    assert np.all(where.max(axis=1) < 32) and np.all(np.hypot(*where.T) > 0.29 * 64)
    assert draw_extras(params, 64, seed=13, neighbours=False).neighbour.sum() == 0


def test_noise_gives_sdss_point_source_depth():
    fwhm = np.array([1.5, 1.3, 1.2])
    n = 200
    empty = make_params(n, flux_bulge=0.0, flux_disc=0.0, psf_fwhm=fwhm)
    sky = render_stamps(empty, 32, seed=7, neighbours=False)
    sigma = sky.std(axis=(0, 2, 3))
    assert np.all(np.abs(sky.mean(axis=(0, 2, 3))) < 0.01 * sigma)
    # noise-equivalent area measured from rendered unit point sources at random sub-pixel
    # centres: 1 / <sum_i P_i^2>
    point = make_params(n, flux_bulge=0.0, flux_disc=1.0, r50_disc=1e-3, psf_fwhm=fwhm)
    psf = render_stamps(point, 32, seed=8, noise=False, neighbours=False)
    nea = 1.0 / (psf**2).sum(axis=(2, 3)).mean(axis=0)
    np.testing.assert_allclose(nea, noise_equivalent_area(fwhm), rtol=0.01)
    depth = 22.5 - 2.5 * np.log10(5.0 * sigma * np.sqrt(nea))
    np.testing.assert_allclose(depth, [22.2, 22.2, 21.3], atol=0.02)
    # a deeper survey is quieter
    deeper = background_sigma(fwhm[None], {"g": 23.2, "r": 23.2, "i": 22.3})
    np.testing.assert_allclose(deeper, background_sigma(fwhm[None]) / 10 ** 0.4, rtol=1e-9)


def test_noise_includes_source_poisson_term():
    bright = make_params(20, flux_bulge=[2000.0, 4000.0, 5000.0], flux_disc=[3000.0, 5000.0, 6000.0])
    noisy = render_stamps(bright, 32, seed=9, neighbours=False)
    clean = render_stamps(bright, 32, seed=9, noise=False, neighbours=False)
    per_e = np.array([SDSS_COUNTS_PER_NMGY[c] for c in "gri"]) * SDSS_GAIN
    var = background_sigma(bright.psf_fwhm)[:, :, None, None] ** 2 + np.maximum(clean, 0) / per_e[None, :, None, None]
    pulls = (noisy - clean) / np.sqrt(var)
    assert pulls.std() == pytest.approx(1.0, abs=0.02)
    # near the centre the Poisson term dominates: background alone would understate it
    core = (noisy - clean)[:, :, 14:18, 14:18]
    assert core.std() > 2 * background_sigma(bright.psf_fwhm).max()


def test_same_seed_same_stamps_independent_of_chunk(monkeypatch):
    monkeypatch.setattr(stamp_scene, "NEIGHBOUR_PROBABILITY", 0.3)
    rng = np.random.default_rng(0)
    n = 23
    params = make_params(
        n,
        r50_disc=rng.uniform(0.5, 3, n),
        q_disc=rng.uniform(0.2, 1, n),
        position_angle=rng.uniform(0, 180, n),
        clumpiness=rng.uniform(0, 1, n),
        psf_fwhm=rng.uniform(0.9, 1.8, (n, 3)),
    )
    a = render_stamps(params, 32, seed=11, chunk=512)
    b = render_stamps(params, 32, seed=11, chunk=5)
    c = render_stamps(params, 32, seed=11, chunk=1)
    assert draw_extras(params, 32, 11).neighbour.any()
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    np.testing.assert_allclose(c, a, rtol=0, atol=1e-5)
    d = render_stamps(params, 32, seed=12, chunk=512)
    assert np.abs(d - a).max() > 0.01


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("flux_bulge", np.array([[1.0, np.nan, 1.0]]), "flux_bulge is not finite at galaxy 0, channel r"),
        ("flux_disc", np.array([[1.0, -2.0, 1.0]]), "flux_disc = -2.0 at galaxy 0, channel r; must be nanomaggies >= 0"),
        ("r50_disc", np.array([0.0]), "r50_disc"),
        ("q_disc", np.array([1.5]), "0 < q <= 1"),
        ("clumpiness", np.array([-0.1]), "clumpiness"),
        ("psf_fwhm", np.array([1.4, 1.4, 1.4]), r"psf_fwhm has shape \(3,\); expected \(1, 3\)"),
        ("position_angle", np.array([10.0, 20.0]), "position_angle has shape"),
    ],
)
def test_bad_params_raise_clear_errors(field, value, match):
    good = make_params(1)
    values = {name: getattr(good, name) for name in good.__dataclass_fields__}
    values[field] = value
    with pytest.raises(StampParamsError, match=match):
        StampParams(**values)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image_size=60), "divisible by 8"),
        (dict(image_size=8), ">= 16"),
        (dict(image_size=64.0), "integer"),
        (dict(seed=-1), "seed"),
        (dict(chunk=0), "chunk"),
        (dict(pixel_scale=0.0), "pixel_scale"),
        (dict(depth_5sigma={"g": 22.0, "r": 22.0}), "depth_5sigma"),
    ],
)
def test_bad_render_arguments_raise(kwargs, match):
    args = dict(image_size=64, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        render_stamps(make_params(1), args.pop("image_size"), args.pop("seed"), **args)
