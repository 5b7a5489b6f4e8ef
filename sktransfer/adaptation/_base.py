"""The domain convention and the wrapper every adaptation method shares.

Source and target rows are stacked in one ``X``. Unlabelled rows have ``y = -1``. An
optional ``sample_domain`` array says which row is which (positive: source, negative:
target); without it, rows with ``y = -1`` are target rows and the others source rows.
This is skada's convention, so data prepared for one library works with the other.
"""

import warnings
from collections import namedtuple
from numbers import Real

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
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

UNLABELLED = -1

Domains = namedtuple("Domains", ["source", "target", "labelled"])
Domains.__doc__ = """Boolean masks over the rows: source rows, target rows, labelled rows."""


def unlabelled_mask(y):
    """Rows whose label is the ``-1`` placeholder (also ``"-1"`` in a string array).

    NumPy turns ``-1`` into the string ``"-1"`` when it is stacked with string labels
    (``np.r_[["cat", "dog"], [-1]]``), so that string counts as the placeholder too.
    """
    y = np.asarray(y)
    if y.dtype.kind in "iufb":
        return y == UNLABELLED
    if y.dtype.kind in "US":
        return y == str(UNLABELLED)
    return np.fromiter(
        ((isinstance(v, Real) and v == UNLABELLED) or v == str(UNLABELLED) for v in y),
        bool,
        len(y),
    )


def split_domains(y=None, sample_domain=None, *, n_samples=None):
    """Tell source rows from target rows, following skada's convention.

    Parameters
    ----------
    y : array-like of shape (n_samples,), default=None
        Labels, ``-1`` for unlabelled rows. Needed when ``sample_domain`` is None.
    sample_domain : array-like of shape (n_samples,), default=None
        Positive for source rows, negative for target rows. When None, rows with
        ``y = -1`` are the target and the others the source. If ``y`` then has no
        ``-1`` at all, there is nothing to adapt to: every row is used as source *and*
        as target (so that an adaptation method fits like its wrapped estimator), with a
        warning.
    n_samples : int, default=None
        Rows of ``X``, to check the lengths of ``y`` and ``sample_domain`` against.

    Returns
    -------
    domains : Domains
        Named tuple of boolean masks of shape (n_samples,): ``source``, ``target`` and
        ``labelled`` (``y != -1``; all True when ``y`` is None).

    Raises
    ------
    ValueError
        ``y`` or ``sample_domain`` of the wrong length, ``sample_domain`` with zeros,
        no source rows, no target rows; without ``sample_domain``, no labelled rows
        ("No labelled source rows") or numeric labels below ``-1`` beside ``-1``.

    Notes
    -----
    ``-1`` marks a row without a label; it is never a class. Without ``sample_domain``
    the labels also say which rows are target rows, so numeric classes must then be
    non-negative, as skada requires: a ``y`` with ``-1`` and a label below it (``-2, -1,
    0, 1, 2``) is refused, because there ``-1`` is one of the classes. Labels ``-1, 0, 1``
    are read as two source classes beside unlabelled target rows: that is the usual
    input, and no rule on ``y`` can tell it from three classes, so a warning says how ``y``
    was read; recode a class called ``-1`` (with
    :class:`~sklearn.preprocessing.LabelEncoder`, say) before adapting, and give
    ``sample_domain`` to say which rows are the target without a warning.
    Labels ``-1, 1`` alone leave one class and fail in ``fit`` with a message that says
    so. The order of the rows never matters.

    Examples
    --------
    >>> from sktransfer.adaptation import split_domains
    >>> split_domains([0, 1, -1, -1]).target
    array([False, False,  True,  True])
    >>> split_domains([0, 1, 1, -1], sample_domain=[1, 1, -2, -2]).labelled
    array([ True,  True,  True, False])
    """
    return _split_domains(y, sample_domain, n_samples, stacklevel=3)


