"""Choosing and tuning an adaptation method without target labels."""

import warnings

import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KernelDensity, KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from sktransfer.adaptation import (
    CORAL,
    KLIEP,
    KMM,
    AdaptationSelector,
    CircularValidation,
    DeepEmbeddedValidation,
    DiscriminatorReweight,
    ImportanceWeightedScorer,
    PredictionEntropyScorer,
    SourceKFold,
    SourceOnly,
    SourceTargetShuffleSplit,
    TransferComponentAnalysis,
)

SCORERS = [
    CircularValidation(),
    ImportanceWeightedScorer(),
    DeepEmbeddedValidation(random_state=0),
    PredictionEntropyScorer(),
]


def linear_map(seed, n=100):
    """The target is the source seen through a linear re-scaling and a shift (CORAL's)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=5)
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    A = Q @ np.diag([4, 2, 1, 0.5, 0.25]) @ Q.T
    Xs, X0 = rng.normal(size=(n, 5)), rng.normal(size=(n, 5))
    return Xs, (Xs @ w > 0).astype(int), X0 @ A + 3, (X0 @ w > 0).astype(int)


@pytest.fixture(scope="module")
def shifted():
    """80 labelled source rows and 60 shifted target rows; sample_domain as skada writes it."""
    rng = np.random.default_rng(0)
    Xs = rng.normal(size=(80, 3))
    Xt = rng.normal(size=(60, 3)) + [1, 0, 0]
    ys, yt = (Xs[:, 0] + Xs[:, 1] > 0).astype(int), (Xt[:, 0] + Xt[:, 1] > 1).astype(int)
    X, y = np.vstack([Xs, Xt]), np.r_[ys, -np.ones(60, int)]
    domain = np.r_[np.ones(80, int), -2 * np.ones(60, int)]
    return X, y, domain, yt


# --- the scorers -----------------------------------------------------------------------------
class TakesDomainArguments(ClassifierMixin, BaseEstimator):
    """A logistic regression that takes, and ignores, skada's keyword arguments."""

    def fit(self, X, y, **ignored):
        rows = y != -1
        self.model_ = LogisticRegression().fit(X[rows], y[rows])
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X, **ignored):
        return self.model_.predict(X)

    def predict_proba(self, X, **ignored):
        return self.model_.predict_proba(X)

    def score(self, X, y, sample_weight=None, **ignored):
        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)


@pytest.mark.parametrize(
    "ours, theirs, weighted",
    [
        (lambda: PredictionEntropyScorer(), lambda m: m.PredictionEntropyScorer(), False),
        (lambda: CircularValidation(), lambda m: m.CircularValidation(), False),
        (
            lambda: ImportanceWeightedScorer(KernelDensity(bandwidth=0.5)),
            lambda m: m.ImportanceWeightedScorer(KernelDensity(bandwidth=0.5)),
            True,
        ),
    ],
    ids=["entropy", "circular", "importance-weighted"],
)
def test_scorers_give_skadas_values(shifted, ours, theirs, weighted):
    metrics = pytest.importorskip("skada.metrics")
    X, y, domain, _ = shifted
    model = TakesDomainArguments().fit(X, y)
    with sklearn.config_context(enable_metadata_routing=True):  # skada's scorers need it
        if weighted:  # skada asks the estimator's score to request sample_weight
            model.set_score_request(sample_weight=True)
        expected = theirs(metrics)(model, X, y, sample_domain=domain)
    # skada takes log(p + 1e-7) for the entropy, hence the tolerance
    assert ours()(model, X, y, sample_domain=domain) == pytest.approx(expected, abs=1e-6)


def test_deep_embedded_validation_is_you_et_als_estimate(shifted):
    """The control-variate estimate of the weighted log-loss, computed here by hand.

    (skada 0.6 multiplies weights of shape (n, 1) with losses of shape (n,), which makes an
    n x n matrix of the weighted losses; its value differs.)
    """
    X, y, domain, _ = shifted
    pipe = make_pipeline(StandardScaler(), SourceOnly()).fit(X, y)
    score = DeepEmbeddedValidation(LogisticRegression(), random_state=0)(pipe, X, y)
    train, valid = train_test_split(np.arange(80), test_size=0.33, random_state=0)
    features = pipe[0].transform(X)
    domains = np.r_[np.ones(len(train)), np.zeros(60)]
    classifier = LogisticRegression().fit(np.vstack([features[train], features[80:]]), domains)
    p = classifier.predict_proba(features[valid])
    w = len(train) / 60 * p[:, 0] / p[:, 1]
    loss = -np.log(pipe.predict_proba(X[valid])[np.arange(len(valid)), y[valid]])
    eta = -np.cov(w * loss, w)[0, 1] / np.var(w, ddof=1)
    assert score == pytest.approx(-(np.mean(w * loss) + eta * np.mean(w) - eta))


