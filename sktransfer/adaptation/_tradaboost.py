"""TrAdaBoost: boosting that learns from a labelled source and a few labelled target rows."""

from numbers import Integral

import numpy as np
from sklearn.base import clone
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import _DomainAdaptation, fit_weighted, split_domains


class TrAdaBoost(_DomainAdaptation):
    """Transfer AdaBoost: down-weight source rows the target disagrees with.

    Each round fits the estimator on source and labelled target rows with the current
    weights; misclassified target rows gain weight (as in AdaBoost) and misclassified
    source rows lose weight, so source rows that do not fit the target fade out. The
    prediction is the weighted vote of the second half of the rounds.

    Needs labelled target rows: rows with a negative ``sample_domain`` (or, without
    ``sample_domain``, rows listed in it) whose label is not ``-1``. Pass
    ``sample_domain`` to say which labelled rows are target rows.

    Parameters
    ----------
    estimator : estimator, default=None
        A classifier whose ``fit`` takes ``sample_weight``; None means
        ``LogisticRegression(max_iter=1000)``.
    n_estimators : int, default=10
        Boosting rounds.

    Attributes
    ----------
    estimators_ : list of estimators
        The learners of the rounds that vote (the second half).
    estimator_weights_ : ndarray
        Their votes, ``log(1 / beta_t)``.
    target_errors_ : ndarray of shape (n_estimators,)
        Weighted error on the labelled target rows, per round.
    classes_ : ndarray

    References
    ----------
    Dai et al., "Boosting for transfer learning", ICML 2007.
    """

    _parameter_constraints: dict = {
        "estimator": [None, HasMethods(["fit", "predict"])],
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, estimator=None, *, n_estimators=10):
        self.estimator = estimator
        self.n_estimators = n_estimators

    def fit(self, X, y, sample_domain=None):
        """Boost on labelled source rows and labelled target rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Labels, ``-1`` for unlabelled rows (ignored).
        sample_domain : array-like of shape (n_samples,), default=None
            Positive for source rows, negative for target rows. Required in practice:
            without it every labelled row counts as source.

        Returns
        -------
        self : TrAdaBoost
        """
        self._validate_params()
        X = validate_data(self, X, dtype=np.float64)
        if sample_domain is None:
            split_domains(X, y, None, n_samples=len(X))  # the usual errors about y first
            raise ValueError(
                "TrAdaBoost needs labelled target rows: pass sample_domain (negative for "
                "target rows) so that labelled target rows can be told from source rows."
            )
        source, target, labelled, y = split_domains(X, y, sample_domain, n_samples=len(X))
        src, tgt = source & labelled, target & labelled
        if not tgt.any():
            raise ValueError(
                "TrAdaBoost needs labelled target rows: no row with a negative sample_domain "
                "has a label (y != -1)."
            )
        self.classes_ = np.unique(y[labelled])
        if len(self.classes_) < 2:
            raise ValueError(
                f"Need at least 2 classes among the labelled rows; got {self.classes_.tolist()}."
            )
        rows = src | tgt
        Xl, yl, is_target = X[rows], y[rows], tgt[rows]
        n_source = int(src.sum())
        beta = 1 / (1 + np.sqrt(2 * np.log(max(n_source, 2)) / self.n_estimators))
        weights = np.ones(len(yl))
        learners, betas, errors = [], [], []
        for _ in range(self.n_estimators):
            p = weights / weights.sum()
            learner = clone(
                self.estimator if self.estimator is not None else self._default_estimator()
            )
            fit_weighted(learner, Xl, yl, p * len(p))
            wrong = learner.predict(Xl) != yl
            error = (weights[is_target] * wrong[is_target]).sum() / weights[is_target].sum()
            error = float(np.clip(error, 1e-10, 0.499))
            beta_t = error / (1 - error)
            weights[~is_target] *= beta ** wrong[~is_target]
            weights[is_target] *= beta_t ** -wrong[is_target].astype(float)
            learners.append(learner)
            betas.append(beta_t)
            errors.append(error)
        half = self.n_estimators // 2
        self.estimators_ = learners[half:]
        self.estimator_weights_ = np.log(1 / np.asarray(betas[half:]))
        self.target_errors_ = np.asarray(errors)
        return self

    def predict_proba(self, X):
        """Weighted average of the voting learners' probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        total = np.zeros((len(X), len(self.classes_)))
        for learner, weight in zip(self.estimators_, self.estimator_weights_, strict=True):
            proba = np.zeros_like(total)
            columns = np.searchsorted(self.classes_, learner.classes_)
            proba[:, columns] = learner.predict_proba(X)
            total += weight * proba
        return total / max(self.estimator_weights_.sum(), 1e-12)

    def predict(self, X):
        """Predicted classes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]
