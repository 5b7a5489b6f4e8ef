"""Scorers for unsupervised model selection: judge a fitted model without target labels.

A scorer here is called as scikit-learn calls any scorer, ``scorer(estimator, X, y)``,
on the rows of a test fold, and uses no target label: the target rows are told apart by
``y = -1`` or by a routed ``sample_domain`` (negative for target rows). Names, parameters
and behaviour follow ``skada.metrics`` where both libraries have the same thing.
"""

import warnings
from inspect import signature

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, check_scoring
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils.metadata_routing import MetadataRequest
from sklearn.utils.validation import _num_samples

from ._domains import fold_domains, unlabelled_mask
from ._reweight import DiscriminatorReweight


def _final_step(estimator, X):
    """Return the estimator's last step and ``X`` as that step sees it (through a Pipeline)."""
    if isinstance(estimator, Pipeline):
        return estimator[-1], estimator[:-1].transform(X)
    return estimator, X


def _call_as(estimator, method, X, source):
    """``estimator.<method>(X)`` with every row taken as a source row (or a target row).

    A feature-based method maps source and target rows differently; its methods take
    ``sample_domain``. A Pipeline transforms ``X`` through its first steps and the last
    step gets the domain. Other estimators treat every row alike.
    """
    final, X = _final_step(estimator, X)
    function = getattr(final, method)
    if "sample_domain" in signature(function).parameters:
        return function(X, sample_domain=np.full(_num_samples(X), 1 if source else -1))
    return function(X)


def _features_as(estimator, X, source):
    """Return the rows as the estimator's classifier sees them (an adapted space, if any)."""
    final, X = _final_step(estimator, X)
    transform = getattr(final, "transform", None)
    if transform is not None and "sample_domain" in signature(transform).parameters:
        return transform(X, sample_domain=np.full(_num_samples(X), 1 if source else -1))
    return np.asarray(X)


class _AsDomain(ClassifierMixin, BaseEstimator):
    """A fitted classifier seen from one domain: its rows all go in as source (or target)."""

    def __init__(self, fitted, source=True):
        self.fitted = fitted
        self.source = source

    @property
    def classes_(self):
        return self.fitted.classes_

    def __sklearn_is_fitted__(self):
        return True

    def fit(self, X=None, y=None):
        """Do nothing: the wrapped classifier is fitted (scikit-learn's scorers ask for fit)."""
        return self

    def predict(self, X):
        return _call_as(self.fitted, "predict", X, self.source)

    def predict_proba(self, X):
        return _call_as(self.fitted, "predict_proba", X, self.source)

    def decision_function(self, X):
        return _call_as(self.fitted, "decision_function", X, self.source)

    def score(self, X, y, sample_weight=None):
        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)


class _DomainScorer:
    """What the scorers share: a sign, the domain masks, and a request for sample_domain.

    Subclasses implement ``_score(estimator, X, y, source, target)``, returning the score
    or loss itself; ``greater_is_better=False`` negates it, as in skada.
    """

    def __call__(self, estimator, X, y=None, sample_domain=None):
        """Score the fitted ``estimator`` on the rows ``X`` without target labels.

        Parameters
        ----------
        estimator : estimator
            A fitted estimator (an adaptation method, a Pipeline ending in one, or any
            classifier).
        X : array-like of shape (n_samples, ...)
            Source and target rows of a test fold.
        y : array-like of shape (n_samples,), default=None
            Labels of the source rows; ``-1`` (or any label, when ``sample_domain`` is
            given) on the target rows, whose labels are never read.
        sample_domain : array-like of shape (n_samples,), default=None
            Positive for source rows, negative for target rows; inferred from ``y`` when
            None.

        Returns
        -------
        score : float
            The score; greater is better (a loss comes negated, as in scikit-learn).
        """
        y, source, target = fold_domains(y, sample_domain, _num_samples(X))
        return self._sign * float(self._score(estimator, X, y, source, target))

    @property
    def _sign(self):
        return 1 if self.greater_is_better else -1

    def get_metadata_routing(self):
        """Request ``sample_domain`` for scoring (used when metadata routing is enabled).

        Returns
        -------
        routing : MetadataRequest
            ``sample_domain`` requested by ``score``.
        """
        request = MetadataRequest(owner=type(self).__name__)
        request.score.add_request(param="sample_domain", alias=True)
        return request

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