def _split_domains(y, sample_domain, n_samples, stacklevel):
    """:func:`split_domains`, with the warning pointed ``stacklevel`` frames up."""
    if y is None and sample_domain is None:
        raise ValueError(
            "Give sample_domain (positive for source rows, negative for target rows) or y "
            "(-1 for unlabelled target rows) to tell the domains apart."
        )
    if y is not None:
        y = column_or_1d(y)
        if n_samples is not None and len(y) != n_samples:
            raise ValueError(f"X has {n_samples} rows but y has {len(y)} entries.")
        n_samples = len(y)
        labelled = ~unlabelled_mask(y)
    if sample_domain is None:
        if labelled.all():
            warnings.warn(
                "No target rows to adapt to: y has no -1 (unlabelled target rows) and no "
                "sample_domain was given, so every row is used as source and as target; "
                "the model fits as its estimator alone would.",
                UserWarning,
                stacklevel=stacklevel,
            )
            everything = np.ones(n_samples, dtype=bool)
            return Domains(everything, everything, labelled)
        below = _labels_below_placeholder(y[labelled])
        if below:
            raise ValueError(
                f"y has labels below -1 ({below[:5]}) beside y = -1, so -1 looks like one of "
                "the classes; but without sample_domain, y = -1 marks the unlabelled target "
                "rows, and the classes must be non-negative (as in skada). Recode the classes "
                "(e.g. with sklearn.preprocessing.LabelEncoder) and give the target rows "
                "y = -1."
            )
        domains = Domains(labelled, ~labelled, labelled)
        # the labels are what makes a row a source row here: none, no source
        _require_labelled_source(domains)
        if np.issubdtype(y.dtype, np.number):
            warnings.warn(
                "y = -1 is read as 'unlabelled target row' (no sample_domain was given). If "
                "-1 is one of your classes (-1, 0, 1 as negative, neutral, positive, say), "
                "recode the classes first. Pass sample_domain (negative for target rows) to "
                "say which rows are the target, and this warning goes.",
                UserWarning,
                stacklevel=stacklevel,
            )
        return domains

    sample_domain = column_or_1d(sample_domain)
    if n_samples is not None and len(sample_domain) != n_samples:
        raise ValueError(
            f"sample_domain has {len(sample_domain)} entries but X has {n_samples} rows: "
            "give one domain per row (positive for source, negative for target)."
        )
    if y is None:
        labelled = np.ones(len(sample_domain), dtype=bool)
    if not np.issubdtype(sample_domain.dtype, np.number) or np.any(sample_domain == 0):
        raise ValueError(
            "sample_domain must hold positive numbers (source) or negative numbers "
            "(target), not 0."
        )
    source, target = sample_domain > 0, sample_domain < 0
    if not target.any():
        raise ValueError(
            "No target rows: sample_domain has no negative entry; give the target rows a "
            "negative sample_domain."
        )
    if not source.any():
        raise ValueError("No source rows: sample_domain has no positive entry.")
    return Domains(source, target, labelled)


def _labels_below_placeholder(labels):
    """Return the distinct numeric labels below ``-1`` (none for strings)."""
    if labels.dtype.kind in "iuf":
        below = labels[labels < UNLABELLED]
    elif labels.dtype.kind == "O":
        below = [v for v in labels if isinstance(v, Real) and v < UNLABELLED]
    else:
        return []
    return np.unique(below).tolist()


def _require_labelled_source(domains):
    """Raise the one error for source rows that all have ``y = -1``."""
    if not (domains.source & domains.labelled).any():
        raise ValueError(
            "No labelled source rows: every source row has y = -1 (without sample_domain, "
            "the rows with a label are the source rows); give the source rows their labels."
        )


def source_rows(sample_domain, n_samples):
    """Mask of the rows that ``sample_domain`` marks as source rows (none when it is None)."""
    if sample_domain is None:
        return np.zeros(n_samples, dtype=bool)
    sample_domain = column_or_1d(sample_domain)
    if len(sample_domain) != n_samples:
        raise ValueError(
            f"sample_domain has {len(sample_domain)} entries but X has {n_samples} rows."
        )
    return sample_domain > 0


def check_labels(y, domains):
    """Validate the labels of the labelled rows; return their classes.

    Raises a clear error for no labelled source rows and for a single class.
    """
    _require_labelled_source(domains)
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


