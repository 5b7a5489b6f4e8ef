"""FineTunedClassifier: freezing, caching, learning rates, transfer, search, errors."""

import io
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from skorch.callbacks import Callback

import sktransfer
import sktransfer._fine_tuning._cache as prefix_cache
from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor

FAST = {"image_size": 64, "batch_size": 8, "random_state": 0}


@pytest.fixture(scope="module")
def split(crops):
    X, y = crops
    return X[::2], y[::2], X[1::2], y[1::2]


@pytest.fixture(scope="module")
def head_only(split):
    X, y, _, _ = split
    return FineTunedClassifier(n_frozen="all", max_epochs=5, **FAST).fit(X, y)


def test_head_only_training_beats_chance_on_real_photos(head_only, split):
    _, _, X_test, y_test = split
    assert head_only.score(X_test, y_test) >= 0.9
    assert head_only.n_frozen_ == head_only.n_layer_groups_ == 9
    assert head_only.n_cached_stages_ == 10  # every stage, pooling included, ran once
    proba = head_only.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    assert list(head_only.classes_) == ["china", "flower"]
    losses = head_only.history_[:, "train_loss"]
    assert len(losses) == 5 and losses[-1] < losses[0]


def _frozen_state(clf_or_backbone, n_groups):
    backbone = getattr(clf_or_backbone, "backbone_", clf_or_backbone)
    names = [name for name, _ in backbone.net.named_children()][:n_groups]
    return {
        k: v.detach().cpu().clone()
        for k, v in backbone.net.state_dict().items()
        if k.split(".")[0] in names
    }


@pytest.mark.parametrize("augment", [None, "default"])
def test_frozen_groups_and_their_batchnorm_statistics_are_untouched(split, augment):
    from sktransfer import load_backbone

    X, y, _, _ = split
    before = _frozen_state(load_backbone(), 7)
    trainable_before = load_backbone().net.conv_head.state_dict()
    clf = FineTunedClassifier(n_frozen=-2, max_epochs=2, augment=augment, **FAST).fit(X, y)
    assert clf.n_cached_stages_ == (7 if augment is None else 0)
    after = _frozen_state(clf, 7)
    assert before.keys() == after.keys()
    assert any("running_mean" in k for k in after)
    for key in before:
        assert torch.equal(before[key], after[key]), key  # bit-identical, buffers included
    trained = clf.backbone_.net.conv_head.state_dict()
    assert not torch.equal(trained["1.running_mean"], trainable_before["1.running_mean"])
    assert not torch.equal(trained["0.weight"], trainable_before["0.weight"])


@pytest.mark.parametrize("fold", [False, True], ids=["cache", "cache-bn-folded"])
def test_cached_and_uncached_training_give_the_same_losses(split, monkeypatch, fold):
    X, y, X_test, _ = split
    params = {"n_frozen": -1, "max_epochs": 3, **FAST}
    monkeypatch.setattr(prefix_cache, "FOLD_MIN_INPUTS", 1 if fold else 10**9)
    cached = FineTunedClassifier(**params).fit(X, y)
    uncached = FineTunedClassifier(cache_size=0, **params).fit(X, y)
    assert cached.n_cached_stages_ == 8 and uncached.n_cached_stages_ == 0
    np.testing.assert_allclose(
        cached.history_[:, "train_loss"], uncached.history_[:, "train_loss"], rtol=1e-4
    )
    np.testing.assert_allclose(
        cached.predict_proba(X_test), uncached.predict_proba(X_test), atol=1e-4
    )
    from sktransfer import load_backbone

    pretrained, kept = load_backbone().net.state_dict(), cached.backbone_.net.state_dict()
    frozen = [k for k in kept if not k.startswith("conv_head")]
    assert all(torch.equal(pretrained[k], kept[k]) for k in frozen)  # folding used a copy


def test_frozen_stages_are_probed_once_per_prefix(split, monkeypatch):
    import sktransfer._core.inference as inference

    X, y, _, _ = split
    monkeypatch.setattr(inference, "PROBES", inference.ProbeCache())
    calls = []

    def counting(fn, preprocessing, device):
        calls.append(1)
        return inference.probe(fn, preprocessing, device)

    monkeypatch.setattr(prefix_cache, "probe", counting)
    fits = [
        FineTunedClassifier(n_frozen=n_frozen, max_epochs=1, **FAST).fit(X, y)
        for n_frozen in (-1, -1, -2)
    ]
    assert len(calls) == 2  # the second fit of n_frozen=-1 probed nothing
    assert [fit.n_cached_stages_ for fit in fits] == [8, 8, 7]
    assert fits[0]._frozen_stages == fits[1]._frozen_stages


