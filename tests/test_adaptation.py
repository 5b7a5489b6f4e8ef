"""Domain adaptation: each method beats source-only on the shift it is built for."""

import subprocess
import sys
import textwrap
import tracemalloc
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from sktransfer import PretrainedFeatureExtractor
from sktransfer.adaptation import (
    CORAL,
    KLIEP,
    KMM,
    DiscriminatorReweight,
    JointDistributionAdaptation,
    OTMapping,
    SubspaceAlignment,
    TrAdaBoost,
    TransferComponentAnalysis,
    _memory,
    _ot,
    _reweight,
    split_domains,
)

ALL_METHODS = [
    CORAL,
    SubspaceAlignment,
    TransferComponentAnalysis,
    JointDistributionAdaptation,
    OTMapping,
    KMM,
    KLIEP,
    DiscriminatorReweight,
]

SEEDS = (0, 1, 2)


# --- generated shifts ------------------------------------------------------------------------
def covariate_shift(seed, n=200):
    """Same labelling rule (a parabola), the target where the source is sparse."""
    rng = np.random.default_rng(seed)

    def label(X):
        return (X[:, 1] > 0.5 * X[:, 0] ** 2 - 1).astype(int)

    Xs = rng.normal([0, 0.5], [1.2, 1.5], size=(n, 2))
    Xt = rng.normal([2.0, 1.5], [0.4, 1.0], size=(n, 2))
    return Xs, label(Xs), Xt, label(Xt)


def linear_map(seed, n=200):
    """The target is the source seen through a linear re-scaling (and a shift)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=5)
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    A = Q @ np.diag([4, 2, 1, 0.5, 0.25]) @ Q.T
    Xs, X0 = rng.normal(size=(n, 5)), rng.normal(size=(n, 5))
    return Xs, (Xs @ w > 0).astype(int), X0 @ A + 3, (X0 @ w > 0).astype(int)


def rotated_subspace(seed, n=200, angle=np.pi / 3):
    """Data on a 2-D subspace of a 5-D space; the target's subspace is rotated."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(5, 5)))[0][:2]
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    c, s = np.cos(angle), np.sin(angle)
    R = np.eye(5)
    R[[0, 0, 2, 2], [0, 2, 0, 2]] = [c, -s, s, c]
    R[[1, 1, 3, 3], [1, 3, 1, 3]] = [c, -s, s, c]
    w = np.array([1.0, 0.5])
    Zs, Zt = rng.normal(size=(n, 2)) * [3, 1], rng.normal(size=(n, 2)) * [3, 1]
    Xs = Zs @ basis + 0.1 * rng.normal(size=(n, 5))
    Xt = Zt @ basis @ (Q @ R @ Q.T) + 0.1 * rng.normal(size=(n, 5)) + 1
    return Xs, (Zs @ w > 0).astype(int), Xt, (Zt @ w > 0).astype(int)


def mean_shift(seed, n=150):
    rng = np.random.default_rng(seed)
    w = np.array([1.0, 0.5])
    Xs, X0 = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    return Xs, (Xs @ w > 0).astype(int), X0 + [1.5, -1.5], (X0 @ w > 0).astype(int)


def rotated_classes(seed, n=200, degrees=70):
    """Two classes apart along one axis; the target's plane is rotated by 70 degrees.

    The domain means agree (both zero), so that only the class-conditional means tell
    how the target moved.
    """
    rng = np.random.default_rng(seed)
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    R = np.eye(4)
    R[:2, :2] = [[c, -s], [s, c]]
    ys, yt = rng.integers(0, 2, n), rng.integers(0, 2, n)
    means = np.array([[-2.0, 0, 0, 0], [2.0, 0, 0, 0]])
    Xs = means[ys] + rng.normal(size=(n, 4)) * [0.7, 2, 1, 1]
    Xt = (means[yt] + rng.normal(size=(n, 4)) * [0.7, 2, 1, 1]) @ R.T
    return Xs, ys, Xt, yt


