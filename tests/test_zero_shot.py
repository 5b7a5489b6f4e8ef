"""Zero-shot text classification from class names, and with a few labelled texts."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

import sktransfer
from sktransfer import ZeroShotTextClassifier
from sktransfer._zero_shot import MIN_TEMPERATURE, _fit_temperature, _normalise

TOPICS = {
    "sports": [
        "The striker scored twice in the second half.",
        "She won the marathon in record time.",
        "The coach was sacked after five straight defeats.",
        "Tickets for the cup final sold out in an hour.",
    ],
    "cooking": [
        "Simmer the tomato sauce for twenty minutes.",
        "Knead the dough until it is smooth and elastic.",
        "Season the soup with salt and a little pepper.",
        "Roast the vegetables in a hot oven until golden.",
    ],
    "finance": [
        "The central bank raised interest rates again.",
        "Shares fell sharply after the earnings report.",
        "Investors moved their savings into government bonds.",
        "The company reported a quarterly loss of two million dollars.",
    ],
}
X = [text for texts in TOPICS.values() for text in texts]
Y = np.repeat(list(TOPICS), 4)


@pytest.fixture(scope="module")
def zero_shot():
    return ZeroShotTextClassifier(labels=list(TOPICS)).fit()


def test_classes_from_their_names_alone(zero_shot):
    assert zero_shot.classes_.tolist() == ["cooking", "finance", "sports"]
    assert (zero_shot.predict(X) == Y).mean() >= 10 / 12  # chance: 1/3
    proba = zero_shot.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)
    np.testing.assert_array_equal(zero_shot.classes_[proba.argmax(1)], zero_shot.predict(X))
    scores = zero_shot.decision_function(X)
    assert scores.shape == (12, 3) and np.all(np.abs(scores) <= 1 + 1e-6)
    assert zero_shot.temperature_ == 0.05 and zero_shot.n_examples_.tolist() == [0, 0, 0]


def test_descriptions_replace_the_template_and_average():
    labels = {
        "sports": ["a sentence about sport", "a match, a race or a team"],
        "cooking": "a recipe: how to cook food",
        "finance": "money, banks and markets",
    }
    clf = ZeroShotTextClassifier(labels=labels).fit()
    assert (clf.predict(X) == Y).mean() >= 10 / 12
    one = ZeroShotTextClassifier(labels={**labels, "sports": "a sentence about sport"}).fit()
    assert not np.allclose(one.prototypes_, clf.prototypes_)  # both sports texts count


def test_labelled_texts_join_the_prototypes_and_fit_the_temperature(zero_shot):
    train = np.r_[0:2, 4:6, 8:10]
    clf = ZeroShotTextClassifier(labels=list(TOPICS)).fit([X[i] for i in train], Y[train])
    assert clf.n_examples_.tolist() == [2, 2, 2]
    assert not np.allclose(clf.prototypes_, zero_shot.prototypes_)
    np.testing.assert_allclose(np.linalg.norm(clf.prototypes_, axis=1), 1, rtol=1e-6)
    assert clf.temperature_ != 0.05 and clf.temperature_ >= MIN_TEMPERATURE
    test = np.setdiff1d(np.arange(12), train)
    assert (clf.predict([X[i] for i in test]) == Y[test]).mean() >= 5 / 6


def test_the_temperature_minimises_the_leave_one_out_log_loss():
    rng = np.random.default_rng(0)
    rows = _normalise(rng.normal(size=(30, 8)))
    codes = rng.integers(0, 3, 30)
    rows[np.arange(30), codes] += 1.5  # informative, not separable
    rows = _normalise(rows)
    sums = np.zeros((3, 8))
    np.add.at(sums, codes, rows)
    fitted = _fit_temperature(rows, codes, sums)

    def loss(t):
        scores = rows @ _normalise(sums).T
        own = _normalise(sums[codes] - rows)
        scores[np.arange(30), codes] = (rows * own).sum(1)
        logits = scores / t
        logits -= logits.max(1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        return -log_p[np.arange(30), codes].mean()

    grid = np.exp(np.linspace(np.log(MIN_TEMPERATURE), np.log(10), 2000))
    best = grid[np.argmin([loss(t) for t in grid])]
    assert fitted == pytest.approx(best, rel=0.02)
    assert loss(fitted) <= min(loss(t) for t in grid) + 1e-6


def test_classes_come_from_y_when_labels_are_not_given():
    y = np.array([3, 3, 7, 7])
    clf = ZeroShotTextClassifier(template="A question about number {}.").fit(X[:4], y)
    assert clf.classes_.tolist() == [3, 7] and clf.classes_.dtype.kind == "i"
    assert set(clf.predict(X[:4])) <= {3, 7}


@pytest.mark.parametrize(
    ("params", "fit_args", "message"),
    [
        ({"labels": ["sports", "cooking"]}, (X[:2], ["sports", "chess"]), "does not name: chess"),
        ({"labels": ["sports", "cooking"]}, (X[:2], None), "Give both X and y"),
        ({"labels": ["sports"]}, (), "at least 2 classes"),
        ({"labels": ["a", "a"]}, (), "must not repeat a class"),
        ({"labels": ["a", "b"], "template": "no slot"}, (), "template must contain"),
        ({"labels": {"a": "", "b": "bee"}}, (), "Class 'a' needs a non-empty description"),
        ({}, (), "labels=None takes the classes from y"),
    ],
)
def test_bad_arguments_are_named(params, fit_args, message):
    with pytest.raises(ValueError, match=message):
        ZeroShotTextClassifier(**params).fit(*fit_args)


def test_scikit_learn_conventions(zero_shot, tmp_path):
    with pytest.raises(NotFittedError):
        ZeroShotTextClassifier(labels=["a", "b"]).predict(X)
    assert clone(zero_shot).get_params() == zero_shot.get_params()
    expected = zero_shot.predict_proba(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(zero_shot)).predict_proba(X), expected)
    sktransfer.save(zero_shot, tmp_path / "zero_shot.skt")
    loaded = sktransfer.load(tmp_path / "zero_shot.skt")
    np.testing.assert_allclose(loaded.predict_proba(X), expected, rtol=1e-5)
    assert loaded.classes_.tolist() == zero_shot.classes_.tolist()
    search = GridSearchCV(
        ZeroShotTextClassifier(labels=list(TOPICS)),
        {"template": ["This text is about {}.", "{}"]},
        cv=2,
    ).fit(X, Y)
    assert search.best_params_["template"] in ("This text is about {}.", "{}")
    assert search.best_score_ >= 0.75