def test_discriminative_learning_rates(split):
    X, y, _, _ = split
    clf = FineTunedClassifier(n_frozen=-1, lr=1e-3, max_epochs=1, **FAST).fit(X, y)
    lrs = sorted(group["lr"] for group in clf.net_.optimizer_.param_groups)
    assert lrs == pytest.approx([1e-4, 1e-3])
    clf = clone(clf).set_params(backbone_lr=5e-5).fit(X, y)
    lrs = sorted(group["lr"] for group in clf.net_.optimizer_.param_groups)
    assert lrs == pytest.approx([5e-5, 1e-3])


@pytest.mark.parametrize("n_frozen, expected", [("all", 9), (0, 0), (-1, 8), (3, 3), (-9, 0)])
def test_n_frozen_counts_groups_from_the_input(split, n_frozen, expected):
    X, y, _, _ = split
    clf = FineTunedClassifier(n_frozen=n_frozen, max_epochs=1, **FAST).fit(X[3:9], y[3:9])
    assert clf.n_frozen_ == expected
    trainable = {n for n, p in clf.backbone_.net.named_parameters() if p.requires_grad}
    groups = clf.backbone_.layer_groups
    assert not trainable & {p for _, ps in groups[:expected] for p in ps}
    assert trainable == {p for _, ps in groups[expected:] for p in ps}


@pytest.mark.parametrize("n_frozen", [10, -10])
def test_n_frozen_out_of_range_gives_the_valid_range(split, n_frozen):
    X, y, _, _ = split
    with pytest.raises(ValueError, match=r"integer in \[-9, 9\].*9 layer groups"):
        FineTunedClassifier(n_frozen=n_frozen, **FAST).fit(X, y)
    with pytest.raises(ValueError, match="n_frozen"):
        FineTunedClassifier(n_frozen="some", **FAST).fit(X, y)


def test_random_state_makes_a_cpu_fit_reproducible(split):
    X, y, X_test, _ = split
    params = {"n_frozen": -1, "max_epochs": 2, "augment": "default", **FAST}
    a = FineTunedClassifier(**params).fit(X, y).predict_proba(X_test)
    b = FineTunedClassifier(**params).fit(X, y).predict_proba(X_test)
    np.testing.assert_array_equal(a, b)


def test_file_paths_and_a_torchvision_augmentation(image_folder):
    from torchvision.transforms import v2 as T

    from sktransfer import load_image_folder

    paths, labels = load_image_folder(image_folder)
    augment = T.Compose([T.RandomRotation(10), T.ColorJitter(0.2)])
    clf = FineTunedClassifier(augment=augment, max_epochs=2, **FAST).fit(paths[::2], labels[::2])
    assert clf.n_cached_stages_ == 0  # augmented images change every epoch: nothing cached
    assert clf.score(paths[1::2], labels[1::2]) >= 0.75


def test_integer_labels_class_weight_and_mlp_head(split):
    X, y, _, _ = split
    y_int = np.where(y == "china", 3, 7)
    clf = FineTunedClassifier(
        max_epochs=2, class_weight="balanced", head=16, dropout=0.2, **FAST
    ).fit(X[:10], y_int[:10])
    assert clf.classes_.tolist() == [3, 7]
    assert set(clf.predict(X[:4])) <= {3, 7}
    # "balanced" weighs each row by n / (n_classes * its class's count)
    counts = np.bincount((y_int[:10] == 7).astype(int))
    by_row = 10 / (2 * counts[(y_int[:10] == 7).astype(int)])
    same = FineTunedClassifier(max_epochs=2, head=16, dropout=0.2, **FAST)
    same.fit(X[:10], y_int[:10], sample_weight=by_row)
    np.testing.assert_allclose(clf.predict_proba(X), same.predict_proba(X), rtol=1e-5, atol=1e-6)


class _Count(Callback):
    def initialize(self):
        self.epochs = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.epochs += 1


