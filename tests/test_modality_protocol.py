"""A modality is one module behind one protocol: a toy one, defined here, goes everywhere.

Vectors through a tiny MLP, defined in this file only: an input pipeline
(:class:`sktransfer.backbones.InputPipeline`) and a backbone source
(:func:`sktransfer.backbones.register_source`). It must go through feature extraction
(final features and an intermediate layer), the shared activation cache, fine-tuning
(with a frozen prefix) and the safe file format without any change to the package.
"""

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

import sktransfer
from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor
from sktransfer.backbones import InputPipeline, register_source

DIM = 6


class Vectors:
    """Checked toy inputs: a float32 matrix, one row per input."""

    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def take(self, indices):
        return Vectors(self.rows[np.asarray(indices)])

    def content_keys(self):
        return [hashlib.sha1(row.tobytes()).hexdigest() for row in self.rows]


class _Rows(torch.utils.data.Dataset):
    def __init__(self, rows, y):
        self.rows, self.y = torch.as_tensor(rows), y

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        target = torch.zeros((), dtype=torch.long) if self.y is None else self.y[i]
        return self.rows[i], target


@dataclass(frozen=True)
class VectorPipeline(InputPipeline):
    dim: int = DIM

    modality = "vector"

    def check(self, X):
        rows = np.asarray(X, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"expected vectors of {self.dim} numbers; got {rows.shape}")
        return Vectors(rows)

    def batches(self, inputs, batch_size, *, augment=None, num_workers=0, progress=False,
                desc=None, one_shape=False):  # fmt: skip
        for start in range(0, len(inputs), batch_size):
            yield torch.as_tensor(inputs.rows[start : start + batch_size])

    def dataset(self, inputs, targets=None, *, augment=None):
        return _Rows(inputs.rows, targets)

    def example_input(self, n=1, random=False):
        return torch.randn(n, self.dim) if random else torch.zeros(n, self.dim)

    def pool(self, output, pooling):
        return output.flatten(1)

    def describe(self):
        return {"dim": self.dim}

    def restore(self, description):
        if description != {"dim": self.dim}:
            raise ValueError(f"not a {self.dim}-vector pipeline: {description!r}")
        return self


def build_mlp(spec, weights):
    with torch.random.fork_rng(devices=[]):
        if weights == "DEFAULT":  # "pretrained" weights: the same in every process
            torch.manual_seed(1234)
        net = nn.Sequential(
            OrderedDict(
                hidden=nn.Sequential(nn.Linear(DIM, 16), nn.Tanh()),
                features=nn.Sequential(nn.Linear(16, 8), nn.Tanh()),
            )
        )
    return {"name": spec, "net": net, "preprocessing": VectorPipeline(), "num_features": 8}


@pytest.fixture(scope="module", autouse=True)
def toy_source():
    register_source("toy", build_mlp)


@pytest.fixture(scope="module")
def data():
    """Vectors labelled by the sign of a direction the "pretrained" features keep."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, DIM)).astype(np.float32)
    with torch.no_grad():
        features = build_mlp("toy:mlp", "DEFAULT")["net"](torch.as_tensor(X)).numpy()
    score = features[:, 0] - features[:, 1]
    return X, np.where(score > np.median(score), "up", "down")


def test_the_extractor_computes_the_network_on_the_toy_modality(data):
    X, _ = data
    extractor = PretrainedFeatureExtractor("toy:mlp").fit(X)
    net = build_mlp("toy:mlp", "DEFAULT")["net"].eval()
    with torch.no_grad():
        expected = net(torch.as_tensor(X)).numpy()
    np.testing.assert_allclose(extractor.transform(X), expected, rtol=1e-5, atol=1e-6)
    hidden = PretrainedFeatureExtractor("toy:mlp", layer="hidden").fit(X).transform(X)
    assert hidden.shape == (len(X), 16)
    with pytest.raises(ValueError, match="expected vectors of 6"):
        extractor.transform(X[:, :3])


def test_the_shared_cache_serves_the_toy_modality(data, monkeypatch):
    X, _ = data
    extractor = PretrainedFeatureExtractor("toy:mlp").fit(X)
    first = extractor.transform(X)
    calls = []
    forward = nn.Sequential.forward
    monkeypatch.setattr(nn.Sequential, "forward", lambda *a: calls.append(1) or forward(*a))
    again = PretrainedFeatureExtractor("toy:mlp").fit(X).transform(X)
    np.testing.assert_array_equal(again, first)
    assert not calls  # every row came from the store
    with sktransfer.config_context(shared_cache_size=0):
        PretrainedFeatureExtractor("toy:mlp").fit(X).transform(X[:10])
    assert calls


def test_options_of_other_modalities_are_refused(data):
    X, _ = data
    for name, value in (("image_size", 64), ("max_length", 32)):
        with pytest.raises(ValueError, match=f"{name}={value}.*vector inputs"):
            PretrainedFeatureExtractor("toy:mlp", **{name: value}).fit(X)


@pytest.mark.parametrize("n_frozen", ["all", -1])
def test_fine_tuning_and_the_safe_format_work_on_the_toy_modality(data, n_frozen, tmp_path):
    X, y = data
    clf = FineTunedClassifier(
        "toy:mlp", n_frozen=n_frozen, max_epochs=30, lr=0.05, batch_size=16, random_state=0
    ).fit(X[:80], y[:80])
    assert (clf.predict(X[80:]) == y[80:]).mean() >= 0.8  # the classes are linear
    sktransfer.save(clf, tmp_path / "toy.skt")
    loaded = sktransfer.load(tmp_path / "toy.skt")
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    assert loaded.backbone_.preprocessing == VectorPipeline()


# --- the two built-in modalities refuse each other's options --------------------------------
@pytest.mark.parametrize(
    "backbone, params, named",
    [
        ("all-MiniLM-L6-v2", {"image_size": 64}, "image_size=64"),
        ("all-MiniLM-L6-v2", {"num_workers": 2}, "num_workers=2"),
        ("all-MiniLM-L6-v2", {"augment": "default"}, "augment='default'"),
        ("efficientnet_lite0", {"max_length": 32}, "max_length=32"),
    ],
)
def test_an_option_of_the_other_modality_is_an_error_not_ignored(backbone, params, named):
    texts = ["a first sentence", "and a second one"]
    images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    X, y = (texts if backbone == "all-MiniLM-L6-v2" else images), ["a", "b"]
    Estimator = FineTunedClassifier if "augment" in params else PretrainedFeatureExtractor
    with pytest.raises(ValueError, match=f"{named}.*leave {named.split('=')[0]} unset"):
        Estimator(backbone, **params).fit(X, y)