def appearance(seed, n=15, d=200, k=3):
    """Few rows, many features, three classes; every target feature re-scaled and offset.

    Pretrained features of photos under another camera look like this: more features than
    rows, and a shift of every feature.
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d))
    ys, yt = np.arange(n) % k, np.arange(n) % k
    Xs = means[ys] + rng.normal(size=(n, d))
    scale = rng.uniform(0.3, 1.0, d)
    Xt = (means[yt] + rng.normal(size=(n, d))) * scale + rng.normal(size=d)
    return Xs, ys, Xt + 0.5 * rng.normal(size=(n, d)), yt


def stack(Xs, ys, Xt):
    return np.vstack([Xs, Xt]), np.r_[ys, -np.ones(len(Xt), dtype=int)]


def gain(make_method, generator):
    """Mean accuracy on the target over seeds: (method, source-only)."""
    ours, base = [], []
    for seed in SEEDS:
        Xs, ys, Xt, yt = generator(seed)
        X, y = stack(Xs, ys, Xt)
        ours.append(make_method().fit(X, y).score(Xt, yt))
        base.append(LogisticRegression(max_iter=1000).fit(Xs, ys).score(Xt, yt))
    return np.mean(ours), np.mean(base)


@pytest.mark.parametrize(
    "make_method, generator, margin",
    [
        (lambda: SubspaceAlignment(n_components=2), rotated_subspace, 0.05),
        (
            lambda: TransferComponentAnalysis(kernel="rbf", n_components=2, gamma=0.1),
            mean_shift,
            0.03,
        ),
    ],
    ids=["SA", "TCA-rbf"],
)
def test_method_beats_source_only_on_its_shift(make_method, generator, margin):
    adapted, source_only = gain(make_method, generator)
    assert adapted >= source_only + margin, (adapted, source_only)


@pytest.mark.parametrize(
    "make_method, generator, margin",
    [
        (KMM, covariate_shift, 0.15),
        (lambda: KLIEP(random_state=0), covariate_shift, 0.15),
        (DiscriminatorReweight, covariate_shift, 0.2),
        (CORAL, linear_map, 0.15),
        (SubspaceAlignment, rotated_subspace, 0.05),
        (TransferComponentAnalysis, mean_shift, 0.1),
        (JointDistributionAdaptation, rotated_classes, 0.1),
        (OTMapping, mean_shift, 0.15),
    ],
    ids=["KMM", "KLIEP", "Discriminator", "CORAL", "SA", "TCA", "JDA", "OT"],
)
def test_defaults_beat_source_only_on_the_shift_each_method_is_built_for(
    make_method, generator, margin
):
    adapted, source_only = gain(make_method, generator)
    assert adapted >= source_only + margin, (adapted, source_only)


def test_defaults_stay_above_chance_with_more_features_than_rows():
    """Three classes, 15 rows per domain, 200 features: every method well above 1/3."""

    def classifier():
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))

    for method in ALL_METHODS:
        scores = []
        for seed in range(2):
            Xs, ys, Xt, yt = appearance(seed)
            model = method(classifier()).fit(*stack(Xs, ys, Xt))
            scores.append(model.score(Xt, yt))
        assert np.mean(scores) >= 0.45, (method.__name__, scores)


def test_tca_and_jda_dimensions_follow_the_data():
    """A tenth of the rows, at most 100, and room to leave the mean differences out."""
    Xs, ys, Xt, _ = linear_map(0, n=60)  # 120 rows, 5 features, 2 classes
    X, y = stack(Xs, ys, Xt)
    assert TransferComponentAnalysis().fit(X, y).components_.shape == (5, 4)
    assert TransferComponentAnalysis(kernel="rbf").fit(X, y).components_.shape == (120, 12)
    # JDA matches three means (the domains', one per class): 5 - 3 features are left
    assert JointDistributionAdaptation().fit(X, y).components_.shape == (5, 2)
    Xs, ys, Xt, _ = appearance(0, n=150, d=300)
    assert TransferComponentAnalysis().fit(*stack(Xs, ys, Xt)).components_.shape == (300, 30)
    Xs, ys, Xt, _ = appearance(0, n=600, d=300)
    assert TransferComponentAnalysis().fit(*stack(Xs, ys, Xt)).components_.shape == (300, 100)


@pytest.mark.parametrize("n_components", [None, 5, 29, 40])
def test_more_features_than_rows_solved_in_the_rows_span_gives_the_same_components(
    n_components, monkeypatch
):
    """30 rows, 200 features: the 30-sized problem finds the input space's components."""
    import sktransfer.adaptation._subspace as subspace

    Xs, ys, Xt, yt = appearance(0, n=15, d=200)
    X, y = stack(Xs, ys, Xt)
    solve = subspace._ComponentAnalysis._solve
    sizes = []

    def recording(self, rows, E, reduce=True):
        sizes.append((reduce, rows.shape))
        return solve(self, rows, E, reduce)

    for method in (TransferComponentAnalysis, JointDistributionAdaptation):
        fits = {}
        for reduce in (True, False):
            monkeypatch.setattr(
                subspace._ComponentAnalysis,
                "_solve",
                lambda self, rows, E, reduce=reduce: recording(self, rows, E, reduce),
            )
            fits[reduce] = method(n_components=n_components).fit(X, y)
        reduced, full = fits[True], fits[False]
        np.testing.assert_allclose(reduced.transform(Xt), full.transform(Xt), atol=1e-8)
        assert reduced.mu_ == pytest.approx(full.mu_)
        assert reduced.score(Xt, yt) == full.score(Xt, yt)
        if method is JointDistributionAdaptation:  # the pseudo-labels of every round agree
            np.testing.assert_array_equal(reduced.pseudo_labels_, full.pseudo_labels_)
    assert all(shape == (30, 200) for _, shape in sizes)
    assert sizes[0][0]  # the reduced problem was asked for first


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_tca_and_jda_defaults_do_not_depend_on_the_scale_of_the_features(kernel):
    """mu=None scales with the data: 1000 times the features, the same components."""
    Xs, ys, Xt, _ = mean_shift(0, n=60)
    X, y = stack(Xs, ys, Xt)
    for method in (TransferComponentAnalysis, JointDistributionAdaptation):
        small = method(kernel=kernel, n_components=1).fit(X, y)
        large = method(kernel=kernel, n_components=1).fit(1000 * X, y)
        np.testing.assert_allclose(large.components_, small.components_, atol=1e-8)
        embedded = large.transform(1000 * Xt) / (1000 if kernel == "linear" else 1)
        np.testing.assert_allclose(embedded, small.transform(Xt), atol=1e-8)


def test_jda_first_round_is_tca():
    Xs, ys, Xt, _ = rotated_classes(0, n=80)
    X, y = stack(Xs, ys, Xt)
    jda = JointDistributionAdaptation(n_iter=1, n_components=2).fit(X, y)
    tca = TransferComponentAnalysis(n_components=2).fit(X, y)
    np.testing.assert_allclose(jda.transform(Xt), tca.transform(Xt), atol=1e-10)
    # the same weight on the mean difference, which JDA's M counts once per class (two)
    assert 2 * jda.mu_ == pytest.approx(tca.mu_)
    assert jda.pseudo_labels_.shape == (0,)


def test_jda_aligns_the_classes_where_tca_cannot():
    """The domains' means agree; only the pseudo-labelled class means show the rotation."""
    jda, source_only = gain(JointDistributionAdaptation, rotated_classes)
    tca, _ = gain(TransferComponentAnalysis, rotated_classes)
    assert jda >= tca + 0.04 and jda >= source_only + 0.1, (jda, tca, source_only)


def test_jda_keeps_the_labels_of_labelled_target_rows_and_takes_any_kernel():
    Xs, ys, Xt, yt = rotated_classes(0, n=80)
    X = np.vstack([Xs, Xt])
    y = np.r_[ys, yt[:10], -np.ones(70, int)]  # ten target rows labelled
    domain = np.r_[np.ones(80, int), -np.ones(80, int)]
    jda = JointDistributionAdaptation(n_iter=3).fit(X, y, sample_domain=domain)
    np.testing.assert_array_equal(jda.pseudo_labels_[:10], yt[:10])
    assert jda.pseudo_labels_.shape == (80,)
    rbf = JointDistributionAdaptation(kernel="rbf", n_iter=2).fit(X, y, sample_domain=domain)
    assert rbf.X_fit_.shape == (160, 4) and rbf.gamma_ > 0
    assert rbf.transform(Xt[:3]).shape == (3, rbf.components_.shape[1])


def test_predict_with_sample_domain_maps_source_rows_as_source_rows():
    Xs, ys, Xt, _ = linear_map(0)
    coral = CORAL().fit(*stack(Xs, ys, Xt))
    as_source = coral.predict_proba(Xs, sample_domain=np.ones(200, int))
    expected = coral.estimator_.predict_proba((Xs - coral.mean_source_) @ coral.mapping_)
    np.testing.assert_allclose(as_source, expected)
    np.testing.assert_allclose(
        coral.predict_proba(Xt, sample_domain=-np.ones(200, int)), coral.predict_proba(Xt)
    )


def test_kmm_defaults_converge():
    Xs, ys, Xt, _ = covariate_shift(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sklearn.exceptions.ConvergenceWarning)
        kmm = KMM().fit(*stack(Xs, ys, Xt))
    assert kmm.n_iter_ < kmm.max_iter


