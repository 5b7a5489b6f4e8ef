"""n_frozen="auto": how many layer groups stay frozen, chosen by successive halving."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

import sktransfer
from sktransfer import FineTunedClassifier, FineTunedRegressor
from sktransfer._fine_tuning import _auto

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


def test_every_candidate_runs_in_rung_0_and_the_better_half_goes_on(searched):
    results = pd.DataFrame(searched.recipe_results_)
    first, second = (results[results["rung"] == r] for r in (0, 1))
    assert first["candidate"].tolist() == ["all", -1, -2, -3]
    assert set(results["rung"]) == {0, 1}
    # the last rung trains the refit's epochs, the one before half as many
    assert first["epochs"].unique().tolist() == [1] and second["epochs"].unique().tolist() == [2]
    ranked = first.sort_values("validation_score", ascending=False, kind="stable")
    assert sorted(second["candidate"], key=str) == sorted(ranked["candidate"][:2], key=str)
    assert results["validation_score"].between(0, 1).all() and (results["seconds"] > 0).all()
    # the winner has the best score of the last rung (ties to the more frozen)
    best = second.loc[second["validation_score"].idxmax(), "candidate"]
    assert searched.best_recipe_ == {"n_frozen": best}


def test_the_refit_freezes_the_chosen_groups(searched, crops):
    chosen = searched.best_recipe_["n_frozen"]
    assert searched.n_frozen_ == _resolved(searched, chosen)
    assert searched.n_frozen == "auto"  # the parameter is left as given
    assert searched.score(*crops) > 0.8


# by (candidate, epochs): rung 0's leader (-3) loses the last rung, which trains the longest
LEADER_LOSES = {
    **{("all", 1): 0.5, (-1, 1): 0.6, (-2, 1): 0.8, (-3, 1): 0.9},
    **{(-2, 2): 0.9, (-3, 2): 0.7},
}


@pytest.mark.parametrize(
    ("scores", "winner"),
    [
        ({"all": 0.5, -1: 0.6, -2: 0.9, -3: 0.7}, -2),
        (LEADER_LOSES, -2),
        ({"all": 0.9, -1: 0.9, -2: 0.9, -3: 0.9}, "all"),  # ties: the cheaper
    ],
)
def test_the_best_candidate_wins_and_is_refitted(crops, monkeypatch, scores, winner):
    def fake(estimator, n_frozen, epochs, train, valid):
        return scores.get((n_frozen, epochs), scores.get(n_frozen)), 0.0

    monkeypatch.setattr(_auto, "_fit_and_score", fake)
    X, y = crops
    reg = FineTunedRegressor(n_frozen="auto", **FAST).fit(X, (y == "flower").astype(float))
    assert reg.best_recipe_ == {"n_frozen": winner}
    assert reg.n_frozen_ == _resolved(reg, winner)
    assert len(reg.recipe_results_["candidate"]) == 4 + 2


def test_a_regressor_searches_by_r2(crops):
    X, _ = crops
    brightness = X.mean(axis=(1, 2, 3))
    params = FAST | {"max_epochs": 1}
    reg = FineTunedRegressor(n_frozen="auto", **params).fit(X, brightness)
    results = reg.recipe_results_
    assert results["epochs"] == [1] * 6  # at least an epoch a rung
    assert all(np.isfinite(results["validation_score"]))
    assert max(results["validation_score"]) <= 1.0
    assert reg.n_frozen_ == _resolved(reg, reg.best_recipe_["n_frozen"])


@pytest.mark.parametrize(
    ("rows", "fraction"),
    [(slice(None, None, 3), 0.25), (slice(None), 0.1)],  # 8 inputs; 3 validation rows
)
def test_too_little_data_trains_the_head_alone_and_says_why(crops, rows, fraction):
    X, y = crops[0][rows], crops[1][rows]
    clf = FineTunedClassifier(n_frozen="auto", **FAST | {"validation_fraction": fraction})
    with pytest.warns(UserWarning, match="validation_fraction"):
        clf.fit(X, y)
    assert clf.best_recipe_ == {"n_frozen": "all"}
    assert clf.n_frozen_ == clf.n_layer_groups_
    assert clf.recipe_results_["candidate"] == ["all"]
    assert "too few" in clf.recipe_results_["note"][0]


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
    with pytest.raises(ValueError, match="find_lr tests one recipe"):
        FineTunedClassifier(n_frozen="auto", **FAST).find_lr(X, y, num_it=2)


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


@pytest.mark.slow  # about 20 s on two CPU cores: seven fits of MiniLM
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
    assert pd.DataFrame(clf.recipe_results_).groupby("rung").size().tolist() == [4, 2]
    assert clf.n_frozen_ == _resolved(clf, clf.best_recipe_["n_frozen"])
    assert clf.predict(TEXTS[:2]).shape == (2,)
