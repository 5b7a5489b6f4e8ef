"""Fine-tuning recipes: a head that starts where a linear probe ends, enough training steps.

The promise: with ``n_frozen="all"``, :class:`FineTunedClassifier` is the model of
``make_pipeline(PretrainedFeatureExtractor(), LogisticRegression())``, however few the
inputs. The few-shot task is questions by the kind of answer they ask for (a person, a
place, a number, a description, a thing), written for the tests (``_questions.py``): 8
per class to train on.
"""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import log_loss
from skorch.callbacks import Callback
from torch import nn

import sktransfer
from sktransfer import FineTunedClassifier, FineTunedRegressor, PretrainedFeatureExtractor
from sktransfer._fine_tuning._schedule import MIN_STEPS, training_epochs
from sktransfer._fine_tuning._tasks import PROBE_ALPHAS, _loo_alpha

import _questions

MODEL = "all-MiniLM-L6-v2"
IMAGES = {"image_size": 64, "batch_size": 8, "random_state": 0}


@pytest.fixture(scope="module")
def questions():
    """8 questions per kind of answer to train on, 12 per kind to test on."""
    return _questions.questions()


@pytest.fixture(scope="module")
def question_features(questions):
    X, _, X_test, _ = questions
    extractor = PretrainedFeatureExtractor(MODEL).fit(X)
    return extractor.transform(X).astype(np.float64), extractor.transform(X_test)


class HeadAtStart(Callback):
    """Keep a copy of the head's last layer as training begins."""

    def on_train_begin(self, net, **kwargs):
        last = net.module_.head[-1]
        self.weight = last.weight.detach().double().numpy().copy()
        self.bias = last.bias.detach().double().numpy().copy()


def _start(estimator):
    (callback,) = [cb for _, cb in estimator.net_.callbacks_ if isinstance(cb, HeadAtStart)]
    return callback.weight, callback.bias


# --- the promise: few texts per class ----------------------------------------------------------
def test_few_texts_per_class_score_as_the_feature_pipeline_where_a_zero_head_barely_moves(
    questions, question_features
):
    X, y, X_test, y_test = questions
    features, test_features = question_features
    pipeline = LogisticRegression().fit(features, y)  # the feature-transfer pipeline's model
    expected = pipeline.predict_proba(test_features)
    clf = FineTunedClassifier(MODEL, n_frozen="all", random_state=0, callbacks=[HeadAtStart()])
    clf.fit(X, y)
    # the probe starts the head as the pipeline's model, and training keeps its penalty
    weight, bias = _start(clf)
    scale = np.abs(pipeline.coef_).max()
    np.testing.assert_allclose(weight, pipeline.coef_, atol=1e-3 * scale)
    np.testing.assert_allclose(bias, pipeline.intercept_, atol=1e-3 * scale)
    assert len(clf.history_) == MIN_STEPS // 2  # 40 texts, batches of 32: 2 steps an epoch
    np.testing.assert_allclose(clf.predict_proba(X_test), expected, atol=0.02)
    # the same accuracy, up to near-ties (2 of 60 questions)
    assert clf.score(X_test, y_test) >= pipeline.score(test_features, y_test) - 2 / 60
    # the former defaults: 10 steps from a zero head leave it near uniform probabilities
    old = FineTunedClassifier(
        MODEL, n_frozen="all", head_init="zeros", max_epochs=10, random_state=0
    )
    old.fit(X, y)
    uniform = np.log(5)
    assert log_loss(y_test, old.predict_proba(X_test)) > 0.95 * uniform
    assert log_loss(y_test, clf.predict_proba(X_test)) < log_loss(y_test, expected) + 0.01
    assert log_loss(y_test, expected) < 0.85 * uniform
    assert old.predict_proba(X_test).max() < 0.3  # 5 classes: 0.2 is uniform


def test_a_probe_through_unfrozen_layers_starts_from_their_pretrained_output(
    questions, question_features
):
    """With the last layer unfrozen (it runs from the cached output of the frozen ones)
    and without the cache, the probe sees the pretrained network's features."""
    X, y, _, _ = questions
    features, _ = question_features
    pipeline = LogisticRegression().fit(features, y)
    scale = np.abs(pipeline.coef_).max()
    for cache_size in (2048, 0):
        clf = FineTunedClassifier(
            MODEL, n_frozen=-1, max_epochs=1, cache_size=cache_size, callbacks=[HeadAtStart()]
        ).fit(X, y)
        assert clf.n_cached_stages_ == (6 if cache_size else 0)
        np.testing.assert_allclose(_start(clf)[0], pipeline.coef_, atol=1e-3 * scale)


