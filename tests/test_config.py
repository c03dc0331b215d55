"""galppl.config: nested fit settings checked on construction, keyword shortcuts, dict and TOML round trips."""

import dataclasses
import json

import pytest

from galppl.config import CHAIN_TRAINING, VAE_TRAINING, ChainConfig, DataConfig, FitConfig, TrainConfig, VAEConfig
from galppl.models import Block, chain_blocks, props_blocks


def custom_config():
    return FitConfig(
        data=DataConfig(n_galaxies=500, image_size=32, fractions=(0.6, 0.2, 0.2), vae_fraction=0.0, split_seed=7),
        chain=ChainConfig(inputs="photometry", hidden_dim=48, dropout=0.0, num_couplings=3, oh_flow="spline",
                          calibrate=False),
        train=dataclasses.replace(CHAIN_TRAINING, lr=3e-4, max_epochs=5, max_seconds=12.5),
        vae=dataclasses.replace(VAE_TRAINING, latent_dim=8, conv_channels=(8, 8, 16), likelihood_scale="learned"),
        seed=3,
    )


@pytest.mark.parametrize("config", [FitConfig(), custom_config()], ids=["defaults", "custom"])
def test_dict_json_and_toml_round_trips(config):
    assert FitConfig.from_dict(config.to_dict()) == config
    assert FitConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert FitConfig.from_toml(config.to_toml()) == config
    assert set(config.to_dict()) == {"data", "chain", "train", "vae", "seed"}
    # One seed: the nested sections do not carry their own.
    assert "seed" not in config.to_dict()["train"] and "seed" not in config.to_dict()["vae"]


def test_a_partial_toml_file_takes_fits_defaults_elsewhere():
    config = FitConfig.from_toml('seed = 2\n[chain]\ninputs = "photometry"\n[train]\nmax_epochs = 7\n')
    assert config.seed == 2 and config.chain.inputs == "photometry"
    assert config.train == dataclasses.replace(CHAIN_TRAINING, max_epochs=7)
    assert config.vae == VAE_TRAINING and config.data == DataConfig()


def test_nested_settings_are_seeded_by_the_one_seed():
    config = FitConfig(seed=5)
    assert config.chain_training(progress=False) == dataclasses.replace(CHAIN_TRAINING, seed=5, progress=False)
    assert config.vae_training() == dataclasses.replace(VAE_TRAINING, seed=5)
    assert dataclasses.replace(config, seed=6).chain_training().seed == 6
    assert config.data_seed == 5 and FitConfig(seed=5, data=DataConfig(split_seed=1)).data_seed == 1


def test_keyword_shortcuts_map_onto_the_sections():
    config = FitConfig().with_options(inputs="photometry", lr=0.01, max_epochs=3, vae_lr=0.002, vae_max_epochs=2,
                                      split_seed=1, n_galaxies=100, seed=9)
    assert config.chain.inputs == "photometry" and config.train.lr == 0.01 and config.train.max_epochs == 3
    assert config.vae.lr == 0.002 and config.vae.max_epochs == 2
    assert config.data.split_seed == 1 and config.data.n_galaxies == 100 and config.seed == 9
    assert FitConfig(seed=4).with_options(seed=1).seed == 1