def _require_proba(scorer, estimator):
    """Raise the one error for a scorer that needs ``predict_proba`` of an estimator without."""
    if not hasattr(estimator, "predict_proba"):
        raise AttributeError(
            f"{type(scorer).__name__} needs predict_proba; {type(estimator).__name__} has none."
        )


def _labelled_source(y, source):
    if y is None:
        raise ValueError("This scorer needs the labels of the source rows: give y.")
    rows = source & ~unlabelled_mask(y)
    if not rows.any():
        raise ValueError("No labelled source rows to score on in this fold.")
    return rows


class ImportanceWeightedScorer(_DomainScorer):
    """Importance-weighted validation: the source score, weighted towards the target.

    Each labelled source row of the fold counts by its density ratio
    ``p_target(x) / p_source(x)``, so that the score estimates the target score under
    covariate shift (Sugiyama et al. 2007). The ratio is taken in the input space, so
    that every candidate is scored with the same weights; the rows are predicted as
    source rows.

    Parameters
    ----------
    weight_estimator : estimator, default=None
        How to estimate the density ratio. An estimator with ``score_samples`` (a density,
        such as :class:`~sklearn.neighbors.KernelDensity`) is fitted on each domain, as
        skada does; a classifier with ``predict_proba`` tells the domains apart, with
        out-of-fold probabilities (:class:`~sktransfer.adaptation.DiscriminatorReweight`).
        None means the latter with its calibrated default discriminator.
    scoring : str, callable or None, default=None
        The source score to weigh: a scikit-learn scorer name or callable; None means
        accuracy.
    greater_is_better : bool, default=True
        False negates the weighted score, as skada does (scikit-learn's ``"neg_..."``
        scorers come negated already).

    References
    ----------
    Sugiyama, Krauledat and Müller, "Covariate shift adaptation by importance weighted
    cross validation", JMLR 2007.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adaptation import CORAL, ImportanceWeightedScorer
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(size=(60, 2)); Xt = rng.normal(size=(60, 2)) * 2
    >>> X, y = np.vstack([Xs, Xt]), np.r_[(Xs[:, 0] > 0).astype(int), [-1] * 60]
    >>> score = ImportanceWeightedScorer()(CORAL().fit(X, y), X, y)
    >>> 0 <= score <= 1
    True
    """

    def __init__(self, weight_estimator=None, scoring=None, greater_is_better=True):
        self.weight_estimator = weight_estimator
        self.scoring = scoring
        self.greater_is_better = greater_is_better

    def _weights(self, X, source, target):
        Xs = np.asarray(_safe_indexing(X, np.flatnonzero(source)), dtype=np.float64)
        Xt = np.asarray(_safe_indexing(X, np.flatnonzero(target)), dtype=np.float64)
        Xs, Xt = Xs.reshape(len(Xs), -1), Xt.reshape(len(Xt), -1)
        if self.weight_estimator is not None and hasattr(self.weight_estimator, "score_samples"):
            density_source = clone(self.weight_estimator).fit(Xs)
            density_target = clone(self.weight_estimator).fit(Xt)
            log_ratio = density_target.score_samples(Xs) - density_source.score_samples(Xs)
            weights = np.exp(log_ratio - log_ratio.max())
        else:
            weigher = DiscriminatorReweight(discriminator=self.weight_estimator)
            domain = np.r_[np.ones(len(Xs), dtype=int), -np.ones(len(Xt), dtype=int)]
            weights = weigher.fit_weights(np.vstack([Xs, Xt]), sample_domain=domain)
            weights = weights[: len(Xs)]
        return weights / weights.sum()

    def _score(self, estimator, X, y, source, target):
        labelled = _labelled_source(y, source)
        weights = self._weights(X, source, target)[labelled[source]]
        rows = np.flatnonzero(labelled)
        as_source = _AsDomain(estimator, source=True)
        scorer = check_scoring(as_source, self.scoring)
        # the sign of a loss is ours to apply: scikit-learn's "neg_" scorers come negated
        return scorer(as_source, _safe_indexing(X, rows), y[rows], sample_weight=weights)