# --- the probe on images: binary, weights, augmentation -----------------------------------------
@pytest.fixture(scope="module")
def photo_features(crops):
    X, _ = crops
    return PretrainedFeatureExtractor(image_size=64).fit(X).transform(X).astype(np.float64)


def test_binary_probe_is_the_logistic_regression_with_sample_and_class_weights(
    crops, photo_features
):
    X, y = crops
    weights = np.resize([1.0, 2.0, 0.5], len(y))
    clf = FineTunedClassifier(
        max_epochs=1, class_weight={"china": 3.0, "flower": 1.0}, callbacks=[HeadAtStart()],
        **IMAGES,
    ).fit(X, y, sample_weight=weights)  # fmt: skip
    model = LogisticRegression(max_iter=1000, class_weight={"china": 3.0, "flower": 1.0})
    model.fit(photo_features, y, sample_weight=weights)
    weight, bias = _start(clf)
    # two logits whose difference is the logistic regression's one
    np.testing.assert_allclose(weight[1] - weight[0], model.coef_[0], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(weight[0], -weight[1])
    np.testing.assert_allclose(bias[1] - bias[0], model.intercept_[0], rtol=1e-3, atol=1e-5)
    unweighted = FineTunedClassifier(max_epochs=1, callbacks=[HeadAtStart()], **IMAGES).fit(X, y)
    assert not np.allclose(_start(unweighted)[0], weight, rtol=1e-2)


def test_integer_sample_weights_start_the_head_as_repeated_rows(crops):
    X, y = crops
    X, y = X[::2], y[::2]
    counts = np.resize([1, 2, 3], len(y))
    params = {**IMAGES, "n_frozen": "all", "max_epochs": 1, "callbacks": [HeadAtStart()]}
    weighted = FineTunedClassifier(**params).fit(X, y, sample_weight=counts)
    repeated = FineTunedClassifier(**params).fit(np.repeat(X, counts, 0), np.repeat(y, counts))
    for a, b in zip(_start(weighted), _start(repeated), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_augmented_training_is_probed_on_unaugmented_images(crops):
    X, y = crops
    params = {**IMAGES, "max_epochs": 1}
    cached = FineTunedClassifier(callbacks=[HeadAtStart()], **params).fit(X, y)
    augmented = FineTunedClassifier(augment="default", callbacks=[HeadAtStart()], **params)
    augmented.fit(X, y)
    assert augmented.n_cached_stages_ == 0
    for a, b in zip(_start(cached), _start(augmented), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


class _OwnStart(Callback):
    def on_train_begin(self, net, **kwargs):
        self.weight = net.module_.head.linear.weight.detach().clone()


class _Scaled(nn.Module):
    """A head that is not a Sequential: the probe leaves its start alone."""

    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs)
        nn.init.constant_(self.linear.weight, 0.5)

    def forward(self, x):
        return self.linear(x) * 2


def test_zeros_and_heads_the_probe_cannot_start(crops):
    X, y = crops
    zeros = FineTunedClassifier(
        head_init="zeros", max_epochs=1, callbacks=[HeadAtStart()], **IMAGES
    )
    weight, bias = _start(zeros.fit(X, y))
    assert not weight.any() and not bias.any()
    own = FineTunedClassifier(head=_Scaled, max_epochs=1, callbacks=[_OwnStart()], **IMAGES)
    (start,) = [cb for _, cb in own.fit(X, y).net_.callbacks_ if isinstance(cb, _OwnStart)]
    assert torch.all(start.weight == 0.5)
    mlp = FineTunedClassifier(head=16, max_epochs=1, callbacks=[HeadAtStart()], **IMAGES)
    assert np.abs(_start(mlp.fit(X, y))[0]).max() > 0  # fitted on the hidden layer's output


@pytest.mark.parametrize(
    "params, match",
    [({"head_init": "random"}, "'head_init' parameter"), ({"max_epochs": "all"}, "max_epochs")],
)
def test_bad_recipe_parameters_are_named(crops, params, match):
    X, y = crops
    with pytest.raises(ValueError, match=match):
        FineTunedClassifier(**params, **IMAGES).fit(X, y)


# --- other targets ------------------------------------------------------------------------------
def test_the_regressor_s_probe_is_ridge_cv_of_the_standardised_targets(crops, photo_features):
    X, _ = crops
    brightness = X.mean(axis=(1, 2, 3))  # a real-valued property of each photo crop
    targets = np.column_stack([brightness, X[..., 0].mean(axis=(1, 2))])
    reg = FineTunedRegressor(
        n_frozen="all", max_epochs=1, callbacks=[HeadAtStart()], **IMAGES
    ).fit(X, 100 * targets + 7)
    standardised = (targets - targets.mean(0)) / targets.std(0)
    ridge = RidgeCV(alphas=PROBE_ALPHAS).fit(photo_features, standardised)
    weight, bias = _start(reg)
    np.testing.assert_allclose(
        weight, ridge.coef_, rtol=1e-3, atol=1e-3 * np.abs(ridge.coef_).max()
    )
    np.testing.assert_allclose(bias, ridge.intercept_, atol=1e-4)


def test_the_regressor_s_penalty_counts_integer_weights_as_repeated_rows(photo_features):
    """RidgeCV's leave-one-out would leave out every copy of a row; the probe leaves one."""
    y = photo_features[:, :5].sum(axis=1)  # a target the features hold
    weights = np.resize([1, 3, 2], len(y))
    repeated = _loo_alpha(
        np.repeat(photo_features, weights, 0), np.repeat(y, weights), np.ones(weights.sum())
    )
    assert _loo_alpha(photo_features, y, weights.astype(float)) == repeated
    # with every weight 1 it is RidgeCV's own choice
    assert (
        _loo_alpha(photo_features, y, np.ones(len(y)))
        == RidgeCV(alphas=PROBE_ALPHAS).fit(photo_features, y).alpha_
    )


def test_the_regressor_s_head_alone_stays_the_ridge_it_starts_as(crops, photo_features):
    """With the probe's penalty kept, training the head alone does not leave the ridge."""
    X, _ = crops
    y = X[..., 2].mean(axis=(1, 2)) - X[..., 0].mean(axis=(1, 2))  # blue over red
    train, test = slice(0, 16), slice(16, None)
    reg = FineTunedRegressor(n_frozen="all", **IMAGES).fit(X[train], y[train])
    assert len(reg.history_) > 10  # the step budget trained it, for many epochs
    ridge = RidgeCV(alphas=PROBE_ALPHAS).fit(photo_features[train], y[train])
    expected = ridge.predict(photo_features[test])
    np.testing.assert_allclose(reg.predict(X[test]), expected, atol=0.02 * np.ptp(y))


def test_multi_label_probe_is_one_logistic_regression_per_label(crops, photo_features):
    X, y = crops
    # two labels: the photo, and a label that holds for a third of the crops
    Y = np.column_stack([y == "china", np.arange(len(y)) % 3 == 0]).astype(int)
    clf = FineTunedClassifier(
        max_epochs=1, class_weight="balanced", callbacks=[HeadAtStart()], **IMAGES
    ).fit(X, Y)
    weight, bias = _start(clf)
    for label in range(2):
        positives = Y[:, label].sum()
        balanced = {0: 1.0, 1: (len(Y) - positives) / positives}  # the loss's pos_weight
        model = LogisticRegression(max_iter=1000, class_weight=balanced)
        model.fit(photo_features, Y[:, label])
        np.testing.assert_allclose(weight[label], model.coef_[0], rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(bias[label], model.intercept_[0], rtol=1e-3, atol=1e-5)


# --- the training budget ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "max_epochs, n_rows, batch_size, expected",
    [("auto", 32, 32, 100), ("auto", 40, 32, 50), ("auto", 12, 8, 50), ("auto", 330, 32, 10),
     ("auto", 5000, 32, 10), (3, 32, 32, 3)],
)  # fmt: skip
def test_auto_epochs_make_at_least_the_minimum_number_of_steps(
    max_epochs, n_rows, batch_size, expected
):
    assert training_epochs(max_epochs, n_rows, batch_size) == expected


class _Steps(Callback):
    def initialize(self):
        self.steps = 0
        return self

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        self.steps += training


def test_auto_epochs_count_the_training_rows_after_the_hold_out(crops, tmp_path):
    X, y = crops  # 24 crops; early stopping holds out 6: 18 rows, 3 batches of 8 an epoch
    clf = FineTunedClassifier(
        early_stopping=True, validation_fraction=0.25, n_iter_no_change=1000,
        callbacks=[_Steps()], **IMAGES,
    ).fit(X, y)  # fmt: skip
    (steps,) = [cb for _, cb in clf.net_.callbacks_ if isinstance(cb, _Steps)]
    assert len(clf.history_) == 34 and steps.steps == 102  # ceil(100 / 3) epochs
    # the new parameters' values travel in the safe format
    sktransfer.save(clf, tmp_path / "model.skt")
    loaded = sktransfer.load(tmp_path / "model.skt")
    assert loaded.get_params()["max_epochs"] == "auto" and loaded.head_init == "probe"
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


# --- learning-rate schedules and label smoothing ------------------------------------------------
class _Rates(Callback):
    """Record every parameter group's learning rate (and Adam's beta1) at each step."""

    def initialize(self):
        self.rates, self.betas = [], []
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            groups = net.optimizer_.param_groups
            self.rates.append(sorted(group["lr"] for group in groups))
            self.betas.append(groups[-1]["betas"][0])


def _rates(schedule, crops, epochs):
    X, y = crops  # 24 crops in batches of 8: 3 steps an epoch
    clf = FineTunedClassifier(
        n_frozen=-1, lr=1e-2, backbone_lr=1e-3, lr_schedule=schedule, max_epochs=epochs,
        callbacks=[_Rates()], **IMAGES,
    ).fit(X, y)  # fmt: skip
    (rates,) = [cb for _, cb in clf.net_.callbacks_ if isinstance(cb, _Rates)]
    return np.array(rates.rates), np.array(rates.betas)


def test_warmup_cosine_sets_each_step_s_rate(crops):
    rates, _ = _rates("warmup_cosine", crops, epochs=7)
    # 21 steps: a warm-up of round(0.1 * 21) = 2 steps from 0, then a cosine to 0
    factor = [step / 2 if step < 2 else (1 + np.cos(np.pi * (step - 2) / 19)) / 2
              for step in range(21)]  # fmt: skip
    np.testing.assert_allclose(rates, np.outer(factor, [1e-3, 1e-2]), rtol=1e-6, atol=1e-12)
    assert rates[2].tolist() == [1e-3, 1e-2] and rates[-1, 1] < 1e-4


def test_one_cycle_is_torch_s_one_cycle_for_each_group(crops):
    rates, betas = _rates("one_cycle", crops, epochs=4)
    parameter = torch.zeros(1, requires_grad=True)
    reference = torch.optim.AdamW([parameter], lr=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(reference, max_lr=1e-2, total_steps=12)
    expected, expected_betas = [], []
    for _ in range(12):
        expected.append(reference.param_groups[0]["lr"])
        expected_betas.append(reference.param_groups[0]["betas"][0])
        reference.step()
        schedule.step()
    np.testing.assert_allclose(rates[:, 1], expected, rtol=1e-6)
    np.testing.assert_allclose(rates[:, 0], np.array(expected) / 10, rtol=1e-6)
    np.testing.assert_allclose(betas, expected_betas)
    assert rates[0, 1] == pytest.approx(1e-2 / 25) and rates[:, 1].max() <= 1e-2


@pytest.mark.parametrize("multi_label", [False, True])
def test_label_smoothing_caps_the_confidence_on_the_training_inputs(crops, multi_label):
    X, y = crops
    if multi_label:
        y = np.column_stack([y == "china", y == "flower"]).astype(int)
    params = {**IMAGES, "batch_size": 32, "max_epochs": 60}
    sharp = FineTunedClassifier(**params).fit(X, y).predict_proba(X).max(axis=1)
    smooth = FineTunedClassifier(label_smoothing=0.3, **params).fit(X, y).predict_proba(X)
    # the smoothed targets' best probabilities: 1 - 0.3 + 0.3 / 2 = 0.85 for the class,
    # 1 - 0.3 / 2 = 0.85 for a label that is there
    assert sharp.mean() > 0.99
    assert smooth.max(axis=1).mean() == pytest.approx(0.85, abs=0.02)
    assert smooth.max() < 0.9


def test_recipe_parameters_are_validated(crops):
    X, y = crops
    with pytest.raises(ValueError, match="'label_smoothing' parameter"):
        FineTunedClassifier(label_smoothing=1.0, **IMAGES).fit(X, y)
    with pytest.raises(ValueError, match="'lr_schedule' parameter"):
        FineTunedClassifier(lr_schedule="cosine", **IMAGES).fit(X, y)
    assert "label_smoothing" not in FineTunedRegressor().get_params()
