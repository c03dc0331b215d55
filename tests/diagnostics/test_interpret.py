"""Latent-space interpretability: regression, perturbational decoding, embeddings and their plots."""

import importlib.util

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression, Ridge

import galppl
from galppl.diagnostics import (
    gri_to_rgb,
    latent_embedding,
    latent_embeddings,
    latent_regression,
    perturbation_strip,
    plot_latent_embeddings,
    plot_perturbation_strip,
    separation_accuracy,
)
from galppl.models.vae import VAEConfig

N_GAL, N_LATENT = 400, 6
SCALES = np.array([1.0, 0.5, 2.0, 1.0, 0.2, 1.5])
BETA = np.array([0.0, 1.0, -0.3, 0.05, 2.0, 0.0])  # standardised: 0, 0.5, -0.6, 0.05, 0.4, 0


def linear_world(seed=0, noise=0.05):
    """Latent means with known scales and a catalog whose ``target`` is linear in them."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1, (N_GAL, N_LATENT)) * SCALES
    galaxy = np.arange(100, 100 + N_GAL)
    latents = xr.DataArray(z, dims=("galaxy", "latent"), coords={"galaxy": galaxy, "latent": np.arange(N_LATENT)})
    target = 3.0 + z @ BETA + rng.normal(0, noise, N_GAL)
    catalog = xr.Dataset({"target": ("galaxy", target, {"units": "dex"})}, coords={"galaxy": galaxy})
    return latents, catalog


def test_regression_recovers_known_coefficients_and_matches_sklearn():
    latents, catalog = linear_world()
    fit = latent_regression(latents, catalog, ["target"], num_top=3).sel(parameter="target")
    np.testing.assert_allclose(fit["coefficient"], BETA, atol=0.02)
    assert fit["intercept"] == pytest.approx(3.0, abs=0.01)
    reference = LinearRegression().fit(latents.values, catalog["target"].values)
    np.testing.assert_allclose(fit["coefficient"], reference.coef_, rtol=1e-8, atol=1e-10)
    assert fit["intercept"] == pytest.approx(reference.intercept_, rel=1e-10)
    expected = reference.coef_ * latents.values.std(axis=0) / catalog["target"].values.std()
    np.testing.assert_allclose(fit["standardized_coefficient"], expected, rtol=1e-8)
    # |standardised| = 0.6, 0.5, 0.4 for latents 2, 1, 4: latent 4 has the largest raw coefficient
    assert list(fit["top_latent"].values) == [2, 1, 4]
    assert fit["r2"] > 0.99 and fit["r2_in_sample"] >= fit["r2"]
    assert int(fit["count"]) == N_GAL and str(fit["units"].item()) == "dex"
    np.testing.assert_allclose(fit["latent_scale"], latents.values.std(axis=0))


def test_ridge_is_sklearn_ridge_on_standardised_latents():
    latents, catalog = linear_world()
    z = latents.values
    standardised = (z - z.mean(axis=0)) / z.std(axis=0)
    reference = Ridge(alpha=50.0).fit(standardised, catalog["target"].values)
    fit = latent_regression(latents, catalog, ["target"], ridge=50.0).sel(parameter="target")
    np.testing.assert_allclose(fit["coefficient"], reference.coef_ / z.std(axis=0), rtol=1e-8)
    ols = latent_regression(latents, catalog, ["target"]).sel(parameter="target")
    assert np.abs(fit["coefficient"]).sum() < np.abs(ols["coefficient"]).sum()


def test_cross_validated_r2_is_honest_on_pure_noise():
    latents, catalog = linear_world()
    catalog["noise"] = ("galaxy", np.random.default_rng(5).normal(size=N_GAL))
    fit = latent_regression(latents, catalog, ["noise"]).sel(parameter="noise")
    assert fit["r2"] < 0.0 < fit["r2_in_sample"] < 0.05


def test_missing_values_are_left_out_per_parameter():
    latents, catalog = linear_world()
    latents = latents.copy()
    latents[:10] = np.nan  # unusable images
    catalog["target_half"] = catalog["target"].where(np.arange(N_GAL) % 2 == 0)
    fit = latent_regression(latents, catalog, ["target", "target_half"])
    assert list(fit["count"].values) == [N_GAL - 10, N_GAL // 2 - 5]
    assert np.isfinite(fit["coefficient"]).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"parameters": ["absent"]}, "'absent' is not in the catalog"),
        ({"num_top": 7}, "num_top must be between 1 and the 6 latents"),
        ({"folds": 1}, "folds must be an integer >= 2"),
        ({"ridge": -1.0}, "ridge must be a finite penalty >= 0"),
    ],
)
def test_regression_errors_name_the_bad_value(kwargs, message):
    latents, catalog = linear_world()
    with pytest.raises(ValueError, match=message):
        latent_regression(latents, catalog, **{"parameters": ["target"], **kwargs})


def test_latents_must_be_galaxy_by_latent():
    _, catalog = linear_world()
    with pytest.raises(ValueError, match=r"dims \(galaxy, latent\)"):
        latent_regression(xr.DataArray(np.zeros((3, 2)), dims=("galaxy", "feature")), catalog, ["target"])


class EchoDecoder:
    """A VAE whose decoder writes latent k's value into every pixel of channel k (k < 3), so a
    test can read back which latent vectors were decoded."""

    class scaler:  # noqa: N801 - mirrors FittedVAE.scaler
        softening = np.array([0.1, 0.2, 0.3])
        units = "nanomaggy"

    def decode(self, z):
        z = np.asarray(z)
        return np.broadcast_to(z[:, :3, None, None], (len(z), 3, 4, 4)).copy()


def test_perturbation_strip_moves_each_top_latent_along_its_coefficient():
    latents, catalog = linear_world()
    regression = latent_regression(latents, catalog, ["target"], num_top=3)
    strip = perturbation_strip(EchoDecoder(), regression, "target", latents=[1, 2], steps=[-1.0, 2.0])
    assert strip.dims == ("latent", "step", "channel", "y", "x")
    assert strip.attrs["base"] == "mean latent over the galaxies"
    center, scale = regression["latent_center"].values, regression["latent_scale"].values
    coef = regression["coefficient"].values[0]
    # latent 1 (positive coefficient) moves up with the step, latent 2 (negative) down
    np.testing.assert_allclose(strip.sel(latent=1, channel="r")[:, 0, 0], center[1] + np.array([-1.0, 2.0]) * scale[1])
    np.testing.assert_allclose(strip.sel(latent=2, channel="i")[:, 0, 0], center[2] - np.array([-1.0, 2.0]) * scale[2])
    np.testing.assert_allclose(strip.sel(latent=1, channel="g")[:, 0, 0], center[0])  # the rest held
    expected_shift = np.abs(coef[[1, 2]])[:, None] * scale[[1, 2]][:, None] * np.array([-1.0, 2.0])
    np.testing.assert_allclose(strip["predicted_shift"], expected_shift)
    assert strip.attrs["softening"] == [0.1, 0.2, 0.3]


def test_perturbation_strip_holds_a_galaxys_latents():
    latents, catalog = linear_world()
    regression = latent_regression(latents, catalog, ["target"])
    base = latents.sel(galaxy=105)
    strip = perturbation_strip(EchoDecoder(), regression, "target", base=base, steps=[0.0])
    assert strip.attrs["base"] == "galaxy 105"
    assert list(strip["latent"].values) == list(regression["top_latent"].values[0])
    np.testing.assert_allclose(strip.sel(channel="g")[:, 0, 0, 0], base.values[0])
    with pytest.raises(ValueError, match="finite latent vector of size 6"):
        perturbation_strip(EchoDecoder(), regression, "target", base=np.zeros(5))
    with pytest.raises(ValueError, match="'log_sfr' is not in the regression"):
        perturbation_strip(EchoDecoder(), regression, "log_sfr")
    with pytest.raises(ValueError, match=r"latents \[9\] are not among"):
        perturbation_strip(EchoDecoder(), regression, "target", latents=[9])


def test_perturbation_strip_decodes_through_a_fitted_vae():
    catalog = galppl.simulate(160, seed=3, image_size=16)
    config = VAEConfig(latent_dim=4, conv_channels=(8, 8, 16), hidden=32, lr=5e-3, batch_size=32, max_epochs=2)
    vae = galppl.fit_vae(catalog, config, progress=False)
    encoding = vae.encode(catalog)
    regression = latent_regression(encoding, catalog, ["log_mstar", "z"], num_top=2)
    strip = perturbation_strip(vae, regression, "z", base=encoding["latent_mean"].isel(galaxy=0))
    assert strip.shape == (2, 6, 3, 16, 16) and np.isfinite(strip).all()
    assert strip.attrs["units"] == "nanomaggy" and len(strip.attrs["softening"]) == 3
    moved = strip.isel(latent=0)
    assert float(np.abs(moved.isel(step=-1) - moved.isel(step=0)).max()) > 0
    fig = plot_perturbation_strip(strip)
    assert len(fig.axes) == 12
    plt.close(fig)


def test_gri_to_rgb_puts_i_in_red_stretches_and_clips():
    images = np.zeros((2, 3, 2, 2))
    images[0, 2] = 1.0  # i only
    images[1, 0] = 4.0  # g only, brighter
    rgb = gri_to_rgb(images, softening=[1.0, 1.0, 1.0], white=np.arcsinh(2.0))
    assert rgb.shape == (2, 2, 2, 3)
    np.testing.assert_allclose(rgb[0, ..., 0], np.arcsinh(1.0) / np.arcsinh(2.0))
    np.testing.assert_allclose(rgb[0, ..., 1:], 0.0)
    np.testing.assert_allclose(rgb[1, ..., 2], 1.0)  # clipped at white
    display = gri_to_rgb(np.full((3, 2, 2), 0.5), white=1.0)  # no softening: not stretched
    np.testing.assert_allclose(display, 0.5)
    with pytest.raises(ValueError, match="channel=3"):
        gri_to_rgb(np.zeros((4, 2, 2)))
    with pytest.raises(ValueError, match="white point must be positive"):
        gri_to_rgb(np.zeros((3, 2, 2)))


@pytest.fixture(scope="module")
def mass_world():
    """Latents that know nothing of mass, beside photometry that does (the mock's)."""
    catalog = galppl.simulate(600, seed=4, image_size=None)
    rng = np.random.default_rng(0)
    latents = xr.DataArray(rng.normal(size=(600, 8)), dims=("galaxy", "latent"),
                           coords={"galaxy": catalog["galaxy"].values, "latent": np.arange(8)})
    return latents, catalog


def test_pca_embedding_is_pca_of_the_standardised_features(mass_world):
    latents, _ = mass_world
    latents = latents.copy()
    latents[3] = np.nan
    embedding = latent_embedding(latents, method="pca")
    assert embedding.attrs["method"] == "pca" and embedding.attrs["inputs"] == "latents"
    assert np.isnan(embedding[3]).all() and np.isfinite(np.delete(embedding.values, 3, axis=0)).all()
    finite = np.delete(latents.values, 3, axis=0)
    expected = PCA(2, random_state=0).fit_transform((finite - finite.mean(0)) / finite.std(0))
    np.testing.assert_allclose(np.delete(embedding.values, 3, axis=0), expected, atol=1e-8)
    with pytest.raises(ValueError, match="with_photometry=True needs the catalog"):
        latent_embedding(latents, with_photometry=True, method="pca")
    with pytest.raises(ValueError, match="method must be one of"):
        latent_embedding(latents, method="tsne")


def test_without_umap_auto_falls_back_to_pca_and_says_so(mass_world, monkeypatch):
    latents, _ = mass_world
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "umap" else find_spec(name, *a))
    with pytest.warns(UserWarning, match="umap-learn is not installed"):
        assert latent_embedding(latents, method="auto").attrs["method"] == "pca"
    with pytest.raises(ImportError, match=r"galppl\[interpret\]"):
        latent_embedding(latents, method="umap")


