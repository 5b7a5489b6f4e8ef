"""Every kind of target: one label, several labels, real values; and sample weights.

The tasks are built from real photos (scikit-learn's two sample photos) so that a model
must see something a pretrained network sees to beat a trivial predictor:

- regression: a crop of one photo pasted over the left part of a crop of the other,
  covering a random fraction of the width; the target is that fraction;
- multi-label: two tiles side by side, each a crop of either photo; the labels are the
  photos present.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import f1_score, r2_score
from sklearn.model_selection import GridSearchCV, cross_val_predict
from sklearn.multioutput import MultiOutputClassifier
from sklearn.pipeline import Pipeline, make_pipeline

import sktransfer
from sktransfer import FineTunedClassifier, FineTunedRegressor, PretrainedFeatureExtractor

FAST = {"image_size": 64, "batch_size": 64, "random_state": 0, "device": "cpu"}


def _crop(photo, rng, size):
    h, w = photo.shape[:2]
    side = int(rng.integers(size, min(h, w) // 2))
    top, left = rng.integers(0, h - side), rng.integers(0, w - side)
    from PIL import Image

    crop = photo[top : top + side, left : left + side]
    return np.array(Image.fromarray(crop).resize((size, size)))


@pytest.fixture(scope="module")
def coverage(sample_photos):
    """64 composites of 64 px: the share of the width the flower photo covers."""
    rng = np.random.default_rng(1)
    china, flower = sample_photos
    X, y = [], []
    for _ in range(64):
        image = _crop(china, rng, 64)
        share = rng.uniform(0, 1)
        width = int(round(share * 64))
        image[:, :width] = _crop(flower, rng, 64)[:, :width]
        X.append(image)
        y.append(width / 64)
    return np.stack(X), np.asarray(y)


@pytest.fixture(scope="module")
def tiles(sample_photos):
    """60 images of two 64x32 tiles: the labels (china, flower) say which photos are in."""
    rng = np.random.default_rng(2)
    X, Y = [], []
    for i in range(60):
        sources = [(0, 0), (1, 1), (0, 1), (1, 0)][i % 4]
        X.append(np.hstack([_crop(sample_photos[s], rng, 64)[:, :32] for s in sources]))
        Y.append([int(0 in sources), int(1 in sources)])
    return np.stack(X), np.asarray(Y)


# --- regression ------------------------------------------------------------------------------
def test_a_regressor_learns_what_a_pretrained_network_sees(coverage):
    X, y = coverage
    reg = FineTunedRegressor(max_epochs=100, **FAST).fit(X[:48], y[:48])
    predicted = reg.predict(X[48:])
    assert predicted.shape == (16,) and predicted.dtype == np.float64
    assert reg.score(X[48:], y[48:]) == pytest.approx(r2_score(y[48:], predicted))
    assert reg.score(X[48:], y[48:]) > 0.5  # a constant scores 0
    assert reg.n_outputs_ == 1


def test_targets_are_standardised_and_mapped_back(coverage):
    X, y = coverage
    scaled = FineTunedRegressor(max_epochs=5, **FAST).fit(X[:32], 1000 * y[:32] + 50)
    plain = FineTunedRegressor(max_epochs=5, **FAST).fit(X[:32], y[:32])
    np.testing.assert_allclose(
        scaled.predict(X[32:40]), 1000 * plain.predict(X[32:40]) + 50, rtol=1e-4
    )
    ints = FineTunedRegressor(max_epochs=5, **FAST).fit(X[:32], np.round(100 * y[:32]))
    assert ints.predict(X[:2]).dtype == np.float64


def test_several_targets_and_a_column_target(coverage):
    X, y = coverage
    Y = np.column_stack([y, 1 - y])
    reg = FineTunedRegressor(max_epochs=100, loss="huber", **FAST).fit(X[:48], Y[:48])
    assert reg.predict(X[48:]).shape == (16, 2) and reg.n_outputs_ == 2
    assert reg.score(X[48:], Y[48:]) > 0.5
    column = FineTunedRegressor(max_epochs=2, **FAST).fit(X[:16], y[:16, None])
    assert column.predict(X[:3]).shape == (3, 1)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_missing_targets_name_the_row(coverage, bad):
    X, y = coverage
    y = y[:8].copy()
    y[5] = bad
    with pytest.raises(ValueError, match="row 5"):
        FineTunedRegressor(max_epochs=1, **FAST).fit(X[:8], y)


def test_the_regressor_has_no_decision_function_or_probabilities():
    assert not hasattr(FineTunedRegressor(), "predict_proba")
    assert not hasattr(FineTunedRegressor(), "decision_function")


@pytest.mark.parametrize("loss", ["squared_error", "absolute_error", "huber"])
def test_each_loss_trains(coverage, loss):
    X, y = coverage
    # from a zero head (the default probe starts at the ridge fit, which the loss cannot beat)
    reg = FineTunedRegressor(max_epochs=3, loss=loss, head_init="zeros", **FAST)
    reg.fit(X[:16], y[:16])
    losses = reg.history_[:, "train_loss"]
    assert losses[-1] < losses[0]


# --- multi-label -----------------------------------------------------------------------------
def test_multi_label_beats_a_trivial_predictor_and_has_scikit_learn_s_format(tiles):
    X, Y = tiles
    clf = FineTunedClassifier(max_epochs=40, lr=0.01, **FAST).fit(X[:40], Y[:40])
    predicted = clf.predict(X[40:])
    assert predicted.shape == (20, 2) and set(np.unique(predicted)) <= {0, 1}
    proba = clf.predict_proba(X[40:])
    assert proba.shape == (20, 2) and ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(predicted, (proba >= 0.5).astype(int))
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    everything = np.ones_like(Y[40:])  # the best constant guess
    assert f1_score(Y[40:], predicted, average="samples") > f1_score(
        Y[40:], everything, average="samples"
    )
    strict = clone(clf).set_params(threshold=0.99).fit(X[:40], Y[:40])
    assert strict.predict(X[40:]).sum() <= predicted.sum()


def test_multi_label_works_in_searches_and_cross_validation(tiles):
    X, Y = tiles
    search = GridSearchCV(
        FineTunedClassifier(max_epochs=2, **FAST), {"lr": [1e-3, 1e-2]}, cv=2,
        scoring="f1_samples",
    )  # fmt: skip
    search.fit(X[:24], Y[:24])
    assert search.best_estimator_.predict(X[:3]).shape == (3, 2)
    out = cross_val_predict(FineTunedClassifier(max_epochs=2, **FAST), X[:24], Y[:24], cv=2)
    assert out.shape == (24, 2)


def test_balanced_class_weight_weighs_each_label_s_positives(tiles):
    X, Y = tiles
    rare = Y.copy()
    rare[8:, 1] = 0  # the second label is rare
    clf = FineTunedClassifier(max_epochs=1, class_weight="balanced", **FAST).fit(X, rare)
    positives = rare.sum(axis=0)
    np.testing.assert_allclose(clf._task.pos_weight_, (len(rare) - positives) / positives)
    with pytest.raises(ValueError, match="class_weight as a dict"):
        FineTunedClassifier(max_epochs=1, class_weight={0: 1}, **FAST).fit(X, Y)


def test_multi_label_models_round_trip_in_a_file(tiles, tmp_path):
    X, Y = tiles
    clf = FineTunedClassifier(max_epochs=2, n_frozen=-1, **FAST).fit(X[:24], Y[:24])
    sktransfer.save(clf, tmp_path / "multi.skt")
    loaded = sktransfer.load(tmp_path / "multi.skt")
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_regressors_round_trip_in_a_file(coverage, tmp_path):
    X, y = coverage
    for target in (y[:24], np.column_stack([y[:24], 2 * y[:24]])):
        reg = FineTunedRegressor(max_epochs=2, n_frozen=-1, **FAST).fit(X[:24], target)
        sktransfer.save(reg, tmp_path / "reg.skt")
        loaded = sktransfer.load(tmp_path / "reg.skt")
        np.testing.assert_allclose(loaded.predict(X), reg.predict(X), rtol=1e-6)
        assert loaded.predict(X).shape == reg.predict(X).shape


# --- sample weights --------------------------------------------------------------------------
@pytest.mark.parametrize("Estimator", [FineTunedClassifier, FineTunedRegressor])
def test_integer_sample_weights_train_as_repeated_rows(crops, coverage, Estimator):
    X_all, y = crops if Estimator is FineTunedClassifier else coverage
    X, y = X_all[::2], y[::2]
    weights = np.resize([1, 2, 3], len(X))
    # One batch: the same gradients. SGD, whose steps are linear in them: Adam divides by
    # their running size, which turns rounding-level differences near an optimum (where the
    # probe starts the head) into full-size steps.
    settings = {**FAST, "batch_size": 64, "max_epochs": 3, "optimizer": "sgd", "n_frozen": "all"}
    if Estimator is FineTunedRegressor:
        # 32 rows and 1280 features: the probe's ridge may interpolate the rows (if
        # leave-one-out prefers it), and an interpolation is the same whatever the
        # weights; a hidden layer of 16 gives the last layer fewer features than rows
        settings["head"] = 16
    weighted = Estimator(**settings).fit(X, y, sample_weight=weights)
    repeated = Estimator(**settings).fit(np.repeat(X, weights, 0), np.repeat(y, weights, 0))
    out = "predict_proba" if Estimator is FineTunedClassifier else "predict"
    # the same loss and gradients up to float rounding (sums over 32 or 63 rows)
    close = {"rtol": 1e-4, "atol": 1e-5}
    # on every input: a fit may interpolate its training rows, whatever their weights
    np.testing.assert_allclose(
        getattr(weighted, out)(X_all), getattr(repeated, out)(X_all), **close
    )
    unweighted = Estimator(**settings).fit(X, y)
    assert not np.allclose(getattr(unweighted, out)(X_all), getattr(weighted, out)(X_all), **close)


def test_sample_weight_combines_with_class_weight_and_is_checked(crops):
    X, y = crops
    X, y = X[::2], y[::2]
    base = {**FAST, "batch_size": 64, "max_epochs": 2}
    balanced = FineTunedClassifier(class_weight={"china": 2.0, "flower": 1.0}, **base)
    by_rows = np.where(y == "china", 2.0, 1.0)
    np.testing.assert_allclose(
        balanced.fit(X, y).predict_proba(X),
        FineTunedClassifier(**base).fit(X, y, sample_weight=by_rows).predict_proba(X),
        rtol=1e-5,
        atol=1e-7,
    )
    weights = np.ones(12)
    for given in (list(weights), pd.Series(weights)):
        FineTunedClassifier(**base).fit(X, y, sample_weight=given)
    FineTunedClassifier(**base).fit(X, y, sample_weight=weights)
    np.testing.assert_array_equal(weights, np.ones(12))  # not overwritten
    with pytest.raises(ValueError, match="non-zero|sums to 0"):
        FineTunedClassifier(**base).fit(X, y, sample_weight=np.zeros(12))
    with pytest.raises(ValueError, match="sample_weight"):
        FineTunedClassifier(**base).fit(X, y, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match="[Nn]egative"):
        FineTunedClassifier(**base).fit(X, y, sample_weight=-weights)


def test_sample_weight_is_routed_through_a_pipeline(crops):
    X, y = crops
    weights = np.where(y == "china", 3.0, 1.0)
    with sktransfer.config_context(), _metadata_routing():
        step = FineTunedClassifier(max_epochs=2, **FAST).set_fit_request(sample_weight=True)
        pipe = Pipeline([("model", step)]).fit(X, y, sample_weight=weights)
    direct = FineTunedClassifier(max_epochs=2, **FAST).fit(X, y, sample_weight=weights)
    np.testing.assert_allclose(pipe.predict_proba(X), direct.predict_proba(X), atol=1e-6)


def _metadata_routing():
    import sklearn

    return sklearn.config_context(enable_metadata_routing=True)


# --- feature transfer with scikit-learn's own multi-output estimators ---------------------
def test_extracted_features_feed_multi_output_estimators(tiles, coverage):
    X, Y = tiles
    multi = make_pipeline(
        PretrainedFeatureExtractor(image_size=64),
        MultiOutputClassifier(LogisticRegression(max_iter=1000)),
    ).fit(X[:40], Y[:40])
    assert multi.predict(X[40:]).shape == (20, 2)
    assert f1_score(Y[40:], multi.predict(X[40:]), average="samples") > 0.8
    Xc, yc = coverage
    ridge = make_pipeline(PretrainedFeatureExtractor(image_size=64), RidgeCV()).fit(
        Xc[:48], np.column_stack([yc[:48], 1 - yc[:48]])
    )
    assert ridge.score(Xc[48:], np.column_stack([yc[48:], 1 - yc[48:]])) > 0.5
