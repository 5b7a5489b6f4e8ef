"""Transferability scores, the ranking of candidates, and the selector step."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import minimize
from sklearn.base import clone
from sklearn.covariance import LedoitWolf
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits
from torch import nn

from sktransfer import PretrainedFeatureExtractor, load_backbone
from sktransfer.selection import (
    BackboneSelector,
    UnstableRankingWarning,
    best_layer,
    default_layers,
    h_score,
    leep,
    logme,
    rank_candidates,
)

FAST = {"image_size": 32, "batch_size": 8}


# --- LogME against the definition ------------------------------------------------------------
def log_evidence(gram, Fy, yy, n, log_alpha, log_beta):
    """Per-sample log evidence of y = F w + noise, from the d x d matrices (no shortcut).

    ``gram`` is ``F^T F``, ``Fy`` is ``F^T y`` and ``yy`` is ``y^T y``, computed once per
    problem; the residual ``||F m - y||^2`` is expanded in them.
    """
    d = len(gram)
    alpha, beta = np.exp(log_alpha), np.exp(log_beta)
    A = alpha * np.eye(d) + beta * gram
    m = beta * np.linalg.solve(A, Fy)
    logdet = np.linalg.slogdet(A)[1]
    residual = m @ gram @ m - 2 * m @ Fy + yy
    value = (
        d / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - beta / 2 * residual
        - alpha / 2 * m @ m
        - logdet / 2
        - n / 2 * np.log(2 * np.pi)
    )
    return value / n


def brute_force_logme(F, y):
    """Maximise the evidence numerically over (log alpha, log beta) from several starts.

    beta stays below e^18: beyond, the d x d solve loses the digits the evidence needs
    (where the supremum lies at beta -> infinity, the bound costs less than 1e-7 here).
    The many small solves run on one BLAS thread: threads only wait for each other there.
    """
    gram, Fy, yy = F.T @ F, F.T @ y, y @ y
    best = -np.inf
    with threadpool_limits(1):
        for start in [(0, 0), (4, -1), (-4, 2), (8, 4), (2, 6)]:
            result = minimize(
                lambda p: -log_evidence(gram, Fy, yy, len(F), *p),
                start,
                method="Nelder-Mead",
                bounds=[(-30, 40), (-30, 18)],
                options={"xatol": 1e-9, "fatol": 1e-13, "maxiter": 3000},
            )
            best = max(best, -result.fun)
    return best


def one_vs_rest(y):
    return np.eye(y.max() + 1)[y]


def problem(n, d, n_classes=3, rank=None, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    F = rng.normal(size=(n, d)) * rng.uniform(0.1, 3, d)
    F[:, : n_classes - 1] += one_vs_rest(y)[:, 1:] * 1.5
    if rank is not None:  # duplicate directions: rank-deficient features
        F = F[:, :rank] @ rng.normal(size=(rank, d))
    return F, y


@pytest.mark.parametrize(
    "n, d, rank",
    [(40, 8, None), (8, 40, None), (20, 20, None), (12, 100, None), (30, 12, 5), (10, 30, 6)],
    ids=["n>d", "n<d", "n=d", "n<<d", "n>d rank-deficient", "n<d rank-deficient"],
)
def test_logme_is_the_maximum_of_the_evidence(n, d, rank):
    F, y = problem(n, d, rank=rank)
    expected = np.mean([brute_force_logme(F, column) for column in one_vs_rest(y).T])
    assert logme(F, y) == pytest.approx(expected, abs=2e-7)


def fixed_point_logme(F, y, steps=10_000):
    """MacKay's updates (LogME's Algorithm 1) run to convergence, with the paper's evidence.

    The paper sums log(alpha + beta s_i^2) over the eigenvalues of F^T F, d of them, which
    the reference code computes only when n >= d.
    """
    n, d = F.shape
    s2, V = np.linalg.eigh(F.T @ F)
    alpha, beta = 1.0, 1.0
    for _ in range(steps):
        A_inv = V @ np.diag(1 / (alpha + beta * s2)) @ V.T
        m = beta * A_inv @ F.T @ y
        gamma = np.sum(beta * s2 / (alpha + beta * s2))
        new_alpha = gamma / (m @ m)
        new_beta = (n - gamma) / np.sum((F @ m - y) ** 2)
        done = abs(new_alpha / new_beta - alpha / beta) < 1e-12 * alpha / beta
        alpha, beta = new_alpha, new_beta
        if done:
            break
    m = beta * V @ np.diag(1 / (alpha + beta * s2)) @ V.T @ F.T @ y
    value = (
        d / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - np.sum(np.log(alpha + beta * s2)) / 2
        - beta / 2 * np.sum((F @ m - y) ** 2)
        - alpha / 2 * m @ m
        - n / 2 * np.log(2 * np.pi)
    )
    return value / n


@pytest.mark.parametrize("n, d", [(60, 10), (200, 50)])
def test_logme_agrees_with_the_fixed_point_updates_when_samples_outnumber_features(n, d):
    F, y = problem(n, d, n_classes=4, seed=1)
    expected = np.mean([fixed_point_logme(F, column) for column in one_vs_rest(y).T])
    assert logme(F, y) == pytest.approx(expected, abs=1e-7)


def test_logme_with_fewer_samples_than_features_is_not_inflated():
    """With n < d, summing over the n non-zero singular values only while keeping the
    prior's d/2 log(alpha) (the reference code's formula) adds (d - n)/2n log(alpha) at the
    optimum: far too high. The true maximum is below the all-noise limit here."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 15)
    noise = rng.normal(size=(30, 1280))
    score = logme(noise, y)
    # The "features explain nothing" limit (alpha -> infinity): y ~ N(0, |y|^2 / n).
    limit = np.mean([-0.5 * (np.log(2 * np.pi * c @ c / 30) + 1) for c in one_vs_rest(y).T])
    assert limit - 0.05 < score < limit + 0.05