@pytest.mark.parametrize("augment", [None, "default"])
def test_early_stopping_validates_on_a_seeded_unaugmented_hold_out(split, augment):
    X, y, _, _ = split
    params = {"max_epochs": 3, "early_stopping": True, "validation_fraction": 0.25}
    clf = FineTunedClassifier(augment=augment, callbacks=[_Count()], **params, **FAST).fit(X, y)
    counted = [cb for _, cb in clf.net_.callbacks_ if isinstance(cb, _Count)]
    assert counted[0].epochs == len(clf.history_) <= 3
    # the hold-out is train_test_split(stratify=y, random_state=random_state); the kept
    # (best) weights score on it exactly the best validation loss: validation images go
    # through the eval transform, augmentation or not
    _, X_valid, _, y_valid = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    best = min(clf.history_[:, "valid_loss"])
    assert log_loss(y_valid, clf.predict_proba(X_valid)) == pytest.approx(best, rel=1e-4)
    batches = clf.history_[-1, "batches"]  # 12 images: 9 train, 3 validate
    assert sum(b.get("train_batch_size", 0) for b in batches) == 9
    assert sum(b.get("valid_batch_size", 0) for b in batches) == 3


def test_too_small_a_validation_set_is_a_clear_error(split):
    X, y, _, _ = split
    with pytest.raises(ValueError, match="cannot hold out a validation_fraction=0.1"):
        FineTunedClassifier(early_stopping=True, **FAST).fit(X[3:9], y[3:9])  # 0.6 images


def test_grid_search_over_frozen_groups_and_learning_rate(split):
    X, y, _, _ = split
    search = GridSearchCV(
        FineTunedClassifier(max_epochs=2, **FAST),
        {"n_frozen": ["all", -1], "lr": [1e-3, 3e-3]},
        cv=2,
    )
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_score_ > 0.7
    assert search.best_estimator_.n_frozen_ in (9, 8)


def test_clone_keeps_parameters_and_drops_fitted_state(head_only):
    copy = clone(head_only)
    assert copy.get_params() == head_only.get_params()
    assert not hasattr(copy, "net_")


def test_joblib_round_trip_predicts_the_same(head_only, split):
    _, _, X_test, _ = split
    buffer = io.BytesIO()
    joblib.dump(head_only, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), head_only.predict_proba(X_test))
    assert loaded.backbone_.net is loaded.net_.module_.trunk
    assert loaded.net_.module is loaded.net_.module_


def test_pickle_holds_the_network_once_and_only_where_skorch_maps_devices(split):
    """Every tensor is pickled inside skorch's device-mapped part, so a model fitted on a
    GPU unpickles on a CPU-only machine; and the network is stored once (not also as the
    skorch module parameter, the early-stopping copy of the best weights, Adam's moments)."""
    X, y, _, _ = split
    clf = FineTunedClassifier(
        n_frozen=0, max_epochs=2, early_stopping=True, validation_fraction=0.25, **FAST
    ).fit(X, y)
    outside = []

    class Spy(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, torch.Tensor):
                outside.append(tuple(obj.shape))
            return NotImplemented

    buffer = io.BytesIO()
    Spy(buffer).dump(clf)
    assert outside == []
    n_bytes = sum(t.numel() * t.element_size() for t in clf.net_.module_.state_dict().values())
    assert len(buffer.getvalue()) < 1.1 * n_bytes


def test_transfer_from_your_own_model(head_only, split):
    """Source task china/flower; target task with other classes starts from its backbone."""
    X, y, X_test, _ = split
    source = FineTunedClassifier(n_frozen=-1, max_epochs=2, **FAST).fit(X, y)
    y_new = np.array(["left" if i % 2 else "right" for i in range(len(y))])
    target = FineTunedClassifier(backbone=source, max_epochs=1, **FAST).fit(X, y_new)
    assert target.classes_.tolist() == ["left", "right"]
    # the fitted source is a parameter through its weights: clone (and so any search or
    # cross-validation) keeps it fitted
    assert clone(target).backbone is source
    assert len(cross_val_score(clone(target), X, y_new, cv=2)) == 2
    extractor = PretrainedFeatureExtractor(backbone=source, image_size=64)
    assert clone(extractor).backbone is source
    for (name, a), (_, b) in zip(
        source.backbone_.net.state_dict().items(),
        target.backbone_.net.state_dict().items(),
        strict=True,
    ):
        assert torch.equal(a, b), name  # head-only training kept the source's backbone
    feats = extractor.fit(X).transform(X_test)
    x = torch.stack(
        [
            source.backbone_.preprocessing.eval_transform()(torch.from_numpy(i).permute(2, 0, 1))
            for i in X_test
        ]
    )
    with torch.inference_mode():
        expected = source.backbone_.net.eval()(x)
        # the trunk of backbone_ is the one in net_: the new head on top of it is the model
        logits = source.net_.module_.head(expected)
    assert source.backbone_.net is source.net_.module_.trunk  # one owner of the weights
    assert source.backbone_.head is None  # a trained trunk no longer fits the ImageNet head
    np.testing.assert_allclose(feats, expected.numpy(), atol=1e-4)
    np.testing.assert_allclose(logits.softmax(1).numpy(), source.predict_proba(X_test), atol=1e-5)


