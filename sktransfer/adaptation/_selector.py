"""Choose an adaptation method, or none, by an unsupervised score."""

import warnings
from inspect import signature
from numbers import Integral, Real

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import ParameterGrid
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._base import (
    _AdaptationClassifier,
    _DomainAdaptation,
    _PredictsByDomain,
    default_estimator,
    read_labels,
    require_y,
    sample_weight_problem,
)
from ._docs import fill_doc
from ._jda import JointDistributionAdaptation
from ._reweight import DiscriminatorReweight
from ._scoring import CircularValidation
from ._splitters import SourceKFold
from ._subspace import CORAL, SubspaceAlignment, TransferComponentAnalysis


@fill_doc
class SourceOnly(_DomainAdaptation):
    """No adaptation: the wrapped estimator fitted on the labelled rows alone.

    The baseline every adaptation method must beat, in the same form as the methods (it
    takes ``sample_domain`` and the ``-1`` labels, and ignores the unlabelled rows), so
    that it can be scored, searched and chosen like them.

    Parameters
    ----------
    estimator : estimator, default=None
        Any scikit-learn classifier; None means ``LogisticRegression(max_iter=1000)``.

    Attributes
    ----------
    {fitted_attributes}

    See Also
    --------
    AdaptationSelector : Chooses between it and the adaptation methods.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adaptation import SourceOnly
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0], [9.0]])
    >>> SourceOnly().fit(X, [0, 0, 1, 1, -1]).predict([[0.5], [2.5]])
    array([0, 1])
    """

    def __init__(self, estimator=None):
        self.estimator = estimator

    def _adapt(self, X, y, domains):
        return None, None


def default_candidates(estimator):
    """Return the methods :class:`AdaptationSelector` tries when ``candidates`` is None.

    Each wraps a clone of ``estimator``: CORAL, subspace alignment, TCA (linear, in the
    input space) and JDA with their defaults, and the discriminator's importance weights.
    """
    return [
        CORAL(clone(estimator)),
        SubspaceAlignment(clone(estimator)),
        TransferComponentAnalysis(clone(estimator), kernel="linear"),
        JointDistributionAdaptation(clone(estimator)),
        DiscriminatorReweight(clone(estimator)),
    ]


def _expand(candidates):
    """``[(name, unfitted estimator)]`` from estimators and ``(estimator, grid)`` pairs."""
    expanded = []
    for candidate in candidates:
        if isinstance(candidate, tuple):
            if len(candidate) != 2 or not isinstance(candidate[1], (dict, list)):
                raise ValueError(
                    "A candidate is an estimator or an (estimator, param_grid) pair; got "
                    f"{candidate!r}."
                )
            base, grid = candidate
            for params in ParameterGrid(grid):
                name = type(base).__name__
                if params:
                    name += "(" + ", ".join(f"{k}={v!r}" for k, v in params.items()) + ")"
                expanded.append((name, clone(base).set_params(**params)))
        elif hasattr(candidate, "fit"):
            expanded.append((type(candidate).__name__, clone(candidate)))
        else:
            raise ValueError(
                f"A candidate is an estimator or an (estimator, param_grid) pair; got "
                f"{candidate!r}."
            )
    return expanded


def _skip_unweighable(named, stacklevel):
    """``named`` without the candidates that weigh rows for an estimator that takes no weights.

    Warns, naming each candidate it skips and why; ``stacklevel`` counts the frames from
    here up to the user's call, as :func:`warnings.warn` does.
    """
    kept, skipped, problems = [], [], []
    for name, candidate in named:
        problem = None
        if getattr(candidate, "_weighs_rows", False):
            estimator = default_estimator(candidate.estimator)
            problem = sample_weight_problem(type(candidate).__name__, estimator)
        if problem is None:
            kept.append((name, candidate))
        else:
            skipped.append(name)
            problems.append(problem)
    if skipped:
        warnings.warn(
            f"AdaptationSelector skips {', '.join(skipped)}: {' '.join(dict.fromkeys(problems))}"
            " Give an estimator whose fit takes sample_weight to try them.",
            UserWarning,
            stacklevel=stacklevel + 1,
        )
    return kept