# --- what the scores reward --------------------------------------------------------------------
@pytest.mark.parametrize("score", [logme, h_score], ids=["logme", "h_score"])
@pytest.mark.parametrize("n, d", [(60, 20), (30, 200)], ids=["n>d", "n<d"])
def test_scores_rank_informative_features_above_noise(score, n, d):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    noise = rng.normal(size=(n, d))
    signal = np.zeros((n, d))
    signal[:, :3] = one_vs_rest(y) * 2.0
    values = [score(noise + strength * signal, y) for strength in (0.0, 0.5, 2.0)]
    assert values[0] < values[1] < values[2]


def test_logme_ignores_the_scale_of_the_features():
    F, y = problem(30, 50)
    assert logme(F * 1e3, y) == pytest.approx(logme(F, y), abs=1e-9)
    assert logme(F * 1e-3, y) == pytest.approx(logme(F, y), abs=1e-9)


def test_logme_scores_real_valued_targets():
    rng = np.random.default_rng(0)
    F = rng.normal(size=(50, 8))
    target = F @ rng.normal(size=8) + 0.1 * rng.normal(size=50)
    assert logme(F, target) == logme(F, target, regression=True)
    assert logme(F, target[:, None]) == pytest.approx(logme(F, target))
    assert logme(F, target) == pytest.approx(brute_force_logme(F, target), abs=1e-7)
    assert logme(F, target) > logme(rng.normal(size=(50, 8)), target)
    # two targets: the mean of each one's score
    both = np.c_[target, -2 * target + 1]
    expected = (logme(F, target) + logme(F, both[:, 1])) / 2
    assert logme(F, both) == pytest.approx(expected)


def test_h_score_is_the_shrunk_trace_formula():
    for n, d in [(40, 10), (15, 60)]:
        F, y = problem(n, d, seed=2)
        covariance = LedoitWolf().fit(F)
        shrinkage = covariance.shrinkage_
        centred = F - F.mean(axis=0)
        means = np.stack([centred[y == c].mean(axis=0) for c in y])  # E[f | y] per row
        between = means.T @ means / n
        expected = np.trace(np.linalg.solve(covariance.covariance_, (1 - shrinkage) * between))
        assert h_score(F, y) == pytest.approx(expected, rel=1e-9)


