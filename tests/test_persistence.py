"""The saved-model format: JSON plus tensors only; an exact round trip; foreign versions and
pickled code refused, the code never run."""

import json
import pickle
import re

import numpy as np
import pytest
import torch

import galppl
from galppl.posterior import GalaxyPosterior


@pytest.fixture(scope="module")
def posterior():
    catalog = galppl.simulate(200, seed=3, image_size=None, progress=False)
    return galppl.fit("props", catalog, inputs="photometry", max_epochs=1, num_couplings=2, hidden_dim=16,
                      progress=False)


class CreatesAFile:
    """A pickle payload: unpickling it calls ``open(marker, "w")``, creating the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_round_trip_is_exact_and_records_the_versions(posterior, tmp_path):
    path = posterior.save(tmp_path / "model")
    saved = json.loads((path / "config.json").read_text())
    assert saved["galppl_version"] == galppl.__version__ and saved["torch_version"] == torch.__version__
    loaded = galppl.load(path)
    before, after = posterior.chain.state_dict(), loaded.chain.state_dict()
    assert list(before) == list(after)
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert loaded.featurizer.to_dict() == posterior.featurizer.to_dict()
    assert loaded.config == posterior.config and loaded.split == posterior.split
    assert loaded.model == posterior.model and [b.to_dict() for b in loaded.chain.blocks] == \
        [b.to_dict() for b in posterior.chain.blocks]


def test_a_posterior_pickles_as_its_saved_files(posterior):
    copy = pickle.loads(pickle.dumps(posterior))
    assert isinstance(copy, GalaxyPosterior) and copy is not posterior
    catalog = galppl.simulate(20, seed=4, image_size=None, progress=False)
    a, b = posterior.sample(catalog, 10, seed=1), copy.sample(catalog, 10, seed=1)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickled_code_as_weights_is_refused_without_running_it(posterior, tmp_path, writer):
    path = posterior.save(tmp_path / "model")
    marker = tmp_path / "pwned"
    payload = {"representation.0.weight": CreatesAFile(marker)}
    if writer == "pickle":
        (path / "chain.pt").write_bytes(pickle.dumps(payload, protocol=2))  # torch.load's legacy format
    else:
        torch.save(payload, path / "chain.pt")
    with pytest.raises(ValueError, match=r"chain\.pt' is not a state dict of tensors; refused without running it"):
        galppl.load(path)
    assert not marker.exists()
    # The payload is live: a plain unpickler would have run it.
    pickle.loads(pickle.dumps(CreatesAFile(tmp_path / "control"))).close()
    assert (tmp_path / "control").exists()


def test_weights_that_are_not_a_state_dict_are_refused(posterior, tmp_path):
    path = posterior.save(tmp_path / "model")
    torch.save([torch.zeros(3)], path / "chain.pt")
    with pytest.raises(ValueError, match="holds a list, not a state dict of tensors"):
        galppl.load(path)


def test_a_model_from_another_version_is_refused_naming_both(posterior, tmp_path):
    path = posterior.save(tmp_path / "model")
    config = json.loads((path / "config.json").read_text())
    config.update(galppl_version="0.1.0", torch_version="1.13.1")
    (path / "config.json").write_text(json.dumps(config))
    both = (rf"saved by galppl 0\.1\.0, this is galppl {re.escape(galppl.__version__)}; "
            rf"saved with torch 1\.13\.1, this is torch {re.escape(torch.__version__)}")
    with pytest.raises(ValueError, match=both):
        galppl.load(path)
