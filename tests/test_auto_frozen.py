"""n_frozen="auto": how many layer groups stay frozen, chosen by climbing from the head alone."""

import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

import sktransfer
from sktransfer import FineTunedClassifier, FineTunedRegressor
from sktransfer._fine_tuning import _auto
from sktransfer._fine_tuning._tasks import MultiLabel, SingleLabel

import _questions

# 24 crops with a quarter held out: 6 validation rows, 3 per class
FAST = {
    "image_size": 32,
    "batch_size": 8,
    "max_epochs": 2,
    "validation_fraction": 0.25,
    "random_state": 0,
}


def _resolved(estimator, value):
    """``n_frozen`` as an integer, as ``n_frozen_`` holds it."""
    n_groups = estimator.n_layer_groups_
    return n_groups if value == "all" else n_groups + value


@pytest.fixture(scope="module")
def searched(crops):
    X, y = crops
    return FineTunedClassifier(n_frozen="auto", **FAST).fit(X, y)


def test_the_climb_unfreezes_a_group_while_the_held_out_score_rises(searched):
    results = pd.DataFrame(searched.recipe_results_)
    n = len(results)
    assert results["candidate"].tolist() == list(_auto.CANDIDATES[:n])
    assert results["rung"].tolist() == list(range(n))
    assert results["epochs"].unique().tolist() == [2]  # every candidate the fit's epochs
    # minus the held-out log-loss: at most 0, and above the -log(2) of a coin's guesses
    assert results["validation_score"].between(-np.log(2), 0).any()
    assert (results["validation_score"] <= 0).all() and (results["seconds"] > 0).all()
    scores = results["validation_score"].to_numpy()
    rising = n if n == len(_auto.CANDIDATES) and np.all(np.diff(scores) > 0) else n - 1
    assert np.all(np.diff(scores[:rising]) > 0)  # each step it went on raised the score
    if rising < n:  # the last candidate tried did not, and ended the climb
        assert scores[-1] <= scores[:-1].max() and "climb ends" in results["note"].iloc[-1]
    assert searched.best_recipe_ == {"n_frozen": results["candidate"].iloc[rising - 1]}


def test_the_refit_freezes_the_chosen_groups(searched, crops):
    chosen = searched.best_recipe_["n_frozen"]
    assert searched.n_frozen_ == _resolved(searched, chosen)
    assert searched.n_frozen == "auto"  # the parameter is left as given
    assert searched.score(*crops) > 0.8


@pytest.mark.parametrize(
    ("scores", "winner", "tried"),
    [
        ({"all": 0.5, -1: 0.6, -2: 0.9, -3: 0.7}, -2, 4),
        ({"all": 0.5, -1: 0.6, -2: 0.7, -3: 0.8}, -3, 4),  # the top of the ladder
        ({"all": 0.5, -1: 0.4, -2: 0.9, -3: 1.0}, "all", 2),  # behind a step down: untried
        ({"all": 0.9, -1: 0.9, -2: 0.9, -3: 0.9}, "all", 2),  # a tie: the more frozen
        ({"all": np.nan, -1: np.nan, -2: 0.9, -3: 0.9}, "all", 1),  # no score: the head
    ],
)
def test_the_best_candidate_wins_and_is_refitted(crops, monkeypatch, scores, winner, tried):
    seen = []

    def fake(estimator, n_frozen, epochs, train, valid):
        seen.append(n_frozen)
        return scores[n_frozen], 0.0

    monkeypatch.setattr(_auto, "_fit_and_score", fake)
    X, y = crops
    reg = FineTunedRegressor(n_frozen="auto", **FAST).fit(X, (y == "flower").astype(float))
    assert reg.best_recipe_ == {"n_frozen": winner}
    assert reg.n_frozen_ == _resolved(reg, winner)
    assert seen == list(_auto.CANDIDATES[:tried]) == reg.recipe_results_["candidate"]
    if tried < len(_auto.CANDIDATES):  # the last one tried says why the climb ended
        assert reg.recipe_results_["note"][-1].endswith("the climb ends")


def _answers(proba, task, classes=("no", "yes")):
    """A fitted classifier as held_out_score sees it, answering ``proba`` whatever X."""
    return SimpleNamespace(
        predict_proba=lambda X: np.asarray(proba), classes_=np.array(classes), _task=task
    )


def test_the_held_out_score_tells_apart_candidates_whose_accuracy_ties():
    y = ["yes", "no", "yes", "no"]
    sure = _answers([[0.1, 0.9], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1]], SingleLabel())
    unsure = _answers([[0.4, 0.6], [0.6, 0.4], [0.4, 0.6], [0.6, 0.4]], SingleLabel())
    # both right on every row; the score is minus the mean log-probability of the answer
    assert _auto.held_out_score(sure, None, y) == pytest.approx(np.log(0.9))
    assert _auto.held_out_score(unsure, None, y) == pytest.approx(np.log(0.6))
    # a row's weight counts as that many copies of it
    wrong_once = _answers([[0.1, 0.9], [0.9, 0.1], [0.1, 0.9], [0.2, 0.8]], SingleLabel())
    weighted = _auto.held_out_score(wrong_once, None, y, sample_weight=[1, 1, 1, 3])
    assert weighted == pytest.approx((3 * np.log(0.9) + 3 * np.log(0.2)) / 6)


