"""The estimator contract in image form, and fitted attributes that match the docstrings.

scikit-learn's common checks feed tabular data, which an image estimator refuses, so
``EXPECTED_FAILED_CHECKS`` lists them for the image estimators; each such check that has
an image form is tested here on small real photos (``crops``), and its reason names the
test. The last test checks every public estimator's fitted attributes against the
"Attributes" section of its docstring.
"""

import inspect
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted
from torch import nn

from sktransfer import (
    FewShotTextClassifier,
    FineTunedClassifier,
    FineTunedRegressor,
    PretrainedFeatureExtractor,
    ZeroShotTextClassifier,
)
from sktransfer.adaptation import KLIEP
from sktransfer.utils._testing import all_estimators

IMAGE_ESTIMATORS = [PretrainedFeatureExtractor, FineTunedClassifier, FineTunedRegressor]
IMAGE_CLASSIFIERS = [cls for cls in IMAGE_ESTIMATORS if is_classifier(cls())]
# Fast settings, each given to the estimators that have the parameter. On the CPU with a
# random_state, fitting is deterministic.
FAST = {"image_size": 32, "batch_size": 8, "max_epochs": 1, "random_state": 0, "device": "cpu"}
# Methods that return one row per image, and every method that needs a fitted estimator.
OUTPUT_METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "transform",
)
FITTED_METHODS = (*OUTPUT_METHODS, "score", "get_feature_names_out")


def make(cls, **params):
    """``cls`` with the fast settings it has a parameter for, and ``params``."""
    names = cls().get_params(deep=False)
    return cls(**{k: v for k, v in FAST.items() if k in names}, **params)


def call(estimator, method, X, y):
    """Call ``method`` with the arguments it takes."""
    if method == "score":
        return estimator.score(X, y)
    if method == "get_feature_names_out":
        return estimator.get_feature_names_out()
    return getattr(estimator, method)(X)


def outputs(estimator, X):
    """``{method: output}`` for every per-image output method ``estimator`` has."""
    return {m: getattr(estimator, m)(X) for m in OUTPUT_METHODS if hasattr(estimator, m)}


def assert_same_outputs(actual, expected, exact=True):
    assert actual.keys() == expected.keys()
    for method, out in expected.items():
        if exact or out.dtype.kind not in "fc":
            np.testing.assert_array_equal(actual[method], out, err_msg=method)
        else:  # the same rows in other batches: float rounding may differ
            np.testing.assert_allclose(actual[method], out, rtol=1e-5, atol=1e-6, err_msg=method)


@pytest.fixture(params=IMAGE_ESTIMATORS, ids=lambda cls: cls.__name__)
def Estimator(request):
    return request.param


@pytest.fixture(scope="module")
def data(crops):
    """12 of the real photos at 48 px (small and fast), 6 per class, labels 0 and 1.

    Integer labels serve the classifiers and, as real values, the regressor.
    """
    X, y = crops
    return np.ascontiguousarray(X[::2, ::2, ::2]), (y[::2] == "flower").astype(int)


@pytest.fixture(scope="module", params=IMAGE_ESTIMATORS, ids=lambda cls: cls.__name__)
def fitted(request, data):
    """One fitted estimator per class, shared by the tests that only read it."""
    return make(request.param).fit(*data)


# --- fit ------------------------------------------------------------------------------------
def test_fit_returns_self(Estimator, data):
    estimator = make(Estimator)
    assert estimator.fit(*data) is estimator


def test_fit_is_idempotent(fitted, data):
    """Fitting again gives the same model, and the same as a fresh estimator's fit."""
    X, y = data
    expected = outputs(fitted, X)
    estimator = clone(fitted)
    assert_same_outputs(outputs(estimator.fit(X, y), X), expected)
    assert_same_outputs(outputs(estimator.fit(X, y), X), expected)


def _user_module():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())


