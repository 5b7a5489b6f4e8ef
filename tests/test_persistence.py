"""The safe format: round trips, and refusal of foreign, modified or newer files."""

import hashlib
import json
import zipfile

import joblib
import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.svm import LinearSVC

import sktransfer
from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor

FAST = {"image_size": 64, "batch_size": 8, "random_state": 0}


@pytest.fixture(scope="module")
def fitted(crops):
    X, y = crops
    return FineTunedClassifier(n_frozen=-1, max_epochs=2, **FAST).fit(X[::2], y[::2])


@pytest.fixture()
def saved(fitted, tmp_path):
    path = tmp_path / "model.skt"
    sktransfer.save(fitted, path)
    return path


def test_round_trip_predicts_the_same(fitted, saved, crops):
    X, _ = crops
    loaded = sktransfer.load(saved)
    assert isinstance(loaded, FineTunedClassifier)
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X), atol=1e-6)
    assert loaded.classes_.tolist() == fitted.classes_.tolist()
    assert loaded.get_params() | {"callbacks": None} == fitted.get_params() | {"callbacks": None}
    assert loaded.n_frozen_ == 8


def test_file_holds_json_and_safetensors_only(saved):
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == ["sktransfer.json", "weights.safetensors"]
        infos = archive.infolist()
        text = archive.read("sktransfer.json").decode()
    assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
    meta = json.loads(text)
    assert meta["format"] == "sktransfer" and meta["format_version"] == 2
    assert meta["model"]["estimator"] == "FineTunedClassifier"
    assert meta["model"]["params"]["backbone"] == "efficientnet_lite0"
    assert '"china"' in text and '"flower"' in text  # the classes, as JSON


def test_integer_classes_class_weight_and_augment_are_kept_or_dropped(crops, tmp_path):
    X, y = crops
    clf = FineTunedClassifier(
        max_epochs=1,
        class_weight={0: 1.0, 5: 2.0},
        augment=lambda image: image,  # a Python object: training only, not stored
        **FAST,
    ).fit(X[::3], np.where(y[::3] == "china", 0, 5))
    sktransfer.save(clf, tmp_path / "m.skt")
    loaded = sktransfer.load(tmp_path / "m.skt")
    assert loaded.classes_.dtype.kind == "i" and loaded.classes_.tolist() == [0, 5]
    np.testing.assert_array_equal(loaded.predict(X[:4]), clf.predict(X[:4]))
    assert loaded.class_weight == {0: 1.0, 5: 2.0}
    assert loaded.augment is None
    with zipfile.ZipFile(tmp_path / "m.skt") as archive:
        meta = json.loads(archive.read("sktransfer.json"))
    assert meta["model"]["dropped_params"] == ["augment"]


def test_extractor_round_trip(crops, tmp_path):
    X, _ = crops
    extractor = PretrainedFeatureExtractor(layer="blocks5", image_size=64).fit(X)
    sktransfer.save(extractor, tmp_path / "e.skt")
    assert (tmp_path / "e.skt").stat().st_size < 10_000  # weights reload from the package
    loaded = sktransfer.load(tmp_path / "e.skt")
    np.testing.assert_allclose(loaded.transform(X[:3]), extractor.transform(X[:3]), atol=1e-6)


def test_transferred_model_saves_with_its_fine_tuned_weights(fitted, crops, tmp_path):
    X, y = crops
    target = FineTunedClassifier(backbone=fitted, max_epochs=1, **FAST).fit(X[1::2], y[1::2])
    sktransfer.save(target, tmp_path / "t.skt")
    loaded = sktransfer.load(tmp_path / "t.skt")
    np.testing.assert_allclose(loaded.predict_proba(X), target.predict_proba(X), atol=1e-6)
    features = PretrainedFeatureExtractor(backbone=fitted, image_size=64).fit(X)
    sktransfer.save(features, tmp_path / "f.skt")  # not reloadable: its weights are stored
    np.testing.assert_allclose(
        sktransfer.load(tmp_path / "f.skt").transform(X[:4]), features.transform(X[:4]), atol=1e-5
    )


@pytest.mark.parametrize(
    "steps",
    [
        lambda: [StandardScaler(), LogisticRegression(C=0.1)],
        lambda: [Normalizer(), PCA(n_components=5), LinearSVC()],
    ],
    ids=["scaler-logistic", "normalizer-pca-svc"],
)
def test_feature_transfer_pipeline_round_trip(crops, tmp_path, steps):
    X, y = crops[0][::2], crops[1][::2]
    pipe = make_pipeline(PretrainedFeatureExtractor(image_size=64), *steps()).fit(X, y)
    sktransfer.save(pipe, tmp_path / "p.skt")
    assert (tmp_path / "p.skt").stat().st_size < 100_000  # the backbone reloads
    loaded = sktransfer.load(tmp_path / "p.skt")
    assert [name for name, _ in loaded.steps] == [name for name, _ in pipe.steps]
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    np.testing.assert_allclose(loaded.decision_function(X), pipe.decision_function(X), atol=1e-5)
    assert loaded[-1].get_params() == pipe[-1].get_params()


