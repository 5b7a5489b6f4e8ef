"""The domain convention and the wrapper every adaptation method shares.

Source and target rows are stacked in one ``X``. Unlabelled rows have ``y = -1``. An
optional ``sample_domain`` array says which row is which (positive: source, negative:
target); without it, rows with ``y = -1`` are target rows and the others source rows.
This is skada's convention, so data prepared for one library works with the other.
"""

from numbers import Real

import numpy as np
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import Pipeline
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data


def unlabelled_mask(y):
    """Rows whose label is the ``-1`` placeholder."""
    y = np.asarray(y)
    if y.dtype.kind in "iuf":
        return y == -1
    if y.dtype.kind in "US":
        return np.zeros(len(y), dtype=bool)
    return np.fromiter((isinstance(v, Real) and v == -1 for v in y), bool, len(y))


def split_domains(X, y, sample_domain, *, n_samples):
    """Validate the domain information; return boolean masks (source, target, labelled).

    Raises
    ------
    ValueError
        ``sample_domain`` of the wrong length or with zeros, no source rows, no target
        rows, no labelled source rows.
    """
    if y is None:
        raise ValueError(
            "Domain adaptation requires y to be passed, but the target y is None "
            "(give source labels, with -1 for unlabelled target rows)."
        )
    y = column_or_1d(y)
    if len(y) != n_samples:
        raise ValueError(f"X has {n_samples} rows but y has {len(y)} entries.")
    unlabelled = unlabelled_mask(y)
    check_classification_targets(y[~unlabelled])
    if sample_domain is None:
        sample_domain = np.where(unlabelled, -2, 1)
    else:
        sample_domain = column_or_1d(sample_domain)
        if len(sample_domain) != n_samples:
            raise ValueError(
                f"sample_domain has {len(sample_domain)} entries but X has {n_samples} rows: "
                "give one domain per row (positive for source, negative for target)."
            )
        if np.any(sample_domain == 0):
            raise ValueError(
                "sample_domain must be positive (source) or negative (target), not 0."
            )
    source, target = sample_domain > 0, sample_domain < 0
    if not target.any():
        raise ValueError(
            "No target rows: mark the unlabelled target rows with y = -1, or pass "
            "sample_domain with negative values for the target rows."
        )
    if not source.any():
        raise ValueError("No source rows: sample_domain needs positive values for the source.")
    if not (source & ~unlabelled).any():
        raise ValueError("No labelled source rows: every source row has y = -1.")
    return source, target, ~unlabelled, y


def fit_weighted(estimator, X, y, sample_weight=None):
    """Fit ``estimator`` with sample weights; a Pipeline gets them at its last step."""
    if sample_weight is None:
        return estimator.fit(X, y)
    if isinstance(estimator, Pipeline) and not _routing_enabled():
        return estimator.fit(X, y, **{f"{estimator.steps[-1][0]}__sample_weight": sample_weight})
    return estimator.fit(X, y, sample_weight=sample_weight)


def _routing_enabled():
    return sklearn.get_config().get("enable_metadata_routing", False)


def _estimator(adaptation):
    if getattr(adaptation, "estimator_", None) is not None:
        return adaptation.estimator_
    if adaptation.estimator is not None:
        return adaptation.estimator
    return adaptation._default_estimator()


def _estimator_has(adaptation, attr):
    return hasattr(_estimator(adaptation), attr)


class _DomainAdaptation(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Fit an adapter on source and target rows, then ``estimator`` on the labelled rows.

    Subclasses implement ``_adapt(X, source, target)`` returning the adapted rows and
    source weights (either may be None for "unchanged"), and ``_adapt_target(X)`` for
    new rows at prediction time.
    """

    def _default_estimator(self):
        return LogisticRegression(max_iter=1000)

    def fit(self, X, y, sample_domain=None):
        """Adapt, then fit the wrapped estimator on the labelled rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Source and target rows.
        y : array-like of shape (n_samples,)
            Labels, ``-1`` for unlabelled (target) rows.
        sample_domain : array-like of shape (n_samples,), default=None
            Positive for source rows, negative for target rows; inferred from ``y`` when
            None.

        Returns
        -------
        self : object
        """
        self._validate_params()
        X = validate_data(self, X, dtype=np.float64)
        source, target, labelled, y = split_domains(X, y, sample_domain, n_samples=len(X))
        classes = np.unique(y[labelled])
        if len(classes) < 2:
            raise ValueError(
                f"Need at least 2 classes among the labelled rows; got one: {classes.tolist()}."
            )
        X_adapted, weights = self._adapt(X, y, source, target, labelled)
        if X_adapted is None:
            X_adapted = X
        rows = labelled
        self.estimator_ = clone(_estimator(self))
        fit_weighted(
            self.estimator_, X_adapted[rows], y[rows], None if weights is None else weights[rows]
        )
        self.classes_ = self.estimator_.classes_
        return self

    def _adapt_target(self, X):
        return X

    def _prepared(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._adapt_target(X)

    def predict(self, X):
        """Predict classes of (target) rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        X = self._prepared(X)
        return self.estimator_.predict(X)

    @available_if(lambda self: _estimator_has(self, "predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of (target) rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        X = self._prepared(X)
        return self.estimator_.predict_proba(X)

    def score(self, X, y, sample_weight=None):
        """Accuracy on the labelled rows (rows with ``y = -1`` are left out).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        y = column_or_1d(y)
        keep = ~unlabelled_mask(y)
        if not keep.any():
            raise ValueError("score needs labelled rows; every row has y = -1.")
        weight = None if sample_weight is None else np.asarray(sample_weight)[keep]
        return accuracy_score(y[keep], self.predict(np.asarray(X)[keep]), sample_weight=weight)