def test_kliep_chooses_its_kernel_width_by_likelihood_by_default():
    """Sugiyama et al.'s likelihood cross-validation, around the median heuristic."""
    from scipy.spatial.distance import pdist

    Xs, ys, Xt, yt = covariate_shift(0)
    X, y = stack(Xs, ys, Xt)
    chosen = KLIEP(random_state=0).fit(X, y)
    median = 1 / np.median(pdist(X, "sqeuclidean"))
    factors = np.array([0.1, 0.3, 1, 3, 10])
    assert chosen.cv_log_likelihood_.shape == (5,)
    best = factors[np.argmax(chosen.cv_log_likelihood_)]
    assert chosen.gamma_ == pytest.approx(median * best)
    assert chosen.score(Xt, yt) >= KLIEP(gamma=None, random_state=0).fit(X, y).score(Xt, yt)


def test_discriminator_weights_come_out_of_fold():
    """A 1-nearest-neighbour discriminator calls every source row a source row in-sample."""
    from scipy.stats import norm, spearmanr
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    Xs, Xt = rng.normal(0, 1, size=(300, 1)), rng.normal(1, 1, size=(300, 1))
    X, y = stack(Xs, (Xs[:, 0] > 0).astype(int), Xt)
    nearest = KNeighborsClassifier(n_neighbors=1)
    in_sample = DiscriminatorReweight(discriminator=nearest, cv=None).fit(X, y).weights_
    assert np.ptp(in_sample) == 0  # all equal: they say nothing
    true = norm.pdf(Xs[:, 0], 1, 1) / norm.pdf(Xs[:, 0], 0, 1)
    out_of_fold = DiscriminatorReweight(discriminator=nearest).fit(X, y).weights_
    assert spearmanr(out_of_fold, true)[0] > 0.3  # 0 or 1 nearest target row: coarse
    assert np.corrcoef(DiscriminatorReweight().fit(X, y).weights_, true)[0, 1] > 0.95


def test_sa_dimension_follows_the_data():
    Xs, ys, Xt, _ = rotated_subspace(0)  # a 2-D plane in 5-D, with a little noise
    sa = SubspaceAlignment().fit(*stack(Xs, ys, Xt))
    assert sa.alignment_.shape == (2, 2)
    assert SubspaceAlignment(n_components=0.999).fit(*stack(Xs, ys, Xt)).alignment_.shape[0] > 2


def test_ot_mapping_transports_new_source_rows_and_keeps_target_rows():
    Xs, ys, Xt, yt = mean_shift(0, n=80)
    ot = OTMapping().fit(*stack(Xs, ys, Xt))
    moved = ot.transform(Xs, sample_domain=np.ones(80, int))
    # the source rows now sit where the target rows are; target rows stay as they are
    assert np.linalg.norm(moved.mean(axis=0) - Xt.mean(axis=0)) < 0.2
    np.testing.assert_array_equal(ot.transform(Xt), Xt)
    new = Xs[:5] + 1e-9
    np.testing.assert_allclose(ot.transform(new, sample_domain=np.ones(5, int)), moved[:5])