def test_a_multi_label_held_out_score_averages_each_labels_cross_entropy():
    y = np.array([[1, 0], [0, 0]])
    task = MultiLabel()
    guesses = _answers([[0.5, 0.5], [0.5, 0.5]], task, classes=(0, 1))
    assert _auto.held_out_score(guesses, None, y) == pytest.approx(-np.log(2))
    right = _answers([[0.9, 0.2], [0.1, 0.2]], task, classes=(0, 1))
    expected = (2 * np.log(0.9) + 2 * np.log(0.8)) / 4
    assert _auto.held_out_score(right, None, y) == pytest.approx(expected)
    certain_and_wrong = _answers([[0.0, 1.0], [0.0, 0.0]], task, classes=(0, 1))
    assert np.isfinite(_auto.held_out_score(certain_and_wrong, None, y))  # clipped, finite


def test_on_few_questions_the_climb_unfreezes_where_the_head_alone_falls_short():
    """Two held-out questions per class, where accuracies tie: the log-loss still climbs.

    About 20 s on two CPU cores: five fits of MiniLM on 40 questions.
    """
    X, y, X_test, y_test = _questions.questions()
    params = {"batch_size": 8, "random_state": 0}
    clf = FineTunedClassifier("all-MiniLM-L6-v2", n_frozen="auto", **params).fit(X, y)
    results = pd.DataFrame(clf.recipe_results_)
    assert clf.best_recipe_["n_frozen"] != "all" and len(results) >= 3
    chosen = results["candidate"].tolist().index(clf.best_recipe_["n_frozen"])
    assert np.all(np.diff(results["validation_score"][: chosen + 1]) > 0)
    head = FineTunedClassifier("all-MiniLM-L6-v2", n_frozen="all", **params).fit(X, y)
    assert clf.score(X_test, y_test) >= head.score(X_test, y_test) + 5 / 60


def test_a_regressor_searches_by_r2(crops):
    X, _ = crops
    brightness = X.mean(axis=(1, 2, 3))
    params = FAST | {"max_epochs": 1}
    reg = FineTunedRegressor(n_frozen="auto", **params).fit(X, brightness)
    results = reg.recipe_results_
    assert len(results["epochs"]) >= 2 and set(results["epochs"]) == {1}
    assert all(np.isfinite(results["validation_score"]))
    assert max(results["validation_score"]) <= 1.0
    assert reg.n_frozen_ == _resolved(reg, reg.best_recipe_["n_frozen"])


@pytest.mark.parametrize(
    ("rows", "n_classes"),
    [(slice(None, None, 3), 2), (slice(None), 8)],  # 8 inputs; 24 inputs of 8 classes
)
def test_too_little_data_trains_the_head_alone_and_says_why(crops, rows, n_classes):
    X = crops[0][rows]
    y = np.arange(len(X)) % n_classes
    clf = FineTunedClassifier(**FAST)  # "auto", the default
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a default that serves few inputs does not warn
        clf.fit(X, y)
    assert clf.best_recipe_ == {"n_frozen": "all"}
    assert clf.n_frozen_ == clf.n_layer_groups_
    assert clf.recipe_results_["candidate"] == ["all"]
    assert "too few" in clf.recipe_results_["note"][0]


def test_the_held_out_part_has_two_rows_per_class_whatever_the_fraction():
    codes = np.repeat(np.arange(10), 10)  # 100 inputs of 10 classes; 0.1 would hold out 10
    split, _ = _auto._split(codes, SimpleNamespace(stratified=True), 0.1, 0)
    train, valid = split
    assert np.bincount(codes[valid]).tolist() == [2] * 10
    assert sorted(np.r_[train, valid]) == list(range(100))
    split, _ = _auto._split(codes, SimpleNamespace(stratified=True), 0.3, 0)
    assert len(split[1]) == 30  # a larger fraction is kept
    split, why = _auto._split(np.repeat(np.arange(6), 2), SimpleNamespace(stratified=True), 0.1, 0)
    assert split is None and "at most half" in why  # 6 classes of 2 would need all 12
    split, _ = _auto._split(np.zeros(40), SimpleNamespace(stratified=False), 0.1, 0)
    assert len(split[1]) == 10  # a regressor's: 4 would be its fraction, too few for an R²
    split, _ = _auto._split(np.zeros(200), SimpleNamespace(stratified=False), 0.1, 0)
    assert len(split[1]) == 20  # its fraction, once that is more
    split, why = _auto._split(np.zeros(19), SimpleNamespace(stratified=False), 0.1, 0)
    assert split is None and "10 held-out rows" in why