def _cv_results(named, scores, n_folds):
    """``cv_results_`` of the candidates ``named`` from their ``scores`` on the folds."""
    gains = scores - scores[0]
    std_err = gains.std(axis=1, ddof=1) / np.sqrt(n_folds) if n_folds > 1 else 0.0
    return {
        "name": [name for name, _ in named],
        "estimator": [candidate for _, candidate in named],
        "mean_score": scores.mean(axis=1),
        "std_score": scores.std(axis=1),
        "gain_std_err": np.broadcast_to(std_err, (len(named),)).copy(),
        **{f"split{j}_score": scores[:, j] for j in range(n_folds)},
    }


def _fit_candidate(model, X, y, sample_domain):
    if sample_domain is not None and "sample_domain" in signature(model.fit).parameters:
        return model.fit(X, y, sample_domain=sample_domain)
    return model.fit(X, y)


class AdaptationSelector(_PredictsByDomain, _AdaptationClassifier):
    """Choose the adaptation method, and its parameters, by a score that needs no target label.

    Every candidate, and source-only (the estimator without adaptation), is fitted on the
    training folds of ``cv`` and scored on its test folds by ``scoring``, an unsupervised
    scorer of :mod:`sktransfer.adaptation`. The candidate with the best mean score is
    chosen only if it beats source-only by more than ``margin`` standard errors of their
    paired difference over the folds; otherwise source-only is. So an adaptation is used
    when the evidence for it is clear, and negative transfer needs the score itself to be
    misled.

    Parameters
    ----------
    estimator : estimator, default=None
        The classifier of source-only and of the default candidates; None means
        ``LogisticRegression(max_iter=1000)``.
    candidates : list, default=None
        Adaptation methods, each an estimator or an ``(estimator, param_grid)`` pair (every
        combination of the grid is a candidate). None means CORAL, subspace alignment, TCA
        (linear) and JDA with their defaults, and :class:`DiscriminatorReweight`, each
        wrapping ``estimator``. Source-only is always a candidate as well. A candidate that
        weighs the rows (:class:`KMM`, :class:`KLIEP`, :class:`DiscriminatorReweight`,
        :class:`TrAdaBoost`) around an estimator whose ``fit`` takes no ``sample_weight``
        (``KNeighborsClassifier``, say) is skipped, with a warning that names it.
    scoring : callable, default=None
        ``scoring(estimator, X, y, sample_domain=...)``, greater is better: one of
        :class:`CircularValidation`, :class:`ImportanceWeightedScorer`,
        :class:`DeepEmbeddedValidation`, :class:`PredictionEntropyScorer`. None means
        ``CircularValidation()``.
    cv : int or splitter, default=5
        An int is the number of folds of :class:`SourceKFold` (every target row in every
        fold); a splitter's ``split(X, y, sample_domain)`` gives the folds.
    margin : float, default=1.0
        How many standard errors of the paired score difference a candidate must beat
        source-only by; 0 takes the best mean score, whatever the noise.

        Without target rows (``y`` without ``-1`` and no ``sample_domain``) there is
        nothing to adapt to: source-only is chosen without scoring (the scores are NaN).
    random_state : int, RandomState or None, default=None
        Shuffles the folds when ``cv`` is an int.

    Attributes
    ----------
    best_estimator_ : estimator
        The chosen candidate (a :class:`SourceOnly` when no adaptation is chosen), fitted
        on all the rows.
    best_index_ : int
        Its index in ``cv_results_`` (0 is source-only).
    cv_results_ : dict
        ``"name"`` and ``"estimator"`` (unfitted) of each candidate, source-only first;
        ``"mean_score"``, ``"std_score"``, ``"split<i>_score"`` and ``"gain_std_err"`` (the
        standard error of the paired difference with source-only).
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        Number of features seen in ``fit`` (when the chosen estimator has it).

    See Also
    --------
    SourceOnly : The candidate that adapts nothing.
    CircularValidation, ImportanceWeightedScorer : Scores without target labels.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adaptation import CORAL, AdaptationSelector
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(size=(100, 2)); ys = (Xs.sum(axis=1) > 0).astype(int)
    >>> Z = rng.normal(size=(100, 2)); yt = (Z.sum(axis=1) > 0).astype(int)
    >>> Xt = Z @ [[3.0, 1.0], [0.0, 0.5]] + 2  # the target: a linear map of the source
    >>> X, y = np.vstack([Xs, Xt]), np.r_[ys, -np.ones(100, dtype=int)]
    >>> selector = AdaptationSelector(candidates=[CORAL()], random_state=0).fit(X, y)
    >>> selector.cv_results_["name"]
    ['source-only', 'CORAL']
    >>> type(selector.best_estimator_).__name__
    'CORAL'
    >>> float(selector.score(Xt, yt))
    0.87
    """

    _fitted_estimator = "best_estimator_"

    _parameter_constraints: dict = {
        **_AdaptationClassifier._parameter_constraints,
        "candidates": [list, None],
        "scoring": [callable, None],
        "cv": [Interval(Integral, 2, None, closed="left"), "cv_object"],
        "margin": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self, estimator=None, *, candidates=None, scoring=None, cv=5, margin=1.0,
        random_state=None,
    ):  # fmt: skip
        self.estimator = estimator
        self.candidates = candidates
        self.scoring = scoring
        self.cv = cv
        self.margin = margin
        self.random_state = random_state

    def _fit(self, X, y, sample_domain):
        """Score every candidate without target labels; fit the chosen one on all rows."""
        self._validate_params()
        require_y(y)
        # user -> fit -> _fit -> read_labels
        y, domains, _ = read_labels(y, sample_domain, None, stacklevel=4)
        named = self._named_candidates()
        # the folds need the domains: give the splitter and the scorer sample_domain
        domain = np.where(domains.source, 1, -1)
        folds = self._folds(X, y, domain)
        scores = self._score_folds(named, X, y, domain, folds)
        self.cv_results_ = _cv_results(named, scores, len(folds))
        self.best_index_ = self._choose(scores, self.cv_results_["gain_std_err"])
        with warnings.catch_warnings():
            # the "no target rows" warning was already given above, at the user's line
            warnings.filterwarnings("ignore", "No target rows to adapt to")
            # the domains as read above (so that y = -1 is not read, and warned of, again)
            domains_given = domain if folds else sample_domain
            chosen = clone(named[self.best_index_][1])
            self.best_estimator_ = _fit_candidate(chosen, X, y, domains_given)
        self.classes_ = self.best_estimator_.classes_
        if hasattr(self.best_estimator_, "n_features_in_"):
            self.n_features_in_ = self.best_estimator_.n_features_in_

    def _named_candidates(self):
        """``[(name, unfitted estimator)]``: source-only first, then every candidate."""
        estimator = default_estimator(self.estimator)
        candidates = self.candidates
        if candidates is None:
            candidates = default_candidates(estimator)
        # user -> fit -> _fit -> _named_candidates -> _skip_unweighable
        named = _skip_unweighable(_expand(candidates), stacklevel=4)
        return [("source-only", SourceOnly(clone(estimator))), *named]

    def _folds(self, X, y, domain):
        """``[(train, test)]`` of ``cv``; none without target rows (nothing to choose by)."""
        if (domain > 0).all():  # no target rows (warned)
            return []
        cv = self.cv
        if isinstance(cv, Integral):
            cv = SourceKFold(cv, random_state=self.random_state)
        return list(cv.split(X, y, sample_domain=domain))

    def _score_folds(self, named, X, y, domain, folds):
        """Scores of shape ``(n_candidates, n_folds)`` (one NaN column without folds)."""
        scoring = CircularValidation() if self.scoring is None else self.scoring
        scores = np.full((len(named), max(len(folds), 1)), np.nan)
        for i, (_, candidate) in enumerate(named):
            for j, (train, test) in enumerate(folds):
                model = _fit_candidate(
                    clone(candidate), _safe_indexing(X, train), y[train], domain[train]
                )
                scores[i, j] = scoring(
                    model, _safe_indexing(X, test), y[test], sample_domain=domain[test]
                )
        return scores

    def _choose(self, scores, gain_std_err):
        """Index of the best mean score, if it beats source-only by ``margin``; else 0.

        Without folds (no target rows) the scores are NaN and source-only is chosen.
        """
        if np.isnan(scores).all():
            return 0
        best = int(np.argmax(scores.mean(axis=1)))
        gain = (scores[best] - scores[0]).mean()
        if best and gain <= self.margin * gain_std_err[best]:
            return 0
        return best

    def _delegate(self, method, X, sample_domain):
        check_is_fitted(self, "best_estimator_")
        function = getattr(self.best_estimator_, method)
        if sample_domain is not None and "sample_domain" in signature(function).parameters:
            return function(X, sample_domain=sample_domain)
        return function(X)