def _rewrite(path, meta=None, weights=None, rehash=False):
    """Replace the JSON and/or the weights; ``rehash`` writes matching checksums."""
    with zipfile.ZipFile(path) as archive:
        old_meta = json.loads(archive.read("sktransfer.json"))
        old_weights = archive.read("weights.safetensors")
    meta, weights = meta or old_meta, weights or old_weights
    if rehash:  # what someone crafting a file would do
        meta = meta | {"weights_sha256": hashlib.sha256(weights).hexdigest()}
        body = {k: v for k, v in meta.items() if k != "metadata_sha256"}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        meta["metadata_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("sktransfer.json", json.dumps(meta))
        archive.writestr("weights.safetensors", weights)
    return old_meta, old_weights


def test_modified_weights_are_refused(saved):
    meta, weights = _rewrite(saved)
    tampered = bytearray(weights)
    tampered[-10] ^= 0xFF
    _rewrite(saved, weights=bytes(tampered))
    with pytest.raises(ValueError, match=r"modified or damaged: its weights file"):
        sktransfer.load(saved)


def test_modified_description_is_refused(saved):
    meta, _ = _rewrite(saved)
    text = json.dumps(meta).replace('"china"', '"@"').replace('"flower"', '"china"')
    _rewrite(saved, meta=json.loads(text.replace('"@"', '"flower"')))  # swaps the labels
    with pytest.raises(ValueError, match=r"modified or damaged: its description"):
        sktransfer.load(saved)


def test_foreign_files_are_refused(tmp_path):
    pickle_file = tmp_path / "model.joblib"
    joblib.dump({"weights": np.zeros(3)}, pickle_file)
    with pytest.raises(ValueError, match="is not an sktransfer model file"):
        sktransfer.load(pickle_file)
    other_zip = tmp_path / "other.skt"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("data.pkl", b"...")
    with pytest.raises(ValueError, match="unexpected contents"):
        sktransfer.load(other_zip)


def test_newer_format_is_refused(saved):
    meta, _ = _rewrite(saved)
    _rewrite(saved, meta=meta | {"format_version": 99}, rehash=True)
    with pytest.raises(ValueError, match="newer sktransfer"):
        sktransfer.load(saved)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"estimator": "subprocess.Popen"}, "unknown estimator 'subprocess.Popen'"),
        ({"params": {"backbone": "efficientnet_lite0", "evil": 1}}, r"parameters \['evil'"),
        ({"state": None}, "not a valid sktransfer model file"),
    ],
    ids=["class", "parameter", "malformed"],
)
def test_crafted_files_with_valid_checksums_are_refused(saved, change, match):
    meta, weights = _rewrite(saved)
    _rewrite(saved, meta=meta | {"model": meta["model"] | change}, rehash=True)
    with pytest.raises(ValueError, match=match):
        sktransfer.load(saved)


def test_what_the_format_cannot_hold_is_refused_and_nothing_written(crops, tmp_path):
    X, y = crops
    clf = FineTunedClassifier(
        head=lambda n_in, n_out: torch.nn.Linear(n_in, n_out), max_epochs=1, **FAST
    ).fit(X[::3], y[::3])
    with pytest.raises(TypeError, match="joblib"):
        sktransfer.save(clf, tmp_path / "m.skt")
    with pytest.raises(
        TypeError, match="FineTunedClassifier, a FineTunedRegressor, a PretrainedFeatureExtractor"
    ):
        sktransfer.save(object(), tmp_path / "m.skt")
    forest = make_pipeline(PretrainedFeatureExtractor(image_size=64), RandomForestClassifier())
    with pytest.raises(TypeError, match="got RandomForestClassifier. Use joblib"):
        sktransfer.save(forest.fit(X[:6], y[:6]), tmp_path / "m.skt")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_the_old_file_and_no_partial_file(saved, fitted, monkeypatch):
    before = saved.read_bytes()

    def fail(self, name, data, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", fail)
    with pytest.raises(OSError, match="disk full"):
        sktransfer.save(fitted, saved)
    assert saved.read_bytes() == before
    assert list(saved.parent.iterdir()) == [saved]


def test_unfitted_estimator_is_refused(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        sktransfer.save(FineTunedClassifier(), tmp_path / "m.skt")