def test_ot_mapping_with_an_underflowed_plan_says_which_parameter_to_change():
    Xs, ys, Xt, _ = mean_shift(0, n=60)
    X, y = stack(Xs, ys, Xt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the plan's marginals are off, which it also says
        with pytest.raises(ValueError, match=r"reg_e=0\.0001.*underflowed.*raise reg_e\.$"):
            OTMapping(method="sinkhorn", reg_e=1e-4).fit(X, y)
    moved = (
        OTMapping(method="sinkhorn", reg_e=0.1).fit(X, y).transform(Xs, sample_domain=ys * 0 + 1)
    )
    assert np.isfinite(moved).all()  # the default weight transports every row


def test_ot_mapping_without_pot_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ot", None)
    monkeypatch.setitem(sys.modules, "ot.da", None)
    Xs, ys, Xt, _ = mean_shift(0, n=20)
    with pytest.raises(ImportError, match=r"pip install 'sktransfer\[ot\]'"):
        OTMapping().fit(*stack(Xs, ys, Xt))


def test_tradaboost_uses_a_few_labelled_target_rows():
    """Half the source follows another labelling rule; 20 labelled target rows say which."""
    scores = {"tradaboost": [], "pooled": [], "target only": []}
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        Xs = rng.normal(size=(300, 2))
        ys = np.where(np.arange(300) < 150, Xs[:, 0] > 0, Xs[:, 1] > 0).astype(int)
        Xt = rng.normal(size=(220, 2))
        yt = (Xt[:, 0] > 0).astype(int)
        X = np.vstack([Xs, Xt[:20]])
        y = np.r_[ys, yt[:20]]
        domain = np.r_[np.ones(300, int), -np.ones(20, int)]
        booster = TrAdaBoost(n_estimators=10).fit(X, y, sample_domain=domain)
        scores["tradaboost"].append(booster.score(Xt[20:], yt[20:]))
        pooled = LogisticRegression().fit(X, y)
        scores["pooled"].append(pooled.score(Xt[20:], yt[20:]))
        target = LogisticRegression().fit(Xt[:20], yt[:20])
        scores["target only"].append(target.score(Xt[20:], yt[20:]))
    means = {k: np.mean(v) for k, v in scores.items()}
    assert means["tradaboost"] >= means["pooled"] + 0.1, means
    assert means["tradaboost"] >= means["target only"], means


def test_discriminator_weights_follow_the_true_density_ratio():
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    Xs, Xt = rng.normal(0, 1, size=(500, 1)), rng.normal(1, 1, size=(500, 1))
    X, y = stack(Xs, (Xs[:, 0] > 0).astype(int), Xt)
    weights = DiscriminatorReweight().fit(X, y).weights_
    true = norm.pdf(Xs[:, 0], 1, 1) / norm.pdf(Xs[:, 0], 0, 1)
    assert np.corrcoef(weights, true)[0, 1] > 0.95
    np.testing.assert_allclose(weights.mean(), 1)


def test_feature_methods_transform_rows_into_the_shared_space():
    Xs, ys, Xt, _ = linear_map(0)
    X, y = stack(Xs, ys, Xt)
    coral = CORAL()
    shared = coral.fit_transform(X, y)
    assert shared.shape == X.shape
    # the source rows now have the target's covariance
    cov_source, cov_target = np.cov(shared[:200].T), np.cov(shared[200:].T)
    assert np.linalg.norm(cov_source - cov_target) < 0.1 * np.linalg.norm(cov_target)
    np.testing.assert_allclose(coral.transform(Xt), Xt - Xt.mean(axis=0))
    sa = SubspaceAlignment(n_components=3).fit(X, y)
    assert sa.transform(Xt).shape == (200, 3)
    tca = TransferComponentAnalysis(n_components=4).fit(X, y)
    assert tca.transform(Xt[:5]).shape == (5, 4)


def test_string_labels_and_explicit_sample_domain():
    Xs, ys, Xt, yt = linear_map(1)
    names = np.array(["no", "yes"], dtype=object)
    y = np.r_[names[ys], np.full(len(Xt), -1, dtype=object)]
    model = CORAL().fit(np.vstack([Xs, Xt]), y)
    assert set(model.predict(Xt)) <= {"no", "yes"}
    domain = np.r_[np.ones(len(Xs), int), -np.ones(len(Xt), int)]
    with_domain = CORAL().fit(np.vstack([Xs, Xt]), y, sample_domain=domain)
    np.testing.assert_array_equal(with_domain.predict(Xt), model.predict(Xt))
    assert model.score(Xt, names[yt]) > 0.8


def test_score_uses_labelled_rows_only():
    Xs, ys, Xt, yt = linear_map(0)
    X, y = stack(Xs, ys, Xt)
    model = CORAL().fit(X, y)
    mixed_y = np.r_[yt[:100], -np.ones(100, int)]
    assert model.score(Xt, mixed_y) == model.score(Xt[:100], yt[:100])


def test_grid_search_over_the_method_and_the_wrapped_estimator():
    Xs, ys, Xt, yt = linear_map(0)
    X, y = stack(Xs, ys, Xt)
    # score on labelled target rows: a few target labels are the validation data
    y_eval = y.copy()
    y_eval[200:230] = yt[:30]
    domain = np.r_[np.ones(200, int), -np.ones(200, int)]
    search = GridSearchCV(
        CORAL(LogisticRegression(max_iter=1000)),
        {"reg": [0.0, 0.1, "auto"], "estimator__C": [0.1, 1.0]},
        cv=2,
    )
    search.fit(X, y_eval, sample_domain=domain)
    assert len(search.cv_results_["params"]) == 6
    assert search.best_estimator_.score(Xt, yt) > 0.8


@pytest.mark.parametrize("method", [CORAL, JointDistributionAdaptation, KMM])
def test_refit_after_set_params_fits_the_estimator_as_now_set(method):
    """A second fit follows set_params: it does not reuse the first fit's estimator."""
    Xs, ys, Xt, _ = mean_shift(0, n=60)
    X, y = stack(Xs, ys, Xt)
    domain = np.r_[np.ones(len(Xs), int), -np.ones(len(Xt), int)]
    model = method(LogisticRegression(C=1.0)).fit(X, y, sample_domain=domain)
    model.set_params(estimator__C=1e-3).fit(X, y, sample_domain=domain)
    fresh = method(LogisticRegression(C=1e-3)).fit(X, y, sample_domain=domain)
    assert model.estimator_.C == 1e-3
    np.testing.assert_allclose(model.estimator_.coef_, fresh.estimator_.coef_)
    model.set_params(estimator=LinearSVC()).fit(X, y, sample_domain=domain)
    assert isinstance(model.estimator_, LinearSVC)


@pytest.fixture(scope="module")
def photo_domains(crops):
    """Colour crops (source) and grey, low-contrast crops of other views (target)."""
    X, y = crops
    grey = X.mean(axis=3, keepdims=True).repeat(3, axis=3) * 0.6 + 50
    source, target = np.arange(0, 24, 2), np.arange(1, 24, 2)
    X_all = np.concatenate([X[source], grey[target].astype(np.uint8)])
    y_all = np.r_[y[source], np.full(len(target), -1, dtype=object)].astype(object)
    return X_all, y_all, grey[target].astype(np.uint8), y[target]


def test_pipeline_after_the_extractor_routes_sample_domain(photo_domains):
    X, y, X_target, y_target = photo_domains
    domain = np.r_[np.ones(12, int), -np.ones(12, int)]
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(
            PretrainedFeatureExtractor(image_size=64),
            CORAL(reg=0.5).set_fit_request(sample_domain=True),
        )
        pipe.fit(X, y, sample_domain=domain)
    features = pipe[0].transform(X_target)
    coral = pipe[-1]
    assert coral.score(features, y_target) >= 0.75
    # sample_domain reached CORAL: its target statistics are those of the target images
    np.testing.assert_allclose(coral.mean_target_, features.mean(axis=0), rtol=1e-4, atol=1e-6)


def test_sample_domain_by_step_name_without_metadata_routing():
    Xs, ys, Xt, yt = linear_map(0)
    X, y = stack(Xs, ys, Xt)
    # the target rows carry labels here; only sample_domain says they are target rows
    y_labelled = np.r_[ys, yt]
    domain = np.r_[np.ones(200, int), -np.ones(200, int)]
    pipe = make_pipeline(StandardScaler(), CORAL())
    pipe.fit(X, y_labelled, coral__sample_domain=domain)
    inferred = make_pipeline(StandardScaler(), CORAL()).fit(X, y)
    np.testing.assert_allclose(pipe[-1].mean_target_, inferred[-1].mean_target_)


def test_weights_reach_a_wrapped_pipeline_with_metadata_routing_on():
    Xs, ys, Xt, yt = covariate_shift(0)
    X, y = stack(Xs, ys, Xt)
    domain = np.r_[np.ones(200, int), -np.ones(200, int)]
    inner = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    plain = KMM(inner, tol=1e-4).fit(X, y)  # a loose tol: quick, and converged
    with sklearn.config_context(enable_metadata_routing=True):
        routed = KMM(inner, tol=1e-4).set_fit_request(sample_domain=True)
        routed = make_pipeline(StandardScaler(with_mean=False, with_std=False), routed)
        routed.fit(X, y, sample_domain=domain)
    np.testing.assert_allclose(routed.predict_proba(Xt), plain.predict_proba(Xt))
    assert plain.score(Xt, yt) > LogisticRegression().fit(Xs, ys).score(Xt, yt) + 0.1


# --- what a user relies on -------------------------------------------------------------------
def test_without_target_rows_a_method_fits_like_its_estimator_with_a_warning():
    Xs, ys, _, _ = linear_map(0)
    alone = LogisticRegression(max_iter=1000).fit(Xs, ys)
    for method in [CORAL, SubspaceAlignment, KMM, DiscriminatorReweight]:
        with pytest.warns(UserWarning, match="No target rows to adapt to"):
            model = method().fit(Xs, ys)
        np.testing.assert_allclose(model.predict_proba(Xs), alone.predict_proba(Xs), atol=2e-3)
    # KLIEP estimates the density ratio of 1 with some noise
    with pytest.warns(UserWarning, match="No target rows to adapt to"):
        kliep = KLIEP(random_state=0).fit(Xs, ys)
    assert np.mean(kliep.predict(Xs) == alone.predict(Xs)) >= 0.95
    # TCA's components are a feature map of their own (a PCA here): the domains' means
    # agree, so that n_components=None keeps all 5 features
    with pytest.warns(UserWarning, match="No target rows to adapt to"):
        assert TransferComponentAnalysis().fit(Xs, ys).transform(Xs).shape == (200, 5)


def test_the_no_target_warning_points_at_the_callers_line():
    Xs, ys, _, _ = linear_map(0, n=40)
    calls = [
        lambda: CORAL().fit(Xs, ys),
        lambda: CORAL().fit_transform(Xs, ys),
        lambda: KMM().fit_weights(Xs, ys),
        lambda: TrAdaBoost().fit(Xs, ys),
        lambda: split_domains(ys),
    ]
    for call in calls:
        with pytest.warns(UserWarning, match="No target rows to adapt to") as record:
            call()
        assert [w.filename for w in record] == [__file__]


def test_density_ratio_needs_a_fit():
    for method in (KLIEP(), DiscriminatorReweight()):
        with pytest.raises(sklearn.exceptions.NotFittedError):
            method.density_ratio(np.zeros((2, 2)))


def test_fit_weights_without_an_estimator():
    Xs, ys, Xt, yt = covariate_shift(0)
    X = np.vstack([Xs, Xt])
    domain = np.r_[np.ones(200, int), -np.ones(200, int)]
    weighter = DiscriminatorReweight()
    weights = weighter.fit_weights(X, sample_domain=domain)  # no labels needed
    np.testing.assert_allclose(weights[200:], 1)
    np.testing.assert_allclose(weights[:200], weighter.weights_)
    model = LogisticRegression().fit(Xs, ys, sample_weight=weights[:200])
    assert model.score(Xt, yt) > LogisticRegression().fit(Xs, ys).score(Xt, yt) + 0.15
    with pytest.raises(sklearn.exceptions.NotFittedError):
        weighter.predict(Xt)


def test_gamma_none_is_the_median_heuristic_in_every_kernel_method():
    """gamma=None: 1 / the median squared distance between the rows of fit, in each method."""
    from scipy.spatial.distance import pdist

    Xs, ys, Xt, _ = covariate_shift(0, n=100)
    X, y = stack(Xs, ys, Xt)
    gamma = 1 / np.median(pdist(X, "sqeuclidean"))
    kmm, kmm_given = KMM().fit(X, y), KMM(gamma=gamma).fit(X, y)
    assert kmm.gamma_ == pytest.approx(gamma)
    np.testing.assert_allclose(kmm.weights_, kmm_given.weights_)
    assert KLIEP(gamma=None, random_state=0).fit(X, y).gamma_ == pytest.approx(gamma)
    tca = TransferComponentAnalysis(kernel="rbf", n_components=2).fit(X, y)
    tca_given = TransferComponentAnalysis(kernel="rbf", n_components=2, gamma=gamma).fit(X, y)
    assert tca.gamma_ == pytest.approx(gamma)
    np.testing.assert_allclose(tca.transform(Xt), tca_given.transform(Xt))
    # more than 1000 rows: every third row of the 2400 (evenly spaced, no randomness)
    Xs, ys, Xt, _ = covariate_shift(1, n=1200)
    X, y = stack(Xs, ys, Xt)
    kliep = KLIEP(gamma=None, n_centers=5, max_iter=2, random_state=0).fit(X, y)
    assert kliep.gamma_ == pytest.approx(1 / np.median(pdist(X[::3], "sqeuclidean")))


def test_tca_mu_weighs_the_mean_discrepancy_as_in_skada():
    """A larger mu brings the domain means closer in the shared space."""
    Xs, ys, Xt, _ = mean_shift(0, n=60)
    X, y = stack(Xs, ys, Xt)
    gaps = []
    for mu in (0.01, 1.0, 100.0):
        shared = TransferComponentAnalysis(kernel="rbf", n_components=2, mu=mu).fit_transform(X, y)
        gap = np.linalg.norm(shared[:60].mean(axis=0) - shared[60:].mean(axis=0))
        gaps.append(gap / shared.std(axis=0).mean())
    assert gaps[0] > gaps[1] > gaps[2], gaps


def test_kliep_chooses_the_kernel_width_by_likelihood():
    Xs, ys, Xt, _ = covariate_shift(0)
    X, y = stack(Xs, ys, Xt)
    model = KLIEP(gamma=[1e-4, 0.5, 1e4], random_state=0).fit(X, y)
    assert model.gamma_ == 0.5
    assert model.cv_log_likelihood_.shape == (3,)
    # a new row where the target lives weighs more than one where it does not
    ratio = model.density_ratio([[2.0, 1.5], [-2.0, 0.5]])
    assert ratio[0] > 10 * ratio[1]


def test_tradaboost_with_a_classifier_without_predict_proba():
    rng = np.random.default_rng(0)
    Xs, Xt = rng.normal(size=(200, 2)), rng.normal(size=(120, 2))
    ys = np.where(np.arange(200) < 100, Xs[:, 0] > 0, Xs[:, 1] > 0).astype(int)
    yt = (Xt[:, 0] > 0).astype(int)
    X, y = np.vstack([Xs, Xt[:20]]), np.r_[ys, yt[:20]]
    domain = np.r_[np.ones(200, int), -np.ones(20, int)]
    booster = TrAdaBoost(LinearSVC()).fit(X, y, sample_domain=domain)
    assert not hasattr(booster, "predict_proba")
    assert booster.score(Xt[20:], yt[20:]) > 0.85


def test_minus_one_among_string_labels_is_the_placeholder():
    # numpy stacks -1 with strings as "-1"; that still marks an unlabelled row
    y = np.r_[np.array(["cat", "dog"]), [-1]]
    assert y.dtype.kind == "U"
    np.testing.assert_array_equal(split_domains(y).target, [False, False, True])


def test_source_classes_and_minus_one_stacked_or_shuffled_are_read_with_a_warning():
    """The common usage: source labelled 0..K-1, target rows -1, in any order.

    No rule on ``y`` tells it from a class called -1 (sentiment -1, 0, 1), so how ``y`` was
    read is said in a warning; ``sample_domain`` says it explicitly and fits silently.
    """
    rng = np.random.default_rng(0)
    Xs, ys, Xt, yt = linear_map(0)
    X = np.vstack([Xs, Xt])
    y3 = np.r_[np.digitize(Xs[:, 0], [-0.5, 0.5]), -np.ones(200, int)]  # 3 classes
    order = rng.permutation(400)
    domain = np.where(order >= 200, -1, 1)
    for y in (stack(Xs, ys, Xt)[1], y3):
        with pytest.warns(UserWarning, match="y = -1 is read as 'unlabelled target row'"):
            np.testing.assert_array_equal(split_domains(y[order]).target, order >= 200)
        with pytest.warns(UserWarning, match="If -1 is one of your classes"):
            CORAL().fit(X[order], y[order])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            CORAL().fit(X[order], y[order], sample_domain=domain)
            KMM(tol=1e-4).fit_weights(X[order], y[order], sample_domain=domain)


# --- bad input -------------------------------------------------------------------------------
@pytest.fixture()
def data():
    Xs, ys, Xt, _ = linear_map(0, n=40)
    return Xs, ys, Xt


def test_no_target_rows(data):
    Xs, ys, _ = data
    for method in ALL_METHODS + [TrAdaBoost]:
        with pytest.raises(ValueError, match="No target rows: sample_domain has no negative"):
            method().fit(Xs, ys, sample_domain=np.ones(len(Xs), int))


def test_no_source_rows(data):
    _, _, Xt = data
    with pytest.raises(ValueError, match="No source rows"):
        CORAL().fit(Xt, np.zeros(40, int), sample_domain=-np.ones(40, int))


def test_no_labelled_source_rows(data):
    """One message, whether the domains come from sample_domain or from y."""
    Xs, _, Xt = data
    X, y = np.vstack([Xs, Xt]), -np.ones(80, int)
    domain = np.r_[np.ones(40, int), -np.ones(40, int)]
    messages = set()
    for method in ALL_METHODS + [TrAdaBoost]:
        for fit_params in ({"sample_domain": domain}, {}):
            with pytest.raises(ValueError, match="No labelled source rows") as error:
                method().fit(X, y, **fit_params)
            messages.add(str(error.value))
    with pytest.raises(ValueError, match="No labelled source rows") as error:
        KMM().fit_weights(X, y)
    messages.add(str(error.value))
    assert len(messages) == 1, messages


def test_single_class(data):
    Xs, _, Xt = data
    X, y = stack(Xs, np.zeros(40, int), Xt)
    for method in ALL_METHODS:
        with pytest.raises(ValueError, match="at least 2 classes.*only one class: \\[0\\]"):
            method().fit(X, y)


def test_labels_below_minus_one_make_minus_one_a_class(data):
    """Without sample_domain, -1 beside other negative labels is refused, as skada does."""
    Xs, _, Xt = data
    X = np.vstack([Xs, Xt])
    y = np.r_[np.tile([-2, -1, 0, 1, 2], 16)]
    message = r"y has labels below -1 \(\[-2\]\) beside y = -1"
    for method in ALL_METHODS + [TrAdaBoost]:
        with pytest.raises(ValueError, match=message):
            method().fit(X, y)
    for call in (lambda: split_domains(y), lambda: KMM().fit_weights(X, y)):
        with pytest.raises(ValueError, match=message):
            call()
    # the other side: sample_domain says which rows are target rows; without -1 in y there
    # is no placeholder to mistake (every row is then source and target, with a warning)
    domain = np.r_[np.ones(40, int), -np.ones(40, int)]
    CORAL().fit(X, y, sample_domain=domain)
    with pytest.warns(UserWarning, match="No target rows to adapt to"):
        CORAL().fit(X, np.tile([-2, 0, 2, 4], 20))


def test_labels_minus_one_and_one_say_that_minus_one_is_no_class(data):
    Xs, _, _ = data
    y = np.where(Xs[:, 0] > 0, 1, -1)
    message = r"only one class: \[1\]\. Rows with y = -1 are unlabelled"
    for method in ALL_METHODS + [TrAdaBoost]:
        with pytest.raises(ValueError, match=message):
            method().fit(Xs, y)


def test_sample_domain_of_the_wrong_length(data):
    Xs, ys, Xt = data
    X, y = stack(Xs, ys, Xt)
    for method in ALL_METHODS + [TrAdaBoost]:
        with pytest.raises(ValueError, match="sample_domain has 10 entries but X has 80 rows"):
            method().fit(X, y, sample_domain=np.ones(10, int))
    with pytest.raises(ValueError, match="sample_domain has 10 entries but X has 80 rows"):
        CORAL().fit(X, y).transform(X, sample_domain=np.ones(10, int))


def test_sample_domain_of_zero(data):
    Xs, ys, Xt = data
    X, y = stack(Xs, ys, Xt)
    with pytest.raises(ValueError, match="positive numbers .source. or negative numbers"):
        KMM().fit(X, y, sample_domain=np.zeros(80, int))


def test_tradaboost_without_labelled_target_rows(data):
    Xs, ys, Xt = data
    X, y = stack(Xs, ys, Xt)
    domain = np.r_[np.ones(40, int), -np.ones(40, int)]
    with pytest.raises(ValueError, match="TrAdaBoost needs labelled target rows"):
        TrAdaBoost().fit(X, y, sample_domain=domain)
    with pytest.raises(ValueError, match="TrAdaBoost needs labelled target rows"):
        TrAdaBoost().fit(X, y)  # without sample_domain, the labelled rows are source rows


def test_weighing_without_y_or_sample_domain(data):
    Xs, _, Xt = data
    with pytest.raises(ValueError, match="Give sample_domain .* or y"):
        KMM().fit_weights(np.vstack([Xs, Xt]))


def test_score_without_labelled_rows(data):
    Xs, ys, Xt = data
    X, y = stack(Xs, ys, Xt)
    with pytest.raises(ValueError, match="score needs labelled rows"):
        CORAL().fit(X, y).score(Xt, -np.ones(40, int))


# --- estimators without sample_weight, too few target rows ------------------------------------
WEIGHING_METHODS = [KMM, KLIEP, DiscriminatorReweight, TrAdaBoost]


@pytest.mark.parametrize("method", WEIGHING_METHODS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("in_pipeline", [False, True], ids=["bare", "pipeline"])
def test_weighing_with_an_estimator_without_sample_weight_says_so(data, method, in_pipeline):
    Xs, ys, Xt = data
    X, y = np.vstack([Xs, Xt]), np.r_[ys, np.zeros(len(Xt), int)]
    y[-20:] = -1  # 20 labelled target rows (for TrAdaBoost), 20 unlabelled ones
    domain = np.r_[np.ones(len(Xs), int), -np.ones(len(Xt), int)]
    estimator = KNeighborsClassifier()
    if in_pipeline:
        estimator = make_pipeline(StandardScaler(), estimator)
    where = "the last step of its Pipeline, " if in_pipeline else ""
    message = (
        rf"{method.__name__} weighs the rows it fits on, so its estimator's fit must take "
        rf"sample_weight; {where}KNeighborsClassifier's does not\. Wrap a classifier"
    )
    with pytest.raises(ValueError, match=message):
        method(estimator).fit(X, y, sample_domain=domain)


def test_weights_reach_the_last_step_of_a_pipeline_inside_a_pipeline():
    Xs, ys, Xt, yt = covariate_shift(0, n=100)
    X, y = stack(Xs, ys, Xt)
    flat = make_pipeline(StandardScaler(), StandardScaler(), LogisticRegression())
    nested = make_pipeline(StandardScaler(), make_pipeline(StandardScaler(), LogisticRegression()))
    a = KMM(flat, tol=1e-4).fit(X, y).predict_proba(Xt)
    b = KMM(nested, tol=1e-4).fit(X, y).predict_proba(Xt)
    np.testing.assert_allclose(a, b)
    unweighted = make_pipeline(StandardScaler(), LogisticRegression()).fit(Xs, ys)
    assert np.abs(b - unweighted.predict_proba(Xt)).max() > 0.01  # the weights did arrive


def test_discriminator_with_one_target_row_says_it_needs_two(data):
    Xs, ys, Xt = data
    X, y = stack(Xs, ys, Xt[:1])
    message = (
        "DiscriminatorReweight needs at least 2 source rows and 2 target rows to learn to tell "
        "the domains apart; got 40 source rows, 1 target row. Give more rows"
    )
    for cv in (5, None):
        with pytest.raises(ValueError, match=message):
            DiscriminatorReweight(cv=cv).fit(X, y)
    with pytest.raises(ValueError, match=message):
        DiscriminatorReweight().fit_weights(X, y)
    X, y = stack(Xs, ys, Xt[:2])
    assert np.isfinite(DiscriminatorReweight().fit(X, y).weights_).all()


@pytest.mark.parametrize("method", ["lpl1", "l1l2", "sinkhorn", "emd"])
def test_ot_mapping_with_one_distinct_target_row_refuses_rather_than_predict_one_class(
    data, method
):
    """Every source row would be transported onto that row, whatever its class."""
    Xs, ys, Xt = data
    message = "OTMapping needs at least 2 distinct target rows.*got 1"
    for target in (Xt[:1], np.repeat(Xt[:1], 5, axis=0)):
        with pytest.raises(ValueError, match=message):
            OTMapping(method=method).fit(*stack(Xs, ys, target))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # marginals off with 2 rows: not what is tested
        two = OTMapping(method=method).fit(*stack(Xs, ys, Xt[:2]))
    assert len(two.classes_) == 2


# --- memory: KMM and OTMapping check what they need before they allocate ----------------------
def test_kmm_refuses_a_kernel_larger_than_the_memory_available_before_computing_it(
    monkeypatch,
):
    Xs, ys, Xt, _ = covariate_shift(0, n=300)
    X, y = stack(Xs, ys, Xt)
    domain = np.r_[np.ones(300, int), -np.ones(300, int)]
    monkeypatch.setattr(_memory, "available_memory", lambda: 10**6)
    computed = []
    monkeypatch.setattr(_reweight, "kernel", lambda *args: computed.append(args))
    message = (
        r"^KMM with 300 source rows and 300 target rows needs about [0-9.]+ GB of memory, but "
        r"only 0\.001 GB is available\. Fit KMM on a random subsample of the source rows .*, "
        r"or use KLIEP or DiscriminatorReweight"
    )
    for fit in (KMM().fit, KMM().fit_weights):
        with pytest.raises(MemoryError, match=message):
            fit(X, y, sample_domain=domain)
    assert not computed  # refused before the kernel was computed
    monkeypatch.undo()
    monkeypatch.setattr(_memory, "available_memory", lambda: None)  # unknown: no check
    assert KMM(tol=1e-3).fit(X, y, sample_domain=domain).weights_.shape == (300,)


def traced_peak(fit):
    """Peak bytes that ``fit()`` allocates through Python's allocator (NumPy's arrays)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few iterations: not converged
        fit()  # once before measuring: imports and caches are not the method's peak
        tracemalloc.start()
        try:
            fit()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


@pytest.mark.parametrize("n_source, n_target", [(500, 200), (500, 500), (200, 900)])
def test_kmm_memory_estimate_covers_its_measured_peak(n_source, n_target):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(n_source, 8)), rng.normal(size=(n_target, 8)) + 0.5])
    domain = np.r_[np.ones(n_source, int), -np.ones(n_target, int)]
    peak = traced_peak(lambda: KMM(max_iter=5).fit_weights(X, sample_domain=domain))
    estimate = _reweight.kmm_memory(n_source, n_target)
    assert peak <= estimate <= 1.5 * peak, (peak, estimate)


@pytest.mark.parametrize("method", ["lpl1", "l1l2", "sinkhorn", "emd"])
def test_ot_mapping_memory_estimate_covers_its_measured_peak_and_is_checked(method, monkeypatch):
    Xs, ys, Xt, _ = mean_shift(0, n=300)
    X, y = stack(Xs, ys, Xt)
    domain = np.r_[np.ones(300, int), -np.ones(300, int)]
    peak = traced_peak(lambda: OTMapping(method=method).fit(X, y, sample_domain=domain))
    estimate = _ot.ot_memory(method, 300, 300)
    assert peak <= estimate <= 1.6 * peak, (peak, estimate)
    monkeypatch.setattr(_memory, "available_memory", lambda: estimate - 1)
    message = (
        rf"^OTMapping\(method='{method}'\) with 300 source rows and 300 target rows needs "
        r"about [0-9.]+ GB .* Fit on a random subsample"
    )
    with pytest.raises(MemoryError, match=message):
        OTMapping(method=method).fit(X, y, sample_domain=domain)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_kmm_under_ulimit_v_refuses_at_once_with_the_size_instead_of_a_bare_memory_error():
    """The failure reported: a memory limit, and a MemoryError deep in the kernel."""
    script = textwrap.dedent(
        """
        import resource
        import numpy as np
        from sktransfer.adaptation import KMM
        size = next(line for line in open("/proc/self/status") if line.startswith("VmSize"))
        X = np.random.default_rng(0).normal(size=(10000, 4))
        domain = np.r_[np.ones(8000, int), -np.ones(2000, int)]
        limit = int(size.split()[1]) * 1024 + 300 * 2**20  # 300 MiB more than in use
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        try:
            KMM().fit_weights(X, sample_domain=domain)
        except MemoryError as error:
            print(error)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.startswith("KMM with 8000 source rows and 2000 target rows needs about")
    assert "GB is available" in done.stdout


def test_available_memory_takes_the_cgroup_limit_counting_page_cache_as_free(
    tmp_path, monkeypatch
):
    (tmp_path / "memory.max").write_text("4000000000\n")
    (tmp_path / "memory.current").write_text("3500000000\n")
    (tmp_path / "memory.stat").write_text("anon 2500000000\ninactive_file 1000000000\n")
    files = (str(tmp_path / "memory.max"), str(tmp_path / "memory.current"), "inactive_file")
    monkeypatch.setattr(_memory, "_CGROUP_FILES", (files,))
    assert _memory.available_memory() <= 1_500_000_000
    (tmp_path / "memory.max").write_text("max\n")  # no limit: the system's memory
    assert _memory.available_memory() > 1_500_000_000 or _memory.available_memory() is None


# --- the same results as skada, where it implements the same method --------------------------
@pytest.fixture()
def shifted():
    rng = np.random.default_rng(0)
    Xs = rng.normal(size=(80, 4))
    Xt = rng.normal(size=(60, 4)) @ rng.normal(size=(4, 4)) + 1
    X = np.vstack([Xs, Xt])
    y = np.r_[(Xs[:, 0] > 0).astype(int), -np.ones(60, int)]
    domain = np.r_[np.ones(80, int), -2 * np.ones(60, int)]
    return X, y, domain, Xt


@pytest.mark.parametrize(
    "ours, theirs, atol",
    [
        (lambda: CORAL(reg=0.1), lambda sk, est: sk.CORAL(est, reg=0.1), 1e-8),
        (lambda: CORAL(), lambda sk, est: sk.CORAL(est), 1e-8),
        (
            lambda: SubspaceAlignment(n_components=3),
            lambda sk, est: sk.SubspaceAlignment(est, n_components=3),
            1e-8,
        ),
        # skada takes a symmetric eigensolver to a non-symmetric matrix, hence the
        # tolerance; its kernel has scikit-learn's default width, 1 / n_features
        (
            lambda: TransferComponentAnalysis(kernel="rbf", n_components=3, mu=0.1, gamma=0.25),
            lambda sk, est: sk.TransferComponentAnalysis(est, n_components=3, mu=0.1),
            0.02,
        ),
    ],
    ids=["CORAL-0.1", "CORAL-auto", "SA", "TCA"],
)
def test_same_predictions_as_skada(shifted, ours, theirs, atol):
    skada = pytest.importorskip("skada")
    X, y, domain, Xt = shifted
    a = ours().fit(X, y, sample_domain=domain).predict_proba(Xt)
    model = theirs(skada, LogisticRegression(max_iter=1000)).fit(X, y, sample_domain=domain)
    b = model.predict_proba(Xt, sample_domain=-2 * np.ones(len(Xt), int))
    np.testing.assert_allclose(a, b, atol=atol)


def test_tca_mu_means_what_skadas_mu_means():
    """The same mu, the same target accuracy on a mean shift: low at 0.1, high at 10."""
    skada = pytest.importorskip("skada")
    accuracy = {}
    for mu in (0.1, 10.0):  # skada's default, ours
        for library in ("ours", "skada"):
            scores = []
            for seed in SEEDS:
                Xs, ys, Xt, yt = mean_shift(seed, n=100)
                X, y = stack(Xs, ys, Xt)
                domain = np.r_[np.ones(100, int), -2 * np.ones(100, int)]
                # skada's kernel has scikit-learn's default width, 1 / n_features
                if library == "ours":
                    model = TransferComponentAnalysis(
                        kernel="rbf", n_components=2, gamma=0.5, mu=mu
                    )
                    predicted = model.fit(X, y, sample_domain=domain).predict(Xt)
                else:
                    model = skada.TransferComponentAnalysis(
                        LogisticRegression(max_iter=1000), n_components=2, mu=mu
                    )
                    model.fit(X, y, sample_domain=domain)
                    predicted = model.predict(Xt, sample_domain=-2 * np.ones(100, int))
                scores.append(np.mean(predicted == yt))
            accuracy[library, mu] = np.mean(scores)
    for mu in (0.1, 10.0):
        assert abs(accuracy["ours", mu] - accuracy["skada", mu]) <= 0.05, accuracy
    assert accuracy["ours", 10.0] >= accuracy["ours", 0.1] + 0.2, accuracy


def _kmm_objective(weights, X_source, X_target, gamma):
    from sklearn.metrics.pairwise import rbf_kernel

    ns, nt = len(X_source), len(X_target)
    kappa = rbf_kernel(X_source, X_target, gamma=gamma).sum(axis=1) * ns / nt
    return 0.5 * weights @ rbf_kernel(X_source, gamma=gamma) @ weights - kappa @ weights


def test_same_kmm_weights_as_skada(shifted):
    skada = pytest.importorskip("skada")
    X, y, domain, _ = shifted
    ours = KMM(gamma=0.5, tol=1e-8).fit(X, y, sample_domain=domain).weights_
    _, params = skada.KMMReweightAdapter(gamma=0.5, solver="scipy").fit_transform(
        X, y, sample_domain=domain
    )
    theirs = np.asarray(params["sample_weight"])[:80]
    np.testing.assert_allclose(ours, theirs / theirs.mean(), atol=5e-3)
    # the same quadratic programme, solved at least as well (weights rescaled to skada's sum)
    Xs, Xt = X[:80], X[80:]
    ours_objective = _kmm_objective(ours * theirs.mean(), Xs, Xt, 0.5)
    assert ours_objective <= _kmm_objective(theirs, Xs, Xt, 0.5) + 1e-6


def test_kliep_weights_agree_with_skada(shifted):
    skada = pytest.importorskip("skada")
    X, y, domain, _ = shifted
    ours = KLIEP(gamma=0.1, n_centers=60, random_state=0).fit(X, y, sample_domain=domain)
    _, params = skada.KLIEPReweightAdapter(gamma=0.1, n_centers=60, random_state=0).fit_transform(
        X, y, sample_domain=domain
    )
    theirs = np.asarray(params["sample_weight"])[:80]
    # skada draws its centres with replacement, so the kernel bases differ a little
    assert np.corrcoef(ours.weights_, theirs)[0, 1] > 0.9


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (
            lambda: OTMapping(method="lpl1", reg_e=1.0, reg_cl=0.1, norm=None),
            lambda sk, est: sk.ClassRegularizerOTMapping(est, reg_e=1.0, reg_cl=0.1),
        ),
        (
            lambda: OTMapping(method="sinkhorn", reg_e=1.0, norm=None),
            lambda sk, est: sk.EntropicOTMapping(est, reg_e=1.0),
        ),
        (lambda: OTMapping(method="emd", norm=None), lambda sk, est: sk.OTMapping(est)),
    ],
    ids=["lpl1", "sinkhorn", "emd"],
)
def test_ot_mapping_same_predictions_as_skada(shifted, ours, theirs):
    skada = pytest.importorskip("skada")
    X, y, domain, Xt = shifted
    a = ours().fit(X, y, sample_domain=domain).predict_proba(Xt)
    model = theirs(skada, LogisticRegression(max_iter=1000)).fit(X, y, sample_domain=domain)
    b = model.predict_proba(Xt, sample_domain=-2 * np.ones(len(Xt), int))
    np.testing.assert_allclose(a, b, atol=1e-6)