def test_leep_is_the_log_likelihood_of_the_remapped_source_classifier():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(5), size=12)
    y = np.array(list("abc") * 4)
    expected = []
    for i in range(12):
        total = 0.0
        for z in range(5):
            joint = P[y == y[i], z].sum() / 12
            total += joint / (P[:, z].sum() / 12) * P[i, z]
        expected.append(np.log(total))
    assert leep(P, y) == pytest.approx(np.mean(expected))
    # source classes that determine the target labels: a perfect classifier, log 1 = 0
    assert leep(np.eye(3)[[0, 1, 2, 0, 1, 2]], [5, 6, 7, 5, 6, 7]) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: logme(np.ones((4, 3)), [1, 1, 1, 1]), "at least 2 classes; y has one: 1"),
        (lambda: logme(np.ones((4, 3)), [0, 1, 0]), "inconsistent numbers of samples"),
        (lambda: h_score(np.ones((4, 3)), [0.5, 1.2, 0.1, 3.3]), "class labels"),
        (lambda: logme(np.r_[np.ones((3, 2)), [[np.nan, 1]]], [0, 1, 0, 1]), "NaN"),
        (lambda: leep(np.ones((4, 3)), [0, 1, 0, 1]), "rows that sum to 1"),
        (lambda: logme(np.ones((4, 3)), np.zeros(4), regression=True), "zero everywhere"),
    ],
    ids=["one class", "lengths", "continuous", "nan", "not probabilities", "zero target"],
)
def test_scores_refuse_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- ranking candidates from one forward pass ------------------------------------------------
class Counting(nn.Module):
    """A stage that records the batches it runs on (shared by the copies the loader makes).

    Loading a module probes it with one blank image; only batches of images count.
    """

    calls = []

    def __init__(self, name):
        super().__init__()
        self.name = name

    @classmethod
    def batches(cls, name):
        return [size for stage, size in cls.calls if stage == name and size > 1]

    def forward(self, x):
        Counting.calls.append((self.name, len(x)))
        return x