def test_scorers_predict_held_out_source_rows_as_source_rows(shifted):
    """A feature-based method maps source rows with the source map when it is scored."""
    X, y, domain, _ = shifted
    coral = CORAL().fit(X, y)
    Xs, ys, Xt = X[:80], y[:80], X[80:]
    density = KernelDensity(bandwidth=0.5)
    log_ratio = density.fit(Xt).score_samples(Xs) - density.fit(Xs).score_samples(Xs)
    weights = np.exp(log_ratio)
    scored = ImportanceWeightedScorer(KernelDensity(bandwidth=0.5))(coral, X, y)
    as_source = coral.predict(Xs, sample_domain=np.ones(80, int))
    assert scored == pytest.approx(accuracy_score(ys, as_source, sample_weight=weights))
    as_target = accuracy_score(ys, coral.predict(Xs), sample_weight=weights)
    assert abs(scored - as_target) > 0.05  # the map matters


@pytest.mark.parametrize("scorer", SCORERS, ids=lambda s: type(s).__name__)
def test_scorers_never_read_target_labels(shifted, scorer):
    X, y, domain, yt = shifted
    model = CORAL().fit(X, y)
    unlabelled = scorer(model, X, y, sample_domain=domain)
    labelled = scorer(model, X, np.r_[y[:80], yt], sample_domain=domain)
    flipped = scorer(model, X, np.r_[y[:80], 1 - yt], sample_domain=domain)
    assert unlabelled == labelled == flipped
    assert unlabelled == scorer(model, X, y)  # y = -1 tells the target rows without it


def test_scorers_say_what_they_miss(shifted):
    X, y, domain, _ = shifted
    model = CORAL().fit(X, y)
    with pytest.raises(ValueError, match="No target rows to score on"):
        CircularValidation()(model, X[:80], y[:80])
    with pytest.raises(ValueError, match="give the target rows y = -1"):
        CircularValidation()(model, X, y, sample_domain=np.abs(domain))
    without_proba = CORAL(LinearSVC()).fit(X, y)
    for scorer in (PredictionEntropyScorer(), DeepEmbeddedValidation()):
        with pytest.raises(AttributeError, match="needs predict_proba; CORAL has none"):
            scorer(without_proba, X, y)
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        PredictionEntropyScorer(reduction="none")


