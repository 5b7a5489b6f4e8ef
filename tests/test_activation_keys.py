"""The shared activation cache names a network by its structure as well as its weights.

Two networks with the same tensors but another activation, stride, padding or pooling
compute other activations: they must never share cached rows. Copies of one network (a
clone's backbone, a deepcopy, the same network loaded again) must keep sharing them, or
a search would compute every image again.
"""

import copy
import pickle

import numpy as np
import pytest
import torch
from torch import nn

import sktransfer
from sktransfer._core.activations import cache_info, clear_cache, module_digest

FAST = {"image_size": 32, "batch_size": 8, "device": "cpu"}


@pytest.fixture(autouse=True)
def _empty_store():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def images():
    """Six random 32x32 images with two classes."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), np.array([0, 1] * 3)


def network(activation=None, *, stride=1, padding=0, pool=None):
    """A small CNN whose weights depend on nothing but the seed (all shapes are equal)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=stride, padding=padding),
        nn.ReLU() if activation is None else activation,
        nn.Conv2d(8, 8, 3),
        nn.AdaptiveAvgPool2d(1) if pool is None else pool,
        nn.Flatten(),
    )


@pytest.fixture
def stage_runs(monkeypatch):
    """Record each run of frozen stages that fine-tuning makes (none: all were cached)."""
    import sktransfer._fine_tuning._cache as prefix_cache

    runs, run_stages = [], prefix_cache._StageRunner.__call__

    def counting(self, start, stop, rows, indices):
        runs.append((start, stop, len(indices)))
        return run_stages(self, start, stop, rows, indices)

    monkeypatch.setattr(prefix_cache._StageRunner, "__call__", counting)
    return runs


def test_equal_weights_in_another_architecture_get_another_digest():
    relu = network()
    tanh_state = network(nn.Tanh()).state_dict()
    assert relu.state_dict().keys() == tanh_state.keys()
    assert all(torch.equal(tensor, tanh_state[name]) for name, tensor in relu.state_dict().items())
    others = [
        network(nn.Tanh()),  # no parameters, so the same state dict
        network(nn.ReLU6()),
        network(stride=2),  # same weight shapes, another convolution
        network(padding=1),
        network(pool=nn.AdaptiveMaxPool2d(1)),
        network(pool=nn.AdaptiveAvgPool2d(2)),
    ]
    digests = {module_digest(relu), *map(module_digest, others)}
    assert len(digests) == 1 + len(others)
    assert module_digest(nn.Tanh()) != module_digest(nn.ReLU())  # one stage without tensors

    # a setting the repr leaves out: a transformer layer's activation function
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, activation="relu")
    gelu = copy.deepcopy(layer)
    gelu.activation = nn.functional.gelu
    assert repr(gelu) == repr(layer)
    assert module_digest(gelu) != module_digest(layer)


def test_copies_of_a_network_keep_its_digest():
    relu = network()
    digest = module_digest(relu)
    assert module_digest(network()) == digest  # built again
    assert module_digest(copy.deepcopy(relu)) == digest
    assert module_digest(pickle.loads(pickle.dumps(relu))) == digest
    assert module_digest(relu.to(memory_format=torch.channels_last)) == digest
    backbone = sktransfer.load_backbone()  # the default network: loaded twice, equal stages
    again = sktransfer.load_backbone()
    assert [module_digest(s) for s in backbone.net] == [module_digest(s) for s in again.net]


def test_fine_tuning_networks_with_equal_weights_share_no_rows(images, stage_runs):
    X, y = images
    params = {"max_epochs": 1, "random_state": 0, **FAST}
    sktransfer.FineTunedClassifier(network(), **params).fit(X, y)
    assert stage_runs and cache_info()["rows"] == len(X)

    tanh = network(nn.Tanh())
    stage_runs.clear()
    cached = sktransfer.FineTunedClassifier(tanh, **params).fit(X, y)
    assert stage_runs, "the Tanh network got the ReLU network's cached activations"
    with sktransfer.config_context(shared_cache_size=0):
        uncached = sktransfer.FineTunedClassifier(tanh, **params).fit(X, y)
        expected = uncached.predict_proba(X)
    np.testing.assert_allclose(cached.predict_proba(X), expected, atol=1e-5)

    stage_runs.clear()  # a copy of the first network is the same network: a cache hit
    sktransfer.FineTunedClassifier(copy.deepcopy(network()), **params).fit(X, y)
    assert stage_runs == []


def test_extractors_with_equal_weights_share_no_rows(images):
    X, _ = images
    relu = sktransfer.PretrainedFeatureExtractor(network(), **FAST).fit(X)
    relu_features = relu.transform(X)
    tanh = network(nn.Tanh())
    features = sktransfer.PretrainedFeatureExtractor(tanh, **FAST).fit(X).transform(X)
    with sktransfer.config_context(shared_cache_size=0):
        expected = sktransfer.PretrainedFeatureExtractor(tanh, **FAST).fit(X).transform(X)
    assert not np.allclose(expected, relu_features)
    np.testing.assert_allclose(features, expected, atol=1e-6)
    rows = cache_info()["rows"]
    clone = sktransfer.PretrainedFeatureExtractor(copy.deepcopy(network()), **FAST).fit(X)
    assert clone.transform(X).tobytes() == relu_features.tobytes()
    assert cache_info()["rows"] == rows  # the copy's features came from the store