def small_net(seed=0):
    """A small random network, the same for a seed whatever ran before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _small_net()


def _small_net():
    return nn.Sequential(
        Counting("first"),
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        Counting("last"),
    )


@pytest.fixture(scope="module")
def photos(crops):
    """The 24 real photo crops at 48 px, 12 per class."""
    X, y = crops
    return np.ascontiguousarray(X[:, ::2, ::2]), y


def test_one_forward_pass_scores_every_layer_of_a_backbone(photos):
    X, y = photos
    net = small_net()
    Counting.calls.clear()
    frame = rank_candidates(
        X, y, [(net, ["1", "3"]), (net, None), (net, "5")], n_resamples=3, **FAST
    )
    assert len(frame) == 4
    assert Counting.batches("first") == Counting.batches("last") == [8, 8, 8]


def test_the_pass_stops_after_the_deepest_wanted_layer(photos):
    X, y = photos
    Counting.calls.clear()
    rank_candidates(X, y, [(small_net(), ["1", "3"])], n_resamples=0, **FAST)
    assert Counting.batches("first") == [8, 8, 8]
    assert Counting.batches("last") == []  # the stages after layer "3" never ran


def test_scored_features_are_the_extractor_features(photos):
    """Each candidate is scored on exactly what PretrainedFeatureExtractor gives it."""
    X, y = photos
    seen = {}

    def spy(features, labels):
        seen.setdefault(features.shape[1], features)  # the first call: all the inputs
        return float(features.mean())

    candidates = [
        PretrainedFeatureExtractor(layer="blocks3", **FAST),
        PretrainedFeatureExtractor(layer="blocks5", pooling="avgmax", **FAST),
        PretrainedFeatureExtractor(pooling="max", **FAST),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnstableRankingWarning)
        frame = rank_candidates(X, y, candidates, scoring=spy, n_resamples=0)
    assert sorted(frame.n_features) == [80, 384, 1280]
    for extractor in candidates:
        expected = clone(extractor).fit(X).transform(X)
        np.testing.assert_allclose(seen[expected.shape[1]], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("scoring", ["logme", "hscore", "leep"])
def test_pretrained_weights_rank_above_random_weights(photos, scoring):
    X, y = photos
    candidates = [
        PretrainedFeatureExtractor(weights=None, image_size=48),
        PretrainedFeatureExtractor(image_size=48),
    ]
    frame = rank_candidates(X, y, candidates, scoring=scoring, n_resamples=5, random_state=0)
    assert frame.weights.to_list() == ["DEFAULT", None]
    assert frame.candidate.to_list() == [1, 0]
    assert frame.p_best.to_list() == [1.0, 0.0]


def test_the_ranking_frame(photos):
    X, y = photos
    frame = rank_candidates(
        X, y, [("efficientnet_lite0", ["blocks2", "blocks4", None])], n_resamples=4, **FAST
    )
    assert frame.columns.to_list() == [
        "backbone",
        "weights",
        "layer",
        "pooling",
        "score",
        "score_std",
        "p_best",
        "n_features",
        "seconds",
        "candidate",
    ]
    assert frame.score.is_monotonic_decreasing
    assert set(frame.layer) == {"blocks2", "blocks4", None}  # None stays None, not NaN
    assert (frame.backbone == "efficientnet_lite0").all() and (frame.candidate == 0).all()
    assert (frame.score_std > 0).all() and frame.p_best.sum() == pytest.approx(1.0)
    assert (frame.seconds > 0).all()


def test_resamples_are_halves_of_each_class_without_repeats(photos):
    X, y = photos
    y = np.r_[["a"] * 7, ["b"] * 17]  # 7 and 17 inputs
    calls = []

    def spy(features, labels):
        calls.append((len(np.unique(features, axis=0)), pd.Series(labels).value_counts()))
        return 0.0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnstableRankingWarning)
        rank_candidates(X, y, [(small_net(), "3")], scoring=spy, n_resamples=3, **FAST)
    assert calls[0][0] == 24
    for distinct, counts in calls[1:]:
        assert distinct == 13 and counts.to_dict() == {"a": 4, "b": 9}  # halves, rounded up


def test_same_seed_same_spread(photos):
    X, y = photos
    net = small_net()
    run = [rank_candidates(X, y, [(net, ["1", "5"])], random_state=3, **FAST) for _ in range(2)]
    pd.testing.assert_frame_equal(run[0].drop(columns="seconds"), run[1].drop(columns="seconds"))


def test_few_labels_warn_that_the_ranking_is_unstable(photos):
    X, y = photos
    few = np.r_[0:4, 12:16]
    with pytest.warns(UnstableRankingWarning, match="only 4 labelled inputs"):
        rank_candidates(X[few], y[few], [(small_net(), "3")], **FAST)


def test_a_first_place_that_changes_between_resamples_warns(photos):
    X, y = np.repeat(photos[0], 2, axis=0), np.repeat(photos[1], 2)  # 24 per class

    def fickle(features, labels):
        """On all inputs the widest layer is best; on every half, the narrowest."""
        width = features.shape[1]
        return width if len(features) == len(X) else -width

    with pytest.warns(UnstableRankingWarning, match=r"layer '5'\) is first in only 0% of 10"):
        frame = rank_candidates(X, y, [(small_net(), ["1", "3", "5"])], scoring=fickle, **FAST)
    assert frame.layer.to_list() == ["5", "3", "1"]
    assert frame.p_best.to_list() == [0.0, 0.0, 1.0]


def test_a_clear_ranking_does_not_warn(photos):
    X, y = np.repeat(photos[0], 2, axis=0), np.repeat(photos[1], 2)
    candidates = [PretrainedFeatureExtractor(**FAST), (small_net(), "1")]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnstableRankingWarning)
        frame = rank_candidates(X, y, candidates, random_state=0)
    assert frame.candidate[0] == 0


@pytest.mark.parametrize(
    "candidates, kwargs, error, match",
    [
        (
            [("efficientnet_lite0", "blocks9")],
            {},
            ValueError,
            "Unknown layer 'blocks9'.*Did you mean 'blocks6'",
        ),
        ([("efficientnet_lite0", "blocks3", "avg")], {}, ValueError, "a tuple of 3 items"),
        ([], {}, ValueError, "candidates is empty"),
        ("efficientnet_lite0", {}, TypeError, "'candidates' parameter .* instance of 'list'"),
        ([("efficientnet_lite0", 3)], {}, TypeError, "a layer is a name"),
        (None, {"scoring": "logm"}, ValueError, "'scoring' parameter .* a str among"),
        (None, {"batch_size": 0}, ValueError, "'batch_size' parameter .* in the range"),
        (None, {"n_resamples": -1}, ValueError, "'n_resamples' parameter .* in the range"),
        ([("efficientnet_lite0", "blocks3")], {"scoring": "leep"}, ValueError, "not layers"),
        ([small_net()], {"scoring": "leep"}, ValueError, "'Sequential' has none"),
    ],
    ids=[
        "unknown layer",
        "triple",
        "empty",
        "one string",
        "layer number",
        "unknown score",
        "batch size 0",
        "negative resamples",
        "leep on a layer",
        "leep without a head",
    ],
)
def test_bad_candidates_get_clear_errors(photos, candidates, kwargs, error, match):
    X, y = photos
    with pytest.raises(error, match=match):
        rank_candidates(X, y, candidates, **{**FAST, **kwargs})


def test_bad_labels_are_refused_before_any_forward_pass(photos):
    X, y = photos
    Counting.calls.clear()
    with pytest.raises(ValueError, match="X has 24 inputs but y has 23 labels"):
        rank_candidates(X, y[:-1], [small_net()], **FAST)
    with pytest.raises(ValueError, match="at least 2 classes"):
        rank_candidates(X, ["a"] * 24, [small_net()], **FAST)
    with pytest.raises(ValueError, match="class labels"):
        rank_candidates(X, np.linspace(0, 1, 24), [small_net()], scoring="hscore", **FAST)
    assert Counting.batches("first") == []


def test_best_layer_of_a_loaded_backbone(photos):
    X, y = photos
    backbone = load_backbone()
    backbone.preprocessing = backbone.preprocessing.with_options(image_size=32)
    layer, frame = best_layer(backbone, X, y, n_resamples=0)
    assert layer == frame.layer[0]
    assert frame.layer.to_list() != default_layers(backbone)  # sorted by score
    assert sorted(frame.layer, key=str) == sorted(default_layers(backbone), key=str)
    assert default_layers(backbone)[-1] is None and "conv_head" not in default_layers(backbone)
    chosen, frame = best_layer(backbone, X, y, layers=["blocks1", "blocks5"], n_resamples=0)
    assert chosen in ("blocks1", "blocks5") and len(frame) == 2
    with pytest.raises(ValueError, match="cannot compare layers"):
        best_layer(backbone, X, y, scoring="leep")


# --- the selector step ------------------------------------------------------------------------
CANDIDATES = [("efficientnet_lite0", ["blocks3", None]), (small_net(), "5")]


@pytest.fixture(scope="module")
def selector(photos):
    return BackboneSelector(CANDIDATES, random_state=0, **FAST).fit(*photos)


def test_selector_keeps_the_best_candidate_fitted(selector, photos):
    X, _ = photos
    top = selector.scores_.iloc[0]
    best = selector.best_
    assert isinstance(best, PretrainedFeatureExtractor)
    assert (best.layer_, best.backbone, best.image_size) == (top.layer, top.backbone, 32)
    assert selector.n_features_out_ == best.n_features_out_ == top.n_features
    np.testing.assert_array_equal(selector.transform(X), best.transform(X))


def test_selector_in_a_pipeline(photos):
    X, y = photos
    pipe = make_pipeline(
        BackboneSelector(CANDIDATES, n_resamples=0, **FAST), LogisticRegression(max_iter=500)
    )
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.9
    names = pipe[0].get_feature_names_out()
    assert names[0] == "backboneselector0" and len(names) == pipe[0].n_features_out_
    pipe[0].set_output(transform="pandas")
    assert isinstance(pipe[0].transform(X[:2]), pd.DataFrame)


def test_selector_keeps_an_extractor_candidate_settings(photos):
    X, y = photos
    candidate = PretrainedFeatureExtractor(layer="blocks4", pooling="max", batch_size=5)
    selector = BackboneSelector([candidate], n_resamples=0, image_size=32).fit(X, y)
    assert selector.best_ is not candidate
    assert selector.best_.get_params() == candidate.get_params()
    assert candidate.layer == "blocks4" and not hasattr(candidate, "backbone_")


def test_selector_is_an_ordinary_estimator(selector, photos):
    X, y = photos
    fresh = clone(selector)
    assert repr(fresh) == repr(selector)  # clone copies the module inside candidates
    assert not hasattr(fresh, "scores_")
    with pytest.raises(NotFittedError):
        fresh.transform(X)
    assert fresh.set_params(scoring="hscore").scoring == "hscore"
    loaded = pickle.loads(pickle.dumps(selector))
    np.testing.assert_array_equal(loaded.transform(X[:3]), selector.transform(X[:3]))
    pd.testing.assert_frame_equal(loaded.scores_, selector.scores_)


def test_selector_needs_labels_of_two_classes(photos):
    X, _ = photos
    with pytest.raises(ValueError, match="requires y to be passed"):
        BackboneSelector(**FAST).fit(X)
    with pytest.raises(ValueError, match="at least 2 classes"):
        BackboneSelector(**FAST).fit(X[:1], ["a"])