# --- the splitters ---------------------------------------------------------------------------
def test_source_target_shuffle_split_gives_skadas_splits(shifted):
    model_selection = pytest.importorskip("skada.model_selection")
    X, y, domain, _ = shifted
    ours = SourceTargetShuffleSplit(4, test_size=0.2, random_state=0)
    theirs = model_selection.SourceTargetShuffleSplit(4, test_size=0.2, random_state=0)
    for (a, b), (c, d) in zip(
        ours.split(X, y, sample_domain=domain),
        theirs.split(X, y, sample_domain=domain),
        strict=True,
    ):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    # without sample_domain, y = -1 tells the target rows
    by_y, by_domain = ours.split(X, y), ours.split(X, y, sample_domain=domain)
    for (a, b), (c, d) in zip(by_y, by_domain, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


def test_source_kfold_keeps_every_target_row_in_every_fold(shifted):
    X, y, domain, _ = shifted
    folds = list(SourceKFold(4, random_state=0).split(X, y))
    assert len(folds) == SourceKFold(4).get_n_splits() == 4
    held_out = []
    for train, test in folds:
        assert set(range(80, 140)) <= set(train) and set(range(80, 140)) <= set(test)
        held_out.extend(test[test < 80])
        assert not set(train[train < 80]) & set(test[test < 80])
    assert sorted(held_out) == list(range(80))  # each source row scored once


def test_splitters_refuse_a_test_size_that_leaves_nothing(shifted):
    X, y, _, _ = shifted
    with pytest.raises(ValueError, match="test_size=80 leaves no row to train or to test"):
        next(SourceTargetShuffleSplit(test_size=80).split(X, y))


# --- grid search without target labels -------------------------------------------------------
def test_grid_search_with_an_unsupervised_scorer_and_routed_sample_domain():
    Xs, ys, Xt, yt = linear_map(0)
    X, y = np.vstack([Xs, Xt]), np.r_[ys, -np.ones(100, int)]
    domain = np.r_[np.ones(100, int), -np.ones(100, int)]
    grid = {"n_components": [1, 3]}

    def search():
        return GridSearchCV(
            TransferComponentAnalysis(LogisticRegression()),
            grid,
            scoring=CircularValidation(),
            cv=SourceKFold(3, random_state=0),
        )

    plain = search().fit(X, y)  # the domains from y = -1
    with sklearn.config_context(enable_metadata_routing=True):
        routed = GridSearchCV(
            TransferComponentAnalysis(LogisticRegression()).set_fit_request(sample_domain=True),
            grid,
            scoring=CircularValidation(),
            cv=SourceKFold(3, random_state=0),
        ).fit(X, y, sample_domain=domain)
    np.testing.assert_allclose(
        routed.cv_results_["mean_test_score"], plain.cv_results_["mean_test_score"]
    )
    assert np.isfinite(plain.cv_results_["mean_test_score"]).all()
    # one component cannot hold the labelling rule of five features: the scorer sees it
    assert plain.best_params_ == {"n_components": 3}
    assert plain.best_estimator_.score(Xt, yt) > 0.7


# --- the selector ----------------------------------------------------------------------------
def test_selector_chooses_an_adaptation_that_helps():
    Xs, ys, Xt, yt = linear_map(0)
    X, y = np.vstack([Xs, Xt]), np.r_[ys, -np.ones(100, int)]
    selector = AdaptationSelector(
        candidates=[CORAL(), TransferComponentAnalysis(n_components=1)], random_state=0
    ).fit(X, y)
    assert selector.cv_results_["name"] == [
        "source-only",
        "CORAL",
        "TransferComponentAnalysis",
    ]
    assert isinstance(selector.best_estimator_, CORAL) and selector.best_index_ == 1
    source_only = SourceOnly().fit(X, y).score(Xt, yt)
    assert selector.score(Xt, yt) == selector.best_estimator_.score(Xt, yt) > source_only + 0.1


def test_selector_keeps_source_only_when_every_candidate_hurts():
    """Negative transfer is avoided by construction: source-only is always a candidate."""
    Xs, ys, Xt, yt = linear_map(0)
    X, y = np.vstack([Xs, Xt]), np.r_[ys, -np.ones(100, int)]
    harmful = TransferComponentAnalysis(n_components=1)
    assert harmful.fit(X, y).score(Xt, yt) < SourceOnly().fit(X, y).score(Xt, yt) - 0.1
    selector = AdaptationSelector(candidates=[harmful], random_state=0).fit(X, y)
    assert isinstance(selector.best_estimator_, SourceOnly) and selector.best_index_ == 0
    np.testing.assert_array_equal(selector.predict(Xt), SourceOnly().fit(X, y).predict(Xt))


def test_selector_margin_asks_for_a_clear_gain():
    Xs, ys, Xt, _ = linear_map(1)
    X, y = np.vstack([Xs, Xt]), np.r_[ys, -np.ones(100, int)]
    loose = AdaptationSelector(candidates=[CORAL()], margin=0, random_state=0).fit(X, y)
    results = loose.cv_results_
    gain = results["mean_score"][1] - results["mean_score"][0]
    assert loose.best_index_ == int(gain > 0)
    strict = AdaptationSelector(
        candidates=[CORAL()], margin=gain / results["gain_std_err"][1] + 1, random_state=0
    ).fit(X, y)
    assert strict.best_index_ == 0


def test_selector_expands_parameter_grids_and_routes_sample_domain():
    Xs, ys, Xt, yt = linear_map(0)
    X, y = np.vstack([Xs, Xt]), np.r_[ys, -np.ones(100, int)]
    domain = np.r_[np.ones(100, int), -np.ones(100, int)]
    candidates = [(CORAL(), {"reg": [0.1, "auto"]}), DiscriminatorReweight()]

    def pipe(selector):
        return make_pipeline(StandardScaler(), selector)

    plain = pipe(AdaptationSelector(candidates=candidates, random_state=0)).fit(X, y)
    with sklearn.config_context(enable_metadata_routing=True):
        selector = AdaptationSelector(candidates=candidates, random_state=0)
        routed = pipe(selector.set_fit_request(sample_domain=True))
        routed.fit(X, y, sample_domain=domain)
    assert routed[-1].cv_results_["name"] == [
        "source-only",
        "CORAL(reg=0.1)",
        "CORAL(reg='auto')",
        "DiscriminatorReweight",
    ]
    np.testing.assert_allclose(
        routed[-1].cv_results_["mean_score"], plain[-1].cv_results_["mean_score"]
    )
    source_only = pipe(SourceOnly()).fit(X, y).score(Xt, yt)
    assert routed.score(Xt, yt) >= source_only - 0.01
    with pytest.raises(ValueError, match=r"an estimator or an \(estimator, param_grid\) pair"):
        AdaptationSelector(candidates=["CORAL"]).fit(X, y)
    with pytest.raises(ValueError, match=r"an estimator or an \(estimator, param_grid\) pair"):
        AdaptationSelector(candidates=[(CORAL(), "reg")]).fit(X, y)


def test_selector_without_target_rows_fits_source_only_with_a_warning():
    Xs, ys, _, _ = linear_map(0)
    with pytest.warns(UserWarning, match="No target rows to adapt to") as record:
        selector = AdaptationSelector(candidates=[CORAL()]).fit(Xs, ys)
    assert [w.filename for w in record] == [__file__]
    assert selector.best_index_ == 0 and np.isnan(selector.cv_results_["mean_score"]).all()


def test_selector_says_once_how_it_read_y_minus_one():
    Xs, ys, Xt, _ = linear_map(0, n=60)
    X, y = np.vstack([Xs, Xt]), np.r_[ys, -np.ones(60, int)]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        AdaptationSelector(candidates=[CORAL()], cv=3, random_state=0).fit(X, y)
    assert [(w.filename, "y = -1 is read as" in str(w.message)) for w in record] == [
        (__file__, True)
    ]


def test_selector_default_candidates_and_scorer():
    Xs, ys, Xt, yt = linear_map(2, n=60)
    X, y = np.vstack([Xs, Xt]), np.r_[ys, -np.ones(60, int)]
    domain = np.r_[np.ones(60, int), -np.ones(60, int)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        selector = AdaptationSelector(cv=3, random_state=0).fit(X, y, sample_domain=domain)
    assert selector.cv_results_["name"] == [
        "source-only",
        "CORAL",
        "SubspaceAlignment",
        "TransferComponentAnalysis",
        "JointDistributionAdaptation",
        "DiscriminatorReweight",
    ]
    assert selector.score(Xt, yt) >= SourceOnly().fit(X, y).score(Xt, yt) - 0.01


def test_selector_skips_the_weighing_candidates_of_an_estimator_without_sample_weight():
    Xs, ys, Xt, yt = linear_map(2, n=60)
    X, y = np.vstack([Xs, Xt]), np.r_[ys, -np.ones(60, int)]
    domain = np.r_[np.ones(60, int), -np.ones(60, int)]
    nearest = KNeighborsClassifier()
    message = (
        r"AdaptationSelector skips DiscriminatorReweight: DiscriminatorReweight weighs the rows "
        r"it fits on, so its estimator's fit must take sample_weight; KNeighborsClassifier's "
        r"does not\. Give an estimator"
    )
    with pytest.warns(UserWarning, match=message) as record:
        selector = AdaptationSelector(nearest, cv=3, random_state=0)
        selector.fit(X, y, sample_domain=domain)
    assert [w.filename for w in record] == [__file__]
    assert selector.cv_results_["name"] == [
        "source-only",
        "CORAL",
        "SubspaceAlignment",
        "TransferComponentAnalysis",
        "JointDistributionAdaptation",
    ]
    source_only = SourceOnly(nearest).fit(X, y, sample_domain=domain)
    assert selector.score(Xt, yt) >= source_only.score(Xt, yt) - 0.01
    # the candidates' own estimators decide, each of a grid alike
    candidates = [
        CORAL(nearest),
        KMM(nearest),
        KLIEP(),  # its own estimator, the default logistic regression, takes weights
        (KLIEP(nearest), {"gamma": [0.1, 1.0]}),
    ]
    with pytest.warns(UserWarning, match=r"skips KMM, KLIEP\(gamma=0\.1\), KLIEP\(gamma=1\.0\):"):
        selector = AdaptationSelector(nearest, candidates=candidates, cv=3, random_state=0)
        selector.fit(X, y, sample_domain=domain)
    assert selector.cv_results_["name"] == ["source-only", "CORAL", "KLIEP"]