def test_separation_accuracy_tells_separated_from_mixed():
    rng = np.random.default_rng(1)
    values = rng.normal(size=500)
    separated = xr.DataArray(np.column_stack([values, rng.normal(size=500)]), dims=("galaxy", "component"))
    mixed = xr.DataArray(rng.normal(size=(500, 2)), dims=("galaxy", "component"))
    assert separation_accuracy(separated, values) > 0.9
    assert abs(separation_accuracy(mixed, values) - 0.5) < 0.08
    with pytest.raises(ValueError, match="each side needs at least folds=5"):
        separation_accuracy(separated, values, threshold=10.0)
    with pytest.raises(ValueError, match="one entry per galaxy"):
        separation_accuracy(separated, values[:10])


def test_photometry_separates_mass_where_the_latents_cannot(mass_world):
    latents, catalog = mass_world
    result = latent_embeddings(latents, catalog, method="pca")
    assert result["embedding"].dims == ("inputs", "galaxy", "component")
    assert result.attrs["method"] == "pca"
    alone, with_photometry = (result["separation"].sel(inputs=i) for i in ("latents", "latents+photometry"))
    assert abs(float(alone.sel(parameter="log_mstar")) - 0.5) < 0.1
    assert float(with_photometry.sel(parameter="log_mstar")) > 0.75
    assert np.isnan(result["log_mbh"]).any()  # no sigma, no M_BH: kept, shown grey
    fig = plot_latent_embeddings(result)
    assert len([ax for ax in fig.axes if ax.get_label() != "<colorbar>"]) == 4
    plt.close(fig)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("umap") is None, reason="umap-learn (galppl[interpret]) not installed")
def test_umap_embedding_is_seeded(mass_world):
    latents, catalog = mass_world
    first, second = (latent_embedding(latents, catalog, with_photometry=True, method="umap", seed=2) for _ in range(2))
    assert first.attrs["method"] == "umap"
    np.testing.assert_allclose(first, second)
