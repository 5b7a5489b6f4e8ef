"""The safe format: round trips, and refusal of foreign, modified or newer files."""

import json
import zipfile

import joblib
import numpy as np
import pytest

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
        meta = json.loads(archive.read("sktransfer.json"))
    assert meta["format"] == "sktransfer" and meta["estimator"] == "FineTunedClassifier"
    assert meta["params"]["backbone"] == "efficientnet_lite0"
    assert meta["classes"] == ["china", "flower"]


def test_integer_classes_keep_their_type(crops, tmp_path):
    X, y = crops
    clf = FineTunedClassifier(max_epochs=1, **FAST).fit(X, np.where(y == "china", 0, 5))
    sktransfer.save(clf, tmp_path / "m.skt")
    loaded = sktransfer.load(tmp_path / "m.skt")
    assert loaded.classes_.dtype.kind == "i" and loaded.classes_.tolist() == [0, 5]
    np.testing.assert_array_equal(loaded.predict(X[:4]), clf.predict(X[:4]))


def test_extractor_round_trip(crops, tmp_path):
    X, _ = crops
    extractor = PretrainedFeatureExtractor(layer="blocks5", **{"image_size": 64}).fit(X)
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


def _rewrite(path, meta=None, weights=None):
    with zipfile.ZipFile(path) as archive:
        old_meta = json.loads(archive.read("sktransfer.json"))
        old_weights = archive.read("weights.safetensors")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("sktransfer.json", json.dumps(meta or old_meta))
        archive.writestr("weights.safetensors", weights or old_weights)
    return old_meta, old_weights


def test_modified_weights_are_refused(saved):
    meta, weights = _rewrite(saved)
    tampered = bytearray(weights)
    tampered[-10] ^= 0xFF
    _rewrite(saved, weights=bytes(tampered))
    with pytest.raises(ValueError, match="modified or damaged"):
        sktransfer.load(saved)


def test_foreign_files_are_refused(tmp_path, fitted):
    pickle_file = tmp_path / "model.joblib"
    joblib.dump(fitted, pickle_file)
    with pytest.raises(ValueError, match="is not an sktransfer model file"):
        sktransfer.load(pickle_file)
    other_zip = tmp_path / "other.skt"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("data.pkl", b"...")
    with pytest.raises(ValueError, match="unexpected contents"):
        sktransfer.load(other_zip)


def test_newer_format_and_unknown_parameters_are_refused(saved):
    meta, _ = _rewrite(saved)
    _rewrite(saved, meta=meta | {"format_version": 99})
    with pytest.raises(ValueError, match="newer sktransfer"):
        sktransfer.load(saved)
    _rewrite(saved, meta=meta | {"params": meta["params"] | {"evil": 1}})
    with pytest.raises(ValueError, match="unknown parameters"):
        sktransfer.load(saved)


def test_what_the_format_cannot_hold_is_refused_and_nothing_written(crops, tmp_path):
    X, y = crops
    clf = FineTunedClassifier(
        head=lambda n_in, n_out: __import__("torch").nn.Linear(n_in, n_out),
        max_epochs=1,
        **FAST,
    ).fit(X, y)
    with pytest.raises(TypeError, match="joblib"):
        sktransfer.save(clf, tmp_path / "m.skt")
    with pytest.raises(TypeError, match="FineTunedClassifier or a PretrainedFeatureExtractor"):
        sktransfer.save(object(), tmp_path / "m.skt")
    assert list(tmp_path.iterdir()) == []


def test_unfitted_estimator_is_refused(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        sktransfer.save(FineTunedClassifier(), tmp_path / "m.skt")