def test_an_explicit_n_frozen_is_one_unscored_row(crops, tmp_path):
    X, y = crops
    clf = FineTunedClassifier(n_frozen=-1, **FAST | {"max_epochs": 1}).fit(X, y)
    assert clf.best_recipe_ == {"n_frozen": -1}
    assert clf.recipe_results_["candidate"] == [-1]
    assert clf.recipe_results_["note"] == ["given"]
    assert np.isnan(clf.recipe_results_["validation_score"][0])
    sktransfer.save(clf, tmp_path / "given.skt")  # written as JSON's null, read back as NaN
    loaded = sktransfer.load(tmp_path / "given.skt")
    assert loaded.best_recipe_ == {"n_frozen": -1}
    assert np.isnan(loaded.recipe_results_["seconds"][0])


def test_save_and_load_keep_the_choice_without_searching(searched, crops, tmp_path, monkeypatch):
    sktransfer.save(searched, tmp_path / "auto.skt")

    def no_search(*args):
        raise AssertionError("loading searched again")

    monkeypatch.setattr(_auto, "_fit_and_score", no_search)
    loaded = sktransfer.load(tmp_path / "auto.skt")
    assert loaded.n_frozen == "auto" and loaded.n_frozen_ == searched.n_frozen_
    assert loaded.best_recipe_ == searched.best_recipe_
    pd.testing.assert_frame_equal(
        pd.DataFrame(loaded.recipe_results_), pd.DataFrame(searched.recipe_results_)
    )
    np.testing.assert_allclose(
        loaded.predict_proba(crops[0]), searched.predict_proba(crops[0]), rtol=1e-5, atol=1e-6
    )


def test_clone_keeps_auto_and_an_explicit_value_means_what_it_says(searched, crops):
    copy = clone(searched)
    assert copy.get_params()["n_frozen"] == "auto" and not hasattr(copy, "n_frozen_")
    X, y = crops
    grid = GridSearchCV(
        FineTunedClassifier(**FAST | {"max_epochs": 1}), {"n_frozen": ["all", -1]}, cv=2
    ).fit(X, y)
    best = grid.best_estimator_
    assert best.best_recipe_ == {"n_frozen": grid.best_params_["n_frozen"]}
    assert best.recipe_results_["note"] == ["given"]


def test_bad_values_are_refused(crops):
    X, y = crops
    with pytest.raises(InvalidParameterError, match="auto"):
        FineTunedClassifier(n_frozen="some", **FAST).fit(X, y)


def test_the_range_test_of_auto_is_that_of_the_head_alone(crops):
    X, y = crops
    found = FineTunedClassifier(**FAST).find_lr(X, y, num_it=6)  # "auto", the default
    head = FineTunedClassifier(n_frozen="all", **FAST).find_lr(X, y, num_it=6)
    np.testing.assert_allclose(found.rates, head.rates)
    np.testing.assert_allclose(found.losses, head.losses, rtol=1e-5)
    unfrozen = FineTunedClassifier(n_frozen=-1, **FAST).find_lr(X, y, num_it=6)
    assert not np.allclose(found.losses, unfrozen.losses, rtol=1e-5)


TEXTS = [
    "The striker scored twice in the second half.",
    "She won the marathon in record time.",
    "The coach was sacked after five straight defeats.",
    "Tickets for the cup final sold out in an hour.",
    "The goalkeeper saved a penalty in extra time.",
    "Our team climbed to third place in the league.",
    "Simmer the tomato sauce for twenty minutes.",
    "Knead the dough until it is smooth and elastic.",
    "Season the soup with salt and a little pepper.",
    "Roast the vegetables in a hot oven until golden.",
    "Whisk the eggs with sugar until pale.",
    "Fry the onions slowly in butter.",
]


@pytest.mark.slow  # about 15 s on two CPU cores: up to five fits of MiniLM
def test_a_text_classifier_searches_too():
    y = np.repeat(["sports", "cooking"], 6)
    clf = FineTunedClassifier(
        "all-MiniLM-L6-v2",
        n_frozen="auto",
        max_epochs=1,
        batch_size=8,
        max_length=16,
        lr=1e-2,
        backbone_lr=5e-5,
        validation_fraction=1 / 3,
        random_state=0,
    ).fit(TEXTS, y)
    tried = clf.recipe_results_["candidate"]
    assert len(tried) >= 2 and tried == list(_auto.CANDIDATES[: len(tried)])
    assert clf.n_frozen_ == _resolved(clf, clf.best_recipe_["n_frozen"])
    assert clf.predict(TEXTS[:2]).shape == (2,)