class PredictionEntropyScorer(_DomainScorer):
    """Mean entropy of the predicted class probabilities on the target rows.

    A model that has learnt the target well predicts it with confidence (Morerio et al.
    2018). A loss: lower is better, so the score is its negation by default. Confidence
    is not accuracy: a model can be confidently wrong, so use it alongside another score.

    Parameters
    ----------
    greater_is_better : bool, default=False
        False negates the entropy (a loss), as skada does.
    reduction : {"mean", "sum"}, default="mean"
        How to reduce the terms ``-p log p`` of every row and class: their mean (as skada
        does: the mean entropy of a row divided by the number of classes) or their sum.

    References
    ----------
    Morerio, Cavazza and Murino, "Minimal-entropy correlation alignment for unsupervised
    deep domain adaptation", ICLR 2018.
    """

    def __init__(self, greater_is_better=False, reduction="mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}.")
        self.greater_is_better = greater_is_better
        self.reduction = reduction

    def _score(self, estimator, X, y, source, target):
        _require_proba(self, estimator)
        proba = _call_as(
            estimator, "predict_proba", _safe_indexing(X, np.flatnonzero(target)), False
        )
        proba = np.clip(proba, 0, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(proba > 0, -proba * np.log(proba), 0.0)
        # as skada: the mean (or sum) of the n_rows x n_classes terms -p log p
        return terms.mean() if self.reduction == "mean" else terms.sum()


def _cross_entropy(proba, classes, y):
    """Per-row log-loss of ``proba`` (columns in ``classes``) against the labels ``y``."""
    columns = np.searchsorted(classes, y)
    known = (columns < len(classes)) & (classes[np.minimum(columns, len(classes) - 1)] == y)
    picked = np.where(known, proba[np.arange(len(y)), np.minimum(columns, len(classes) - 1)], 0)
    return -np.log(np.clip(picked, 1e-15, 1))


class DeepEmbeddedValidation(_DomainScorer):
    """Deep embedded validation: importance-weighted source loss in the adapted space.

    The held-out source rows of the fold are split; a domain classifier, fitted on the
    adapted features of one part and of the target rows, weighs the log-loss of the other
    part by the density ratio, and a control variate reduces the variance of the weighted
    mean (You et al. 2019). Features are the estimator's ``transform`` output (source
    rows mapped as source rows) when it has one, else its input. A loss: lower is better.

    Parameters
    ----------
    domain_classifier : classifier, default=None
        Tells the domains apart in the adapted space; None means a logistic regression on
        standardised features.
    loss_func : callable, default=None
        ``loss_func(y_true, proba, classes)`` returning one loss per row; None means the
        log-loss.
    random_state : int, RandomState or None, default=None
        Splits the source rows.
    greater_is_better : bool, default=False
        False negates the loss, as skada does.

    References
    ----------
    You, Wang, Long and Jordan, "Towards accurate model selection in deep unsupervised
    domain adaptation", ICML 2019.
    """

    def __init__(
        self, domain_classifier=None, loss_func=None, random_state=None, greater_is_better=False
    ):
        self.domain_classifier = domain_classifier
        self.loss_func = loss_func
        self.random_state = random_state
        self.greater_is_better = greater_is_better

    def _score(self, estimator, X, y, source, target):
        _require_proba(self, estimator)
        labelled = np.flatnonzero(_labelled_source(y, source))
        if len(labelled) < 3:
            raise ValueError(
                "DeepEmbeddedValidation splits the labelled source rows of a fold in two; "
                f"this fold has {len(labelled)}."
            )
        rng = check_random_state(self.random_state)
        train, valid = train_test_split(labelled, test_size=0.33, random_state=rng)
        features_train = _features_as(estimator, _safe_indexing(X, train), True)
        features_valid = _features_as(estimator, _safe_indexing(X, valid), True)
        features_target = _features_as(estimator, _safe_indexing(X, np.flatnonzero(target)), False)
        classifier = self.domain_classifier
        if classifier is None:
            classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        domain = np.r_[np.ones(len(features_train)), np.zeros(len(features_target))]
        classifier = clone(classifier).fit(np.vstack([features_train, features_target]), domain)
        p = np.clip(classifier.predict_proba(features_valid), 1e-12, 1)
        weights = len(features_train) / len(features_target) * p[:, 0] / p[:, 1]
        proba = _call_as(estimator, "predict_proba", _safe_indexing(X, valid), True)
        # the columns of predict_proba: classes_, or (an estimator without it, such as
        # skada's pipelines) the sorted labels of the source rows, as skada assumes
        classes = np.asarray(getattr(estimator, "classes_", np.unique(y[labelled])))
        if self.loss_func is None:
            loss = _cross_entropy(proba, classes, y[valid])
        else:
            loss = np.asarray(self.loss_func(y[valid], proba, classes), dtype=np.float64)
        weighted = weights * loss
        variance = np.var(weights, ddof=1) if len(weights) > 1 else 0.0
        eta = 0.0 if variance == 0 else -np.cov(weighted, weights)[0, 1] / variance
        return weighted.mean() + eta * weights.mean() - eta


class CircularValidation(_DomainScorer):
    """Circular (reverse) validation: adapt back from the target and score on the source.

    The fitted estimator labels the target rows of the fold; a copy of it is then fitted
    the other way round, with the target rows and these labels as the source and the
    source rows as an unlabelled target, and scored on the true source labels (Bruzzone
    and Marconcini 2010). A method that adapts well keeps the labels consistent both
    ways.

    Parameters
    ----------
    source_scorer : callable, default=balanced_accuracy_score
        ``source_scorer(y_true, y_pred)`` on the source rows.
    greater_is_better : bool, default=True
        Whether ``source_scorer`` is a score (True) or a loss.

    References
    ----------
    Bruzzone and Marconcini, "Domain adaptation problems: a DASVM classification technique
    and a circular validation strategy", IEEE TPAMI 2010.
    """

    def __init__(self, source_scorer=balanced_accuracy_score, greater_is_better=True):
        if not callable(source_scorer):
            raise ValueError(f"source_scorer must be callable, got {source_scorer!r}.")
        self.source_scorer = source_scorer
        self.greater_is_better = greater_is_better

    def _score(self, estimator, X, y, source, target):
        labelled = _labelled_source(y, source)
        target_rows, source_rows = np.flatnonzero(target), np.flatnonzero(labelled)
        predicted = _call_as(estimator, "predict", _safe_indexing(X, target_rows), False)
        truth = y[source_rows]
        if len(np.unique(predicted)) < 2:  # one class: the way back predicts it everywhere
            return self.source_scorer(truth, np.repeat(predicted[:1], len(truth)))
        # the way back: the target rows (with the predicted labels) are the labelled
        # source, the source rows the unlabelled target; y = -1 says which row is which
        rows = np.r_[target_rows, source_rows]
        y_back = np.empty(len(rows), dtype=object)
        y_back[: len(target_rows)] = predicted
        y_back[len(target_rows) :] = -1
        if np.asarray(predicted).dtype.kind in "iub":
            y_back = y_back.astype(np.asarray(predicted).dtype)
        with warnings.catch_warnings():  # -1 here is ours, not a user's ambiguous label
            warnings.filterwarnings("ignore", "y = -1 is read as", UserWarning)
            back = clone(estimator).fit(_safe_indexing(X, rows), y_back)
        return self.source_scorer(truth, back.predict(_safe_indexing(X, source_rows)))