@pytest.mark.parametrize("backbone", ["named", "user module"])
def test_fit_leaves_the_parameters_alone(Estimator, data, backbone):
    """fit changes no parameter, not even inside a module given as one, and sets no public
    attribute without a trailing underscore."""
    params = {} if backbone == "named" else {"backbone": _user_module(), "n_frozen": 0}
    names = Estimator().get_params(deep=False)
    estimator = make(Estimator, **{k: v for k, v in params.items() if k in names})
    before = estimator.get_params(deep=False)
    hashes = {name: joblib.hash(value) for name, value in before.items()}
    attributes = set(vars(estimator))
    estimator.fit(*data)
    after = estimator.get_params(deep=False)
    assert after.keys() == before.keys()
    for name, value in after.items():
        assert value is before[name], f"fit replaced the parameter {name}"
        assert joblib.hash(value) == hashes[name], f"fit changed the parameter {name}"
    added = set(vars(estimator)) - attributes
    assert not [a for a in added if not a.startswith("_") and not a.endswith("_")]


@pytest.mark.parametrize("Classifier", IMAGE_CLASSIFIERS, ids=lambda cls: cls.__name__)
def test_column_y_warns_and_fits_the_same_model(Classifier, data):
    X, y = data
    expected = outputs(make(Classifier).fit(X, y), X)
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        column = make(Classifier).fit(X, y[:, None])
    assert_same_outputs(outputs(column, X), expected)


@pytest.mark.parametrize("Classifier", IMAGE_CLASSIFIERS, ids=lambda cls: cls.__name__)
def test_continuous_labels_are_refused(Classifier, data):
    X, _ = data
    y = np.random.default_rng(0).normal(size=len(X))
    with pytest.raises(ValueError, match="Unknown label type"):
        make(Classifier).fit(X, y)