def test_unknown_keyword_names_the_valid_ones():
    with pytest.raises(TypeError, match=r"unknown fit option\(s\) \['vae_epochs'\].*'vae_max_epochs'"):
        FitConfig().with_options(vae_epochs=1)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: DataConfig(n_galaxies=0), ValueError, r"DataConfig\.n_galaxies must be an integer >= 1, got 0"),
        (lambda: DataConfig(n_galaxies=2.5), ValueError, r"DataConfig\.n_galaxies must be an integer"),
        (lambda: DataConfig(image_size=60), ValueError, r"DataConfig\.image_size must be a multiple of 8"),
        (lambda: DataConfig(fractions=(0.5, 0.5, 0.5)), ValueError, r"DataConfig\.fractions .* summing to 1"),
        (lambda: DataConfig(fractions=(0.7, float("nan"), 0.3)), ValueError, r"DataConfig\.fractions"),
        (lambda: DataConfig(vae_fraction=1.0), ValueError, r"DataConfig\.vae_fraction must be a number in \[0, 1\)"),
        (lambda: DataConfig(split_seed=-1), ValueError, r"DataConfig\.split_seed must be a non-negative integer"),
        (lambda: ChainConfig(inputs="spectra"), ValueError, r"ChainConfig\.inputs must be one of \('image\+photometry'"),
        (lambda: ChainConfig(hidden_dim=True), ValueError, r"ChainConfig\.hidden_dim must be an integer >= 1"),
        (lambda: ChainConfig(dropout=float("inf")), ValueError, r"ChainConfig\.dropout must be a number in \[0, 1\)"),
        (lambda: ChainConfig(num_couplings=0), ValueError, r"ChainConfig\.num_couplings"),
        (lambda: ChainConfig(oh_flow="cubic"), ValueError, r"ChainConfig\.oh_flow must be one of \('affine', 'spline'\)"),
        (lambda: ChainConfig(calibrate="yes"), ValueError, r"ChainConfig\.calibrate must be one of \(True, False\)"),
        (lambda: FitConfig(seed=-2), ValueError, r"FitConfig\.seed must be a non-negative integer, got -2"),
        (lambda: FitConfig(train={"lr": 1.0}), TypeError, r"FitConfig\.train must be a galppl\.train\.TrainConfig"),
        (lambda: FitConfig(seed=1, train=TrainConfig(seed=2)), ValueError, r"FitConfig\.train\.seed is 2 but FitConfig\.seed is 1"),
        (lambda: FitConfig(train=TrainConfig(progress=False)), ValueError, r"FitConfig\.train\.progress"),
        (lambda: FitConfig().with_options(lr=-1.0), ValueError, r"TrainConfig\.lr must be > 0"),
        (lambda: FitConfig().with_options(vae_norm="layer"), ValueError, r"VAEConfig\.norm"),
        (lambda: FitConfig.from_dict({"training": {}}), ValueError, r"unknown FitConfig key\(s\) \['training'\]"),
        (lambda: FitConfig.from_dict({"chain": {"layers": 3}}), ValueError,
         r"unknown FitConfig\.chain field\(s\) \['layers'\]; the fields are \['inputs'"),
        (lambda: FitConfig().with_options(clip_norm=None).to_toml(), ValueError,
         r"FitConfig\.train\.clip_norm is None, which TOML cannot write"),
    ],
)
def test_bad_settings_name_the_field_and_what_is_right(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_chain_options_apply_to_custom_chains_where_blocks_leave_them_unset():
    mine = Block("pair", ("a_halpha", "balmer"), "realnvp")
    set_by_block = Block("other", ("x", "y"), "realnvp", flow_options={"num_couplings": 2})
    blocks = chain_blocks((mine, set_by_block, Block("one", ("w",), "affine")), num_couplings=5)
    assert blocks[0].flow_options == {"num_couplings": 5}
    assert blocks[1].flow_options == {"num_couplings": 2}
    assert blocks[2].flow_options == {}
    assert chain_blocks(props_blocks(num_couplings=4), num_couplings=5)[0].flow_options == {"num_couplings": 4}
    with pytest.raises(ValueError, match="a custom chain sets each Block's kind itself"):
        chain_blocks((mine,), oh_flow="spline")
    with pytest.raises(ValueError, match="the lines chain has none"):
        chain_blocks("lines", oh_flow="spline")
    assert [b.kind for b in chain_blocks("props", oh_flow="spline")] == ["realnvp", "spline", "bernoulli", "spline"]
    assert [b.kind for b in chain_blocks("props")][1] == "affine"


def test_vae_defaults_are_fits_own():
    assert VAE_TRAINING == VAEConfig(lr=1e-4, max_epochs=40, patience=4, min_rel_delta=1e-3)
    assert FitConfig().vae.image_size is None  # taken from the data
