"""What every adaptation method shares: the wrapped estimator, fit's checks, the template.

:class:`_DomainAdaptation` is the template: it validates the input and splits the domains
(:mod:`._domains`), and a method writes only ``_adapt``, its algorithm.
"""

from inspect import signature

import numpy as np
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_is_fitted,
    column_or_1d,
    has_fit_parameter,
    validate_data,
)

from ._docs import fill_doc
from ._domains import _split_domains, require_labelled_source, source_rows, unlabelled_mask


def check_labels(y, domains):
    """Validate the labels of the labelled rows; return their classes.

    Raises a clear error for no labelled source rows and for a single class.
    """
    require_labelled_source(domains)
    check_classification_targets(y[domains.labelled])
    classes = np.unique(y[domains.labelled])
    if len(classes) < 2:
        hint = ""
        if not domains.labelled.all():
            hint = (
                " Rows with y = -1 are unlabelled, never a class: recode a class called -1 "
                "(labels -1 and 1 as 0 and 1)."
            )
        raise ValueError(
            "Need at least 2 classes among the labelled rows; got only one class: "
            f"{classes.tolist()}.{hint}"
        )
    return classes


def require_y(y):
    """Raise scikit-learn's error for ``y=None`` in a supervised ``fit``."""
    if y is None:
        raise ValueError(
            "Domain adaptation requires y to be passed, but the target y is None "
            "(give source labels, with -1 for unlabelled target rows)."
        )


def read_labels(y, sample_domain, n_samples, stacklevel):
    """Read the labels and the domains of a supervised ``fit``: ``(y, domains, classes)``.

    ``n_samples`` is the number of rows of ``X`` to check ``y`` against (None: the length
    of ``y``, once it is an array). ``stacklevel`` counts the frames from here up to the
    user's call, as :func:`warnings.warn` does, so that the warnings on how ``y`` was read
    point at it.
    """
    y = column_or_1d(y, warn=True)
    domains = _split_domains(y, sample_domain, n_samples, stacklevel=stacklevel + 1)
    return y, domains, check_labels(y, domains)


def _weighted_step(estimator):
    """``(step, key)``: the estimator whose ``fit`` gets the weights, and their keyword.

    A Pipeline gives them to its last step (``name__sample_weight``), however deep.
    """
    path = []
    while isinstance(estimator, Pipeline):
        name, estimator = estimator.steps[-1]
        path.append(name)
    return estimator, "__".join([*path, "sample_weight"])


def takes_sample_weight(estimator):
    """Whether ``estimator`` (a Pipeline: its last step) can be fitted with sample weights.

    A ``fit`` that takes ``**kwargs`` is given the benefit of the doubt.
    """
    step, _ = _weighted_step(estimator)
    fit = getattr(step, "fit", None)
    if fit is None:
        return False
    return has_fit_parameter(step, "sample_weight") or any(
        parameter.kind is parameter.VAR_KEYWORD for parameter in signature(fit).parameters.values()
    )


def sample_weight_problem(method, estimator):
    """Why ``method`` cannot weigh the rows ``estimator`` fits on; None when it can."""
    if takes_sample_weight(estimator):
        return None
    step, _ = _weighted_step(estimator)
    where = "the last step of its Pipeline, " if isinstance(estimator, Pipeline) else ""
    return (
        f"{method} weighs the rows it fits on, so its estimator's fit must take "
        f"sample_weight; {where}{type(step).__name__}'s does not."
    )


def require_sample_weight(method, estimator):
    """Raise a ValueError that says so when ``estimator`` cannot be fitted with weights."""
    problem = sample_weight_problem(method, estimator)
    if problem is not None:
        raise ValueError(
            f"{problem} Wrap a classifier whose fit takes it (LogisticRegression, SVC, "
            "RandomForestClassifier, ...), or use a method that moves the features instead "
            "of weighing the rows (CORAL, OTMapping, TransferComponentAnalysis)."
        )


def fit_weighted(estimator, X, y, sample_weight=None):
    """Fit ``estimator`` with sample weights; a Pipeline gets them at its last step.

    The weights are ours to give, whatever metadata routing the user has set up around
    the adaptation method, so the inner ``fit`` runs with routing off.
    """
    if sample_weight is None:
        return estimator.fit(X, y)
    _, key = _weighted_step(estimator)
    with sklearn.config_context(enable_metadata_routing=False):
        return estimator.fit(X, y, **{key: sample_weight})


def default_estimator(estimator):
    """``estimator``, or the default classifier, ``LogisticRegression(max_iter=1000)``, if None."""
    return LogisticRegression(max_iter=1000) if estimator is None else estimator


def _estimator_has(attr):
    """``available_if`` check: the estimator that answers for the method has ``attr``."""
    return lambda adaptation: hasattr(adaptation._inner_estimator(), attr)


