"""TrAdaBoost: boosting that learns from a labelled source and a few labelled target rows."""

from numbers import Integral

import numpy as np
from sklearn.base import clone
from sklearn.utils._param_validation import Interval
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import _AdaptationClassifier, _estimator_has, default_estimator, fit_weighted
from ._docs import fill_doc


@fill_doc
class TrAdaBoost(_AdaptationClassifier):
    """Transfer AdaBoost: down-weight the source rows that the target disagrees with.

    Each round fits the estimator on the labelled source and target rows with the
    current weights; misclassified target rows gain weight (as in AdaBoost) and
    misclassified source rows lose weight, so source rows that do not fit the target
    fade out. The prediction is the weighted vote of the second half of the rounds.

    Needs labelled target rows: rows with a negative ``sample_domain`` whose label is
    not ``-1``. Without ``sample_domain`` every labelled row counts as source, so pass
    it to say which labelled rows are target rows (when ``y`` has no ``-1`` either,
    every row is both, and this is plain boosting). Rows with ``y = -1`` are left out.

    Parameters
    ----------
    estimator : estimator, default=None
        A classifier whose ``fit`` takes ``sample_weight`` (or a Pipeline whose last
        step's does); None means ``LogisticRegression(max_iter=1000)``.
    n_estimators : int, default=10
        Boosting rounds.

    Attributes
    ----------
    estimators_ : list of estimators
        The learners of the rounds that vote (the second half).
    estimator_weights_ : ndarray of shape (n_voting,)
        Their votes, ``log(1 / beta_t)``.
    target_errors_ : ndarray of shape (n_estimators,)
        Weighted error on the labelled target rows, per round.
    {classifier_attributes}

    See Also
    --------
    KMM, KLIEP, DiscriminatorReweight : Weights from unlabelled target rows.

    References
    ----------
    Dai et al., "Boosting for transfer learning", ICML 2007.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adaptation import TrAdaBoost
    >>> rng = np.random.default_rng(0)
    >>> Xs, Xt = rng.normal(size=(200, 2)), rng.normal(size=(20, 2))
    >>> # half the source rows follow the target's rule, half another one
    >>> ys = np.where(np.arange(200) < 100, Xs[:, 0] > 0, Xs[:, 1] > 0).astype(int)
    >>> yt = (Xt[:, 0] > 0).astype(int)
    >>> X, y = np.vstack([Xs, Xt]), np.r_[ys, yt]
    >>> domain = np.r_[np.ones(200, dtype=int), -np.ones(20, dtype=int)]
    >>> booster = TrAdaBoost().fit(X, y, sample_domain=domain)
    >>> X_new = rng.normal(size=(100, 2))
    >>> bool(booster.score(X_new, (X_new[:, 0] > 0).astype(int)) > 0.8)
    True
    """

    _parameter_constraints: dict = {
        **_AdaptationClassifier._parameter_constraints,
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
    }

    _weighs_rows = True

    def __init__(self, estimator=None, *, n_estimators=10):
        self.estimator = estimator
        self.n_estimators = n_estimators

    def _fit(self, X, y, sample_domain):
        """Boost on the labelled source rows and the labelled target rows."""
        # user -> fit -> _fit -> _validate_fit
        X, y, domains, classes = self._validate_fit(X, y, sample_domain, stacklevel=4)
        target = domains.target & domains.labelled
        if not target.any():
            raise ValueError(
                "TrAdaBoost needs labelled target rows: no target row has a label "
                "(y != -1). Give a few target rows their labels and mark them with a "
                "negative sample_domain."
            )
        source = domains.source & domains.labelled & ~domains.target
        self.classes_ = classes
        rows = source | target
        Xl, yl, is_target = X[rows], y[rows], target[rows]
        n_source = int(source.sum())
        beta = 1 / (1 + np.sqrt(2 * np.log(max(n_source, 2)) / self.n_estimators))
        weights = np.full(len(yl), 1 / len(yl))
        base = default_estimator(self.estimator)
        learners, betas, errors = [], [], []
        for _ in range(self.n_estimators):
            learner = clone(base)
            fit_weighted(learner, Xl, yl, weights * len(weights))
            wrong = learner.predict(Xl) != yl
            error = weights[is_target] @ wrong[is_target] / weights[is_target].sum()
            error = float(np.clip(error, 1e-10, 0.499))
            beta_t = error / (1 - error)
            weights[~is_target] *= beta ** wrong[~is_target]
            weights[is_target] *= beta_t ** -wrong[is_target].astype(float)
            weights /= weights.sum()
            learners.append(learner)
            betas.append(beta_t)
            errors.append(error)
        half = self.n_estimators // 2
        self.estimators_ = learners[half:]
        self.estimator_weights_ = np.log(1 / np.asarray(betas[half:]))
        self.target_errors_ = np.asarray(errors)

    def _vote(self, X, proba):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        total = np.zeros((len(X), len(self.classes_)))
        for learner, weight in zip(self.estimators_, self.estimator_weights_, strict=True):
            if proba:
                columns = np.searchsorted(self.classes_, learner.classes_)
                total[:, columns] += weight * learner.predict_proba(X)
            else:
                picked = np.searchsorted(self.classes_, learner.predict(X))
                total[np.arange(len(X)), picked] += weight
        return total / max(self.estimator_weights_.sum(), 1e-12)

    @available_if(_estimator_has("predict_proba"))
    @fill_doc
    def predict_proba(self, X):
        """Weighted average of the voting learners' probabilities.

        Parameters
        ----------
        {predict_X}

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities, columns in the order of ``classes_``.
        """
        return self._vote(X, proba=True)

    @fill_doc
    def predict(self, X):
        """Predicted classes: the weighted vote of the second half of the rounds.

        The learners vote with their probabilities when they have ``predict_proba``
        (so that ``predict`` is the argmax of :meth:`predict_proba`), else with their
        predicted classes.

        Parameters
        ----------
        {predict_X}

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Predicted classes.
        """
        votes = self._vote(X, proba=hasattr(self, "predict_proba"))
        return self.classes_[votes.argmax(axis=1)]