def test_weights_none_trains_the_architecture_from_scratch(split, head_only):
    X, y, _, _ = split
    scratch = FineTunedClassifier(weights=None, n_frozen=0, max_epochs=1, **FAST).fit(X, y)
    a = scratch.backbone_.net.stem[0].weight
    b = head_only.backbone_.net.stem[0].weight
    assert a.shape == b.shape and not torch.allclose(a, b)


@pytest.mark.parametrize(
    "y, match",
    [
        (["a"] * 12, "at least 2 classes; y has one: 'a'"),
        ([0.0, np.nan] * 6, "NaN"),
        (["a", None] * 6, "missing labels"),
        (["a", "b"] * 5, "different lengths: 12 inputs, 10 labels"),
    ],
)
def test_bad_labels(split, y, match):
    X = split[0][:12]
    with pytest.raises(ValueError, match=match):
        FineTunedClassifier(**FAST).fit(X, np.asarray(y, dtype=object if None in y else None))


def test_predict_before_fit(split):
    with pytest.raises(NotFittedError):
        FineTunedClassifier().predict(split[0])


def test_corrupt_image_is_named(image_folder, tmp_path):
    from sktransfer import load_image_folder

    paths, labels = load_image_folder(image_folder)
    bad = tmp_path / "damaged.jpg"
    bad.write_bytes(b"\xff\xd8 garbage")
    with pytest.raises(ValueError, match="Cannot read image .*damaged.jpg"):
        FineTunedClassifier(**FAST).fit([*paths[10:15], str(bad)], [*labels[10:15], "china"])


@pytest.mark.gpu
@pytest.mark.parametrize("augment", [None, "default"])
def test_gpu_fit_then_load_on_a_cpu_only_machine(split, augment, monkeypatch, tmp_path):
    X, y, X_test, y_test = split
    clf = FineTunedClassifier(
        n_frozen=-1, max_epochs=3, augment=augment, early_stopping=True,
        validation_fraction=0.25, device="cuda", **FAST,
    ).fit(X, y)  # fmt: skip
    assert clf.device_.type == "cuda"
    assert clf.net_.amp == (torch.cuda.get_device_capability()[0] >= 8)  # bf16 from Ampere
    assert clf.score(X_test, y_test) > 0.7
    proba = clf.predict_proba(X_test)
    buffer = io.BytesIO()
    joblib.dump(clf, buffer)
    sktransfer.save(clf, tmp_path / "m.skt")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only machine
    for loaded in (
        joblib.load(io.BytesIO(buffer.getvalue())),
        sktransfer.load(tmp_path / "m.skt"),
    ):
        assert loaded.device_.type == "cpu" and not loaded.net_.amp
        assert all(p.device.type == "cpu" for p in loaded.net_.module_.parameters())
        np.testing.assert_allclose(loaded.predict_proba(X_test), proba, atol=0.05)  # bf16 vs fp32


def test_cache_size_is_a_validated_parameter(split):
    X, y, _, _ = split
    with pytest.raises(ValueError, match="'cache_size' parameter"):
        FineTunedClassifier(cache_size="2G", **FAST).fit(X, y)
    small = FineTunedClassifier(cache_size=0.001, max_epochs=1, **FAST).fit(X, y)
    assert small.n_cached_stages_ == 0  # 1 kB holds no activations: the whole net runs


def test_the_fused_adam_step_is_asked_for_only_where_pytorch_has_it(monkeypatch):
    from sktransfer._core import device

    monkeypatch.setattr(torch, "__version__", "2.3.1+cpu")  # no fused step on a CPU yet
    assert not device.fused_adam("cpu")
    assert device.fused_adam("cuda")
    monkeypatch.setattr(torch, "__version__", "2.4.0")
    assert device.fused_adam("cpu")
    assert not device.fused_adam("mps")