class _AdaptationClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """What every adaptation method shares: ``estimator``, ``fit``, fit's checks, ``score``.

    Subclasses merge their own constraints into ``_parameter_constraints`` and implement
    ``_fit(X, y, sample_domain)``, which :meth:`fit` calls.
    """

    _parameter_constraints: dict = {"estimator": [None, HasMethods(["fit", "predict"])]}

    _fitted_estimator = "estimator_"
    """The attribute that holds the fitted estimator that answers ``predict``."""

    _weighs_rows = False
    """Whether the method fits its estimator with ``sample_weight`` (checked in ``fit``)."""

    def _inner_estimator(self):
        """Return the fitted estimator that answers ``predict`` (before fit, the one to fit)."""
        fitted = getattr(self, self._fitted_estimator, None)
        return default_estimator(self.estimator) if fitted is None else fitted

    @fill_doc
    def fit(self, X, y, sample_domain=None):
        """Fit on source and target rows (the class description says how).

        Parameters
        ----------
        {fit_parameters}

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._fit(X, y, sample_domain)
        return self

    def _validate_fit(self, X, y, sample_domain, stacklevel):
        """Validate the parameters, ``X`` and ``y``; split the domains.

        Returns ``(X, y, domains, classes)``. ``stacklevel`` counts the frames from this
        method up to the user's call, as :func:`warnings.warn` does, so that the "No target
        rows" warning points at that call.
        """
        self._validate_params()
        if self._weighs_rows:
            require_sample_weight(type(self).__name__, default_estimator(self.estimator))
        require_y(y)
        X = validate_data(self, X, dtype=np.float64)
        return X, *read_labels(y, sample_domain, len(X), stacklevel + 1)

    def score(self, X, y, sample_weight=None):
        """Accuracy on the labelled rows (rows with ``y = -1`` are left out).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score, taken as target rows.
        y : array-like of shape (n_samples,)
            Their labels; ``-1`` marks rows to leave out.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows.

        Returns
        -------
        score : float
            Accuracy of ``predict`` on the labelled rows.
        """
        y = column_or_1d(y)
        keep = np.flatnonzero(~unlabelled_mask(y))
        if not len(keep):
            raise ValueError("score needs labelled rows; every row has y = -1.")
        weight = None if sample_weight is None else np.asarray(sample_weight)[keep]
        predicted = self.predict(_safe_indexing(X, keep))
        return accuracy_score(y[keep], predicted, sample_weight=weight)


class _PredictsByDomain:
    """``predict``, ``predict_proba`` and ``decision_function`` of the fitted estimator.

    The rows are target rows unless ``sample_domain`` marks them as source rows. Subclasses
    implement ``_delegate(method, X, sample_domain)``, which calls the fitted estimator's
    ``method`` on the rows.
    """

    @fill_doc
    def predict(self, X, sample_domain=None):
        """Predict classes of (target) rows.

        Parameters
        ----------
        {predict_parameters}

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Predicted classes.
        """
        return self._delegate("predict", X, sample_domain)

    @available_if(_estimator_has("predict_proba"))
    @fill_doc
    def predict_proba(self, X, sample_domain=None):
        """Class probabilities of (target) rows.

        Parameters
        ----------
        {predict_parameters}

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities, columns in the order of ``classes_``.
        """
        return self._delegate("predict_proba", X, sample_domain)

    @available_if(_estimator_has("decision_function"))
    @fill_doc
    def decision_function(self, X, sample_domain=None):
        """Decision function of the fitted estimator on (target) rows.

        Parameters
        ----------
        {predict_parameters}

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The fitted estimator's decision function.
        """
        return self._delegate("decision_function", X, sample_domain)


class _DomainAdaptation(_PredictsByDomain, _AdaptationClassifier):
    """Fit an adapter on source and target rows, then ``estimator`` on the labelled rows.

    Subclasses implement ``_adapt(X, y, domains)`` returning the adapted rows and a weight
    per row (either may be None for "unchanged"), and ``_adapt_rows(X, source)`` for new rows
    at prediction time (``source``: a mask of the rows to take as source rows; the others are
    target rows).
    """

    def _fit(self, X, y, sample_domain):
        """Adapt, then fit the wrapped estimator on the labelled rows.

        Return the adapted rows of ``X`` (source rows mapped as source).
        """
        # user -> fit or fit_transform -> _fit -> _validate_fit
        X, y, domains, _ = self._validate_fit(X, y, sample_domain, stacklevel=4)
        X_adapted, weights = self._adapt(X, y, domains)
        if X_adapted is None:
            X_adapted = X
        rows = domains.labelled
        self.estimator_ = clone(default_estimator(self.estimator))
        fit_weighted(
            self.estimator_, X_adapted[rows], y[rows], None if weights is None else weights[rows]
        )
        self.classes_ = self.estimator_.classes_
        return X_adapted

    def _adapt_rows(self, X, source):
        return X

    def _delegate(self, method, X, sample_domain):
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        X = self._adapt_rows(X, source_rows(sample_domain, len(X)))
        return getattr(self.estimator_, method)(X)
