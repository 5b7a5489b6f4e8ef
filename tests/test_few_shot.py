"""Few-shot text classification: contrastive pairs, linear cost, the head, persistence."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import sktransfer
from sktransfer import FewShotTextClassifier, PretrainedFeatureExtractor, ZeroShotTextClassifier
from sktransfer._few_shot import _pair_targets, length_batches, make_pairs

import _questions

POSITIVE = [
    "A wonderful, moving film with superb acting.",
    "I loved every minute of this charming story.",
    "Brilliant direction and a delightful cast.",
    "One of the best movies I have seen this year.",
    "Funny, warm and beautifully shot.",
    "An absolute joy from start to finish.",
]
NEGATIVE = [
    "A dull, tedious film that goes nowhere.",
    "I hated the wooden acting and the silly plot.",
    "Boring, far too long and badly edited.",
    "One of the worst movies I have seen this year.",
    "A lifeless script and a waste of good actors.",
    "Painfully slow and completely forgettable.",
]
X = POSITIVE + NEGATIVE
Y = np.array([1] * 6 + [0] * 6)
TRAIN = np.r_[0:3, 6:9]
TEST = np.r_[3:6, 9:12]


@pytest.fixture(scope="module")
def fitted():
    clf = FewShotTextClassifier(n_pairs=8, max_epochs=2, random_state=0)
    return clf.fit([X[i] for i in TRAIN], Y[TRAIN])


def test_pairs_are_linear_in_the_data_and_balanced():
    rng = np.random.default_rng(0)
    codes = np.repeat([0, 1, 2], [5, 3, 40])
    first, second, same = make_pairs(codes, 10, rng)
    assert len(first) == 10 * len(codes)  # linear: n_pairs per text
    assert np.all(first != second)  # never a text with itself
    np.testing.assert_array_equal(same, codes[first] == codes[second])
    per_text = np.bincount(first[same], minlength=len(codes))
    assert np.all(per_text == 5)  # half of each text's partners share its class


def test_pairs_of_similar_length_share_a_batch():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 120, size=60)
    first, second, _ = make_pairs(np.repeat([0, 1, 2], 20), 10, rng)
    batches = length_batches(first, second, lengths, 16, np.random.default_rng(1))
    order = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(order), np.arange(len(first)))  # each pair once
    assert max(len(b) for b in batches) == 16
    longer = np.maximum(lengths[first], lengths[second])
    padded = sum(len(b) * longer[b].max() for b in batches)
    shuffled = np.random.default_rng(1).permutation(len(first))
    chunks = [shuffled[i : i + 16] for i in range(0, len(first), 16)]
    random = sum(len(chunk) * longer[chunk].max() for chunk in chunks)
    assert padded < 0.8 * random  # far less padding than batches drawn at random
    assert not np.array_equal(order, np.sort(order))  # the training order stays random


def test_a_lone_class_member_gets_only_negatives():
    first, second, same = make_pairs(np.array([0, 1, 1]), 4, np.random.default_rng(0))
    assert not same[first == 0].any() and (first == 0).sum() == 4


def test_label_sets_pair_by_their_jaccard_similarity():
    y = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]])
    target = _pair_targets(y, np.array([0, 0, 1, 3]), np.array([1, 2, 2, 4]), None)
    np.testing.assert_allclose(target, [0.5, 0.0, 0.0, 1.0])


def test_tuning_moves_the_encoder_and_classifies_held_out_texts(fitted):
    assert fitted.n_pairs_seen_ == 2 * 8 * len(TRAIN)
    assert fitted.loss_curve_[-1] < fitted.loss_curve_[0]
    frozen = PretrainedFeatureExtractor("all-MiniLM-L6-v2").fit(X).transform(X)
    tuned = fitted.embedder_.transform(X)
    assert not np.allclose(frozen, tuned, atol=1e-3)
    assert (fitted.predict([X[i] for i in TEST]) == Y[TEST]).mean() >= 5 / 6
    proba = fitted.predict_proba([X[i] for i in TEST])
    np.testing.assert_allclose(proba.sum(1), 1)
    np.testing.assert_array_equal(fitted.classes_, [0, 1])


def test_tuning_beats_frozen_embeddings_where_they_group_texts_by_topic():
    # 8 questions per kind of answer (person, place, number, ...): frozen embeddings
    # group them by topic, tuning on pairs by the answer they ask for
    X, y, X_test, y_test = _questions.questions()
    frozen = make_pipeline(
        PretrainedFeatureExtractor("all-MiniLM-L6-v2"), LogisticRegression(max_iter=1000)
    )
    baseline = frozen.fit(X, y).score(X_test, y_test)
    clf = FewShotTextClassifier(n_pairs=10, random_state=0).fit(X, y)
    assert clf.n_pairs_seen_ == 10 * len(X)
    # 0.78 against 0.90 to 0.92 over seeds 0-2 (0.98 with the default 40 pairs)
    assert clf.score(X_test, y_test) >= baseline + 5 / 60  # five more of 60 test questions


def test_no_epoch_leaves_the_encoder_as_it_was():
    clf = FewShotTextClassifier(max_epochs=0).fit(X, Y)
    frozen = PretrainedFeatureExtractor("all-MiniLM-L6-v2").fit(X).transform(X)
    np.testing.assert_allclose(clf.embedder_.transform(X), frozen, atol=1e-5)
    assert clf.n_pairs_seen_ == 0


def test_sample_weight_reaches_the_head():
    weights = np.linspace(0.2, 2, len(X))
    clf = FewShotTextClassifier(max_epochs=0).fit(X, Y, sample_weight=weights)
    direct = LogisticRegression(max_iter=1000).fit(
        clf.embedder_.transform(X), Y, sample_weight=weights
    )
    np.testing.assert_allclose(clf.head_.coef_, direct.coef_, rtol=1e-4)


def test_multi_label_targets(tmp_path):
    y = np.c_[Y, np.r_[np.ones(3), np.zeros(6), np.ones(3)]].astype(int)
    clf = FewShotTextClassifier(n_pairs=2, random_state=0).fit(X, y)
    assert clf.predict(X).shape == (12, 2)
    assert len(clf.predict_proba(X)) == 2
    with pytest.raises(TypeError, match="fitted on one label per text"):
        sktransfer.save(clf, tmp_path / "m.skt")
    assert not (tmp_path / "m.skt").exists()
    with pytest.raises(ValueError, match="needs at least 2"):
        FewShotTextClassifier(n_pairs=2).fit(X[:1], y[:1])


@pytest.mark.parametrize(
    ("params", "y", "weight", "message"),
    [
        ({}, np.zeros(12), None, "at least 2 classes"),
        ({}, Y[:5], None, "X has 12 texts but y has 5 rows"),
        ({}, np.linspace(0, 1, 12), None, "class labels or a 0/1 label indicator"),
        ({}, Y, -np.ones(12), "sample_weight must be 12 finite weights >= 0"),
        ({"backbone": "efficientnet_lite0"}, Y, None, "tunes a text encoder"),
    ],
)
def test_bad_input_is_named(params, y, weight, message):
    with pytest.raises(ValueError, match=message):
        FewShotTextClassifier(**params).fit(X, y, sample_weight=weight)


def test_saved_and_pickled_models_predict_the_same(fitted, tmp_path):
    expected = fitted.predict_proba(X)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(fitted)).predict_proba(X), expected)
    sktransfer.save(fitted, tmp_path / "few_shot.skt")
    loaded = sktransfer.load(tmp_path / "few_shot.skt")
    np.testing.assert_allclose(loaded.predict_proba(X), expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(TypeError, match="default head"):
        sktransfer.save(
            FewShotTextClassifier(head=LogisticRegression(), max_epochs=0).fit(X, Y),
            tmp_path / "other.skt",
        )


_PREDICT_IN_A_FRESH_PROCESS = """
import json, sys
import sktransfer
texts = json.loads(sys.argv[2])
model = sktransfer.load(sys.argv[1])
proba = model.predict_proba(texts).tolist()
print(json.dumps({"classes": model.classes_.tolist(), "proba": proba}))
"""


def test_both_text_classifiers_load_and_predict_in_a_fresh_process(fitted, tmp_path):
    names = np.where(Y == 1, "praise", "complaint")  # the texts join the class names
    zero_shot = ZeroShotTextClassifier(labels=["praise", "complaint"]).fit(X, names)
    for name, model in {"few_shot": fitted, "zero_shot": zero_shot}.items():
        path = tmp_path / f"{name}.skt"
        sktransfer.save(model, path)
        done = subprocess.run(
            [sys.executable, "-c", _PREDICT_IN_A_FRESH_PROCESS, str(path), json.dumps(X)],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ | {"SKTRANSFER_OFFLINE": "1"},
        )
        out = json.loads(done.stdout.strip().splitlines()[-1])
        assert out["classes"] == model.classes_.tolist()
        np.testing.assert_allclose(out["proba"], model.predict_proba(X), rtol=1e-4, atol=1e-5)