@pytest.mark.parametrize("Classifier", IMAGE_CLASSIFIERS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("n", [1, 6])
def test_one_class_is_refused(Classifier, data, n):
    X, _ = data
    with pytest.raises(ValueError, match="at least 2 classes; y has one: 'china'"):
        make(Classifier).fit(X[:n], ["china"] * n)


def test_one_image_fits_a_transformer(data):
    """A feature extractor learns nothing in fit: one image is enough."""
    X, _ = data
    extractor = make(PretrainedFeatureExtractor).fit(X[:1])
    assert extractor.transform(X[:2]).shape[0] == 2


@pytest.mark.parametrize("Classifier", IMAGE_CLASSIFIERS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize(
    "labels",
    [["b", "c", "a"], [7, -3, 2], [False, True], ["b", "a"]],
    ids=["3 strings", "3 integers", "booleans", "2 strings"],
)
def test_classes_are_the_sorted_labels(Classifier, data, labels):
    X, _ = data
    y = np.resize(np.asarray(labels), len(X))
    classifier = make(Classifier).fit(X, y)
    np.testing.assert_array_equal(classifier.classes_, np.unique(labels))
    assert set(classifier.predict(X)) <= set(labels)
    proba = classifier.predict_proba(X)
    assert proba.shape == (len(X), len(labels))
    np.testing.assert_array_equal(classifier.classes_[proba.argmax(axis=1)], classifier.predict(X))


def test_fit_transform_is_fit_then_transform(data):
    X, _ = data
    extractor = make(PretrainedFeatureExtractor)
    at_once = extractor.fit_transform(X)
    np.testing.assert_array_equal(extractor.transform(X), at_once)
    np.testing.assert_array_equal(make(PretrainedFeatureExtractor).fit(X).transform(X), at_once)


def test_fit_and_score_take_y_second(Estimator, data):
    X, y = data
    estimator = make(Estimator)
    for method in ("fit", "score", "partial_fit", "fit_predict", "fit_transform"):
        if hasattr(estimator, method):
            args = list(inspect.signature(getattr(estimator, method)).parameters)
            assert args[:2] == ["X", "y"], method
            getattr(estimator, method)(X, y)


def test_pipeline_gives_the_same_outputs(fitted, data):
    X, y = data
    alone = fitted
    pipe = make_pipeline(clone(fitted)).fit(X, y)
    assert_same_outputs(outputs(pipe, X), outputs(alone, X))
    if is_classifier(alone):
        assert pipe.score(X, y) == alone.score(X, y)


# --- input forms ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint16, np.float32, np.float64])
def test_image_dtypes(fitted, data, dtype):
    """Integer images in [0, 255] give what uint8 gives; float images in [0, 1] nearly."""
    X, y = data
    expected = outputs(fitted, X)
    scale = 255 if np.issubdtype(dtype, np.floating) else 1
    X = (X / scale).astype(dtype)
    estimator = clone(fitted).fit(X, y)
    actual = outputs(estimator, X)
    if scale == 1:
        assert_same_outputs(actual, expected)
    else:  # float images are resized as floats, uint8 images with rounding
        for method, out in actual.items():
            assert out.shape == expected[method].shape, method
            assert out.dtype.kind not in "fc" or np.isfinite(out).all(), method


def test_fortran_ordered_and_read_only_images(fitted, data, tmp_path):
    X, y = data
    expected = outputs(fitted, X)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    memmaps = np.load(tmp_path / "X.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", "r")
    assert not memmaps[0].flags.writeable
    for X_other, y_other in [(np.asfortranarray(X), y), memmaps]:
        estimator = clone(fitted).fit(X_other, y_other)
        assert_same_outputs(outputs(estimator, X_other), expected)


def test_non_array_containers_give_the_same_outputs(fitted, data):
    X, y = data
    expected = outputs(fitted, X)
    objects = np.empty(len(X), dtype=object)
    objects[:] = list(X)
    for X_other, y_other in [(list(X), list(y)), (objects, pd.Series(y))]:
        estimator = clone(fitted).fit(X_other, y_other)
        assert_same_outputs(outputs(estimator, X_other), expected)


@pytest.mark.parametrize(
    "bad, match",
    [
        ("nan", "NaN or infinity"),
        ("inf", "NaN or infinity"),
        ("empty", "X is empty"),
        ("flat", "got shape"),
        ("one image", "looks like one colour image"),
        ("tabular", "tabular data, not images"),
    ],
)
def test_bad_input_is_refused_by_every_method(fitted, data, bad, match):
    X, y = data
    X = X / 255.0
    if bad in ("nan", "inf"):
        X[1, 2, 3, 0] = float(bad)
    X = {
        "empty": X[:0],
        "flat": X[0].ravel(),
        "one image": X[0],  # without the batch axis
        "tabular": X.reshape(len(X), -1),
    }.get(bad, X)
    with pytest.raises(ValueError, match=match):
        clone(fitted).fit(X, y[: len(X)])
    for method in OUTPUT_METHODS:
        if hasattr(fitted, method):
            with pytest.raises(ValueError, match=match):
                getattr(fitted, method)(X)


# --- prediction and transform ---------------------------------------------------------------
def _snapshot(value):
    """What must not change: the object itself and, for arrays and modules, its content."""
    if isinstance(value, np.ndarray):
        return value, value.copy()
    if isinstance(value, nn.Module):
        state = {k: t.detach().clone() for k, t in value.state_dict().items()}
        return value, (state, [m.training for m in value.modules()])
    return value, None


def _assert_unchanged(value, snapshot, name):
    original, content = snapshot
    assert value is original or (type(value) is type(original) and value == original), name
    if isinstance(original, np.ndarray):
        np.testing.assert_array_equal(value, content, err_msg=name)
    elif isinstance(original, nn.Module):
        state, training = content
        assert [m.training for m in value.modules()] == training, f"{name}: train/eval mode"
        for key, tensor in value.state_dict().items():
            assert torch.equal(tensor, state[key]), f"{name}: {key}"


def test_methods_leave_the_estimator_unchanged(fitted, data):
    X, y = data
    for method in FITTED_METHODS:
        if not hasattr(fitted, method):
            continue
        before = {name: _snapshot(value) for name, value in vars(fitted).items()}
        call(fitted, method, X, y)
        assert vars(fitted).keys() == before.keys(), method
        for name, value in vars(fitted).items():
            _assert_unchanged(value, before[name], f"{method} changed {name}")


def test_sample_order_invariance(fitted, data):
    X, _ = data
    order = np.random.default_rng(0).permutation(len(X))
    expected = {m: out[order] for m, out in outputs(fitted, X).items()}
    assert_same_outputs(outputs(fitted, X[order]), expected, exact=False)


def test_subset_invariance(fitted, data):
    """A subset predicted in other batches (3 images, not 8) gives the same rows."""
    X, _ = data
    expected = {m: out[5:12] for m, out in outputs(fitted, X).items()}
    batch_size = fitted.batch_size
    fitted.set_params(batch_size=3)
    try:
        actual = outputs(fitted, X[5:12])
    finally:
        fitted.set_params(batch_size=batch_size)
    assert_same_outputs(actual, expected, exact=False)


def test_pickle_round_trip_gives_the_same_outputs(fitted, data):
    X, _ = data
    loaded = pickle.loads(pickle.dumps(fitted))
    assert type(loaded) is type(fitted)
    assert_same_outputs(outputs(loaded, X), outputs(fitted, X))


def test_every_method_needs_fit(Estimator, data):
    X, y = data
    estimator = make(Estimator)
    with pytest.raises(NotFittedError):
        check_is_fitted(estimator)
    methods = [m for m in FITTED_METHODS if hasattr(estimator, m)]
    properties = [
        name
        for name, member in inspect.getmembers(Estimator, lambda m: isinstance(m, property))
        if name.endswith("_") and not name.startswith("_")
    ]
    assert methods
    for method in methods:
        with pytest.raises(NotFittedError):
            call(estimator, method, X, y)
    for name in properties:  # as an unset attribute (NotFittedError is an AttributeError)
        with pytest.raises(AttributeError):
            getattr(estimator, name)
    estimator.fit(X, y)
    check_is_fitted(estimator)
    for name in properties:
        getattr(estimator, name)


# --- fitted attributes match the docstring --------------------------------------------------
def _tabular_domains():
    """30 labelled source rows, 30 shifted target rows of which the first 5 are labelled."""
    rng = np.random.default_rng(0)
    Xs, Xt = rng.normal(size=(30, 3)), rng.normal(size=(30, 3)) * 2 + 1
    y = np.r_[(Xs[:, 0] > 0).astype(int), (Xt[:5, 0] > 1).astype(int), [-1] * 25]
    return np.vstack([Xs, Xt]), y, {"sample_domain": np.r_[[1] * 30, [-1] * 30]}


# Labelled texts for the text estimators: two classes, four sentences each.
TEXTS = [
    "The striker scored twice in the second half.",
    "She won the marathon in record time.",
    "The coach was sacked after five straight defeats.",
    "Tickets for the cup final sold out in an hour.",
    "Simmer the tomato sauce for twenty minutes.",
    "Knead the dough until it is smooth and elastic.",
    "Season the soup with salt and a little pepper.",
    "Roast the vegetables in a hot oven until golden.",
]
TEXT_LABELS = np.repeat(["sports", "cooking"], 4)

# Settings under which fit sets every documented attribute.
ALL_ATTRIBUTES = {
    KLIEP: {"gamma": [0.5, 1.0], "cv": 3},  # cv_log_likelihood_: gamma a list
    ZeroShotTextClassifier: {"labels": ["sports", "cooking"]},
    FewShotTextClassifier: {"n_pairs": 2},  # the attributes, not the tuning
}


def _documented_attributes(cls):
    from numpydoc.docscrape import NumpyDocString

    section = NumpyDocString(inspect.getdoc(cls))["Attributes"]
    return {name.strip() for entry in section for name in entry.name.split(",")}


def _fitted_attributes(estimator):
    """Public attributes fit set: in ``vars`` or as properties, names ending in ``_``."""
    names = set(vars(estimator))
    names |= {name for name, _ in inspect.getmembers(type(estimator), inspect.isdatadescriptor)}
    return {
        name
        for name in names
        if name.endswith("_") and not name.startswith("_") and hasattr(estimator, name)
    }


@pytest.mark.parametrize(
    "Estimator", [cls for _, cls in all_estimators()], ids=lambda c: c.__name__
)
def test_fitted_attributes_are_documented(Estimator, crops):
    estimator = make(Estimator, **ALL_ATTRIBUTES.get(Estimator, {}))
    if get_tags(estimator).input_tags.three_d_array:  # an image estimator
        X, y = crops
        if is_regressor(estimator):
            y = (y == "flower").astype(float)
        estimator.fit(X[::2, ::2, ::2], y[::2])
    elif get_tags(estimator).input_tags.string:  # a text estimator
        estimator.fit(TEXTS, TEXT_LABELS)
    else:
        X, y, params = _tabular_domains()
        estimator.fit(X, y, **params)
    fitted = _fitted_attributes(estimator)
    documented = _documented_attributes(Estimator)
    assert not fitted - documented, f"fitted but not documented: {sorted(fitted - documented)}"
    assert not documented - fitted, f"documented but not set: {sorted(documented - fitted)}"