def fit_weighted(estimator, X, y, sample_weight=None):
    """Fit ``estimator`` with sample weights; a Pipeline gets them at its last step.

    The weights are ours to give, whatever metadata routing the user has set up around
    the adaptation method, so the inner ``fit`` runs with routing off.
    """
    if sample_weight is None:
        return estimator.fit(X, y)
    with sklearn.config_context(enable_metadata_routing=False):
        if isinstance(estimator, Pipeline):
            name = estimator.steps[-1][0]
            return estimator.fit(X, y, **{f"{name}__sample_weight": sample_weight})
        return estimator.fit(X, y, sample_weight=sample_weight)


def default_estimator(estimator):
    """``estimator``, or the default classifier, ``LogisticRegression(max_iter=1000)``, if None."""
    return LogisticRegression(max_iter=1000) if estimator is None else estimator


def _estimator(adaptation):
    if getattr(adaptation, "estimator_", None) is not None:
        return adaptation.estimator_
    return default_estimator(adaptation.estimator)


def _estimator_has(attr):
    return lambda adaptation: hasattr(_estimator(adaptation), attr)


class _AdaptationClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """What every adaptation method shares: ``estimator``, fit's checks and ``score``.

    Subclasses merge their own constraints into ``_parameter_constraints``.
    """

    _parameter_constraints: dict = {"estimator": [None, HasMethods(["fit", "predict"])]}

    def _validate_fit(self, X, y, sample_domain, stacklevel):
        """Validate the parameters, ``X`` and ``y``; split the domains.

        Returns ``(X, y, domains, classes)``. ``stacklevel`` counts the frames from this
        method up to the user's call, as :func:`warnings.warn` does, so that the "No target
        rows" warning points at that call.
        """
        self._validate_params()
        require_y(y)
        X = validate_data(self, X, dtype=np.float64)
        y = column_or_1d(y, warn=True)
        domains = _split_domains(y, sample_domain, len(X), stacklevel=stacklevel + 1)
        return X, y, domains, check_labels(y, domains)

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


class _DomainAdaptation(_AdaptationClassifier):
    """Fit an adapter on source and target rows, then ``estimator`` on the labelled rows.

    Subclasses implement ``_adapt(X, y, domains)`` returning the adapted rows and a weight
    per row (either may be None for "unchanged"), and ``_adapt_rows(X, source)`` for new rows
    at prediction time (``source``: a mask of the rows to take as source rows; the others are
    target rows).
    """

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
            None (see :func:`split_domains`).

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._fit(X, y, sample_domain)
        return self

    def _fit(self, X, y, sample_domain):
        """Fit; return the adapted rows of ``X`` (source rows mapped as source)."""
        # user -> fit or fit_transform -> _fit -> _validate_fit
        X, y, domains, _ = self._validate_fit(X, y, sample_domain, stacklevel=4)
        X_adapted, weights = self._adapt(X, y, domains)
        if X_adapted is None:
            X_adapted = X
        rows = domains.labelled
        self.estimator_ = clone(_estimator(self))
        fit_weighted(
            self.estimator_, X_adapted[rows], y[rows], None if weights is None else weights[rows]
        )
        self.classes_ = self.estimator_.classes_
        return X_adapted

    def _adapt_rows(self, X, source):
        return X

    def _prepared(self, X, sample_domain):
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._adapt_rows(X, source_rows(sample_domain, len(X)))

    def predict(self, X, sample_domain=None):
        """Predict classes of (target) rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to predict, taken as target rows.
        sample_domain : array-like of shape (n_samples,), default=None
            Positive entries mark rows to map as source rows (a feature-based method maps
            source and target rows differently; the unsupervised scorers of
            :mod:`sktransfer.adaptation` predict held-out source rows this way). None takes
            every row as a target row.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Predicted classes.
        """
        X = self._prepared(X, sample_domain)
        return self.estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X, sample_domain=None):
        """Class probabilities of (target) rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to predict, taken as target rows.
        sample_domain : array-like of shape (n_samples,), default=None
            Positive entries mark rows to map as source rows; None takes every row as a
            target row.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities, columns in the order of ``classes_``.
        """
        X = self._prepared(X, sample_domain)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X, sample_domain=None):
        """Decision function of the wrapped estimator on (target) rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to predict, taken as target rows.
        sample_domain : array-like of shape (n_samples,), default=None
            Positive entries mark rows to map as source rows; None takes every row as a
            target row.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The wrapped estimator's decision function.
        """
        X = self._prepared(X, sample_domain)
        return self.estimator_.decision_function(X)
