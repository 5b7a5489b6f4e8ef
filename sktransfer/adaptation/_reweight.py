"""Instance-based transfer: re-weight source rows so that they look like the target."""

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.linalg import eigvalsh
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, check_cv
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import _DomainAdaptation
from ._docs import fill_doc
from ._domains import _split_domains
from ._kernels import kernel, kernel_width, median_heuristic, median_heuristic_memory
from ._memory import require_memory


class _Reweighting(_DomainAdaptation):
    """Weights for the source rows feed the wrapped estimator's ``sample_weight``.

    ``weights_`` holds the weights of the source rows seen in ``fit`` (mean 1); target
    rows that carry labels are used with weight 1.
    """

    _weighs_rows = True

    def _adapt(self, X, y, domains):
        return None, self._weigh(X, domains)

    def _weigh(self, X, domains):
        source, target = domains.source, domains.target
        raw = np.asarray(self._source_weights(X[source], X[target]), dtype=np.float64)
        raw = np.clip(raw, 0, None)
        if not np.isfinite(raw).all() or raw.sum() <= 0:
            raise ValueError(
                f"{type(self).__name__} found no source row that resembles the target: "
                "all weights are zero. Check the kernel width (gamma)."
            )
        self.weights_ = raw / raw.mean()
        weights = np.ones(len(X))
        weights[source] = self.weights_
        return weights

    def fit_weights(self, X, y=None, sample_domain=None):
        """Fit the weighting alone (no estimator) and return a weight per row.

        Use it to weigh the source rows for an estimator of your own:
        ``estimator.fit(X[source], y[source], sample_weight=weights[source])``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Source and target rows.
        y : array-like of shape (n_samples,), default=None
            Labels with ``-1`` for the target rows; only used to tell the domains apart
            when ``sample_domain`` is None.
        sample_domain : array-like of shape (n_samples,), default=None
            Positive for source rows, negative for target rows.

        Returns
        -------
        sample_weight : ndarray of shape (n_samples,)
            The importance weight of each source row (mean 1 over the source), and 1 for
            each target row.
        """
        self._validate_params()
        for fitted in ("estimator_", "classes_"):  # a previous fit no longer applies
            self.__dict__.pop(fitted, None)
        X = validate_data(self, X, dtype=np.float64)
        return self._weigh(X, _split_domains(y, sample_domain, len(X), stacklevel=3))


def _project(v, upper, low, high):
    """Euclidean projection of ``v`` on ``{0 <= b <= upper, low <= sum(b) <= high}``."""
    b = np.clip(v, 0, upper)
    total = b.sum()
    if low <= total <= high:
        return b
    goal = high if total > high else low
    # sum(clip(v - shift, 0, upper)) decreases with the shift: bisect for the goal
    left, right = v.min() - upper, v.max()
    for _ in range(200):
        middle = (left + right) / 2
        if np.clip(v - middle, 0, upper).sum() > goal:
            left = middle
        else:
            right = middle
        if right - left <= 1e-14 * max(1.0, abs(middle)):
            break
    return np.clip(v - (left + right) / 2, 0, upper)


def _kmm_solve(K, kappa, upper, low, high, max_iter, tol):
    """Minimise ``b K b / 2 - kappa b`` on the KMM constraints; return ``(b, n_iter)``.

    Accelerated projected gradient (FISTA) with adaptive restart: one product with ``K``
    per iteration, so it scales to thousands of source rows, where a generic QP solver
    (SLSQP) takes minutes.
    """
    step = 1 / max(eigvalsh(K, subset_by_index=[len(K) - 1, len(K) - 1])[0], 1e-12)
    b = _project(np.ones(len(K)), upper, low, high)
    z, t = b, 1.0
    for n_iter in range(1, max_iter + 1):
        new = _project(z - step * (K @ z - kappa), upper, low, high)
        if (z - new) @ (new - b) > 0:  # the momentum went uphill: restart it
            t_next, z = 1.0, new
        else:
            t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
            z = new + (t - 1) / t_next * (new - b)
        moved = np.abs(new - b).max()
        b, t = new, t_next
        if moved <= tol:
            return b, n_iter
    warnings.warn(
        f"KMM did not converge in max_iter={max_iter} iterations; raise max_iter or tol.",
        ConvergenceWarning,
        stacklevel=4,
    )
    return b, max_iter


KMM_MEMORY_MARGIN = 1.15
"""The peaks measured (RSS) came within this factor of the arrays :func:`kmm_memory` counts."""


def kmm_memory(n_source, n_target):
    """Bytes KMM's ``fit`` needs at its peak, for so many source and target rows.

    The ``n_source x n_source`` float64 kernel, and one more matrix while it is held: the
    eigen-solver's copy of it (for the step size), or the source-by-target kernel, whichever
    is larger. Measured peaks (tracemalloc and RSS) were 2.0 to 2.2 kernels with at most as
    many target rows as source rows; :data:`KMM_MEMORY_MARGIN` covers the rest. Below a
    thousand rows or so, the median heuristic's distances, computed before, are larger.
    """
    kernels = 8 * n_source * (n_source + max(n_source, n_target))
    return int(KMM_MEMORY_MARGIN * max(kernels, median_heuristic_memory(n_source + n_target)))


@fill_doc
class KMM(_Reweighting):
    """Kernel mean matching: weights that match the source and target kernel means.

    Solves the quadratic programme of Huang et al. for source weights in ``[0, B]``
    whose weighted source mean in the kernel's feature space is closest to the target
    mean, then fits ``estimator`` on the labelled rows with these weights. Built for
    covariate shift (the same labelling rule, a different input distribution). The
    weights exist for the source rows seen in ``fit`` only; :class:`KLIEP` and
    :class:`DiscriminatorReweight` also weigh new rows.

    Parameters
    ----------
    estimator : estimator, default=None
        A classifier whose ``fit`` takes ``sample_weight`` (or a Pipeline whose last step's
        does); None means ``LogisticRegression(max_iter=1000)``.
    kernel : str, default="rbf"
        A kernel of :func:`sklearn.metrics.pairwise.pairwise_kernels`.
    gamma : float, default=None
        Kernel width, for the kernels that take one. None means the median heuristic:
        ``1 / median`` of the squared Euclidean distances between distinct rows of ``fit``
        (source and target, at most 1000 evenly spaced rows).
    B : float, default=1000.0
        Upper bound of a weight.
    eps : float, default=None
        Tolerance on the mean weight (``|mean(w) - 1| <= eps``); None means
        ``(sqrt(n_source) - 1) / sqrt(n_source)``.
    max_iter : int, default=10000
        Iterations of the solver (accelerated projected gradient).
    tol : float, default=1e-4
        Stop when no weight moves more than this in an iteration (the weights have mean
        1, so this is a relative precision).

    Attributes
    ----------
    weights_ : ndarray of shape (n_source,)
        Weights of the source rows seen in ``fit``, mean 1.
    gamma_ : float or None
        The kernel width used (None for a kernel without one, such as ``"linear"``).
    n_iter_ : int
        Iterations the solver ran.
    {fitted_attributes}

    See Also
    --------
    KLIEP : Importance weights as a sum of kernels, also for new rows.
    DiscriminatorReweight : Importance weights from a domain classifier.
    CORAL : Align the features instead of re-weighting the rows.

    Notes
    -----
    KMM holds the ``n_source x n_source`` kernel in float64 and, while it solves, one more
    matrix as large (the eigen-solver's copy, or the source-by-target kernel when there
    are more target rows): about ``16 * n_source**2`` bytes, 6.4 GB for 20,000 source rows
    and 40 GB for 50,000. ``fit`` checks this against the memory available (the least of
    the system's, a cgroup's limit and ``ulimit -v``) before it allocates, and raises a
    ``MemoryError`` that names the size when it does not fit: then fit on a random
    subsample of the source rows, or use :class:`KLIEP` or :class:`DiscriminatorReweight`,
    whose memory grows linearly with the rows.

    References
    ----------
    Huang et al., "Correcting sample selection bias by unlabeled data", NeurIPS 2006.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adaptation import KMM
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(0, 1, size=(100, 1)); Xt = rng.normal(1, 0.5, size=(50, 1))
    >>> X = np.vstack([Xs, Xt])
    >>> y = np.r_[(Xs[:, 0] > 0.5).astype(int), -np.ones(50, dtype=int)]
    >>> model = KMM().fit(X, y)
    >>> bool(model.weights_[Xs[:, 0] > 1].mean() > model.weights_[Xs[:, 0] < 0].mean())
    True
    """

    _parameter_constraints: dict = {
        **_DomainAdaptation._parameter_constraints,
        "kernel": [str],
        "gamma": [Interval(Real, 0, None, closed="neither"), None],
        "B": [Interval(Real, 0, None, closed="neither")],
        "eps": [Interval(Real, 0, None, closed="left"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self, estimator=None, *, kernel="rbf", gamma=None, B=1000.0, eps=None, max_iter=10000,
        tol=1e-4,
    ):  # fmt: skip
        self.estimator = estimator
        self.kernel = kernel
        self.gamma = gamma
        self.B = B
        self.eps = eps
        self.max_iter = max_iter
        self.tol = tol

    def _source_weights(self, Xs, Xt):
        ns, nt = len(Xs), len(Xt)
        require_memory(
            kmm_memory(ns, nt),
            f"KMM with {ns} source rows and {nt} target rows",
            "Fit KMM on a random subsample of the source rows (its memory grows with their "
            "square: half the rows need a quarter of it), or use KLIEP or "
            "DiscriminatorReweight, whose memory grows linearly with the rows.",
        )
        self.gamma_ = kernel_width(self.gamma, self.kernel, np.vstack([Xs, Xt]))
        K = kernel(Xs, Xs, self.kernel, self.gamma_)
        kappa = kernel(Xs, Xt, self.kernel, self.gamma_).sum(axis=1) * ns / nt
        eps = (np.sqrt(ns) - 1) / np.sqrt(ns) if self.eps is None else self.eps
        weights, self.n_iter_ = _kmm_solve(
            K, kappa, self.B, ns * (1 - eps), ns * (1 + eps), self.max_iter, self.tol
        )
        return weights


AUTO_GAMMA_FACTORS = np.array([0.1, 0.3, 1.0, 3.0, 10.0])
"""KLIEP's ``gamma="auto"`` tries these multiples of the median heuristic."""


def _kliep_alpha(A, b, lr, max_iter, tol):
    """KLIEP's projected gradient ascent; return ``(alpha, n_iter)``.

    ``A``: kernels of the target rows at the centres; ``b``: mean kernels of the source
    rows. Maximises ``mean(log(A @ alpha))`` subject to ``b @ alpha = 1``, ``alpha >= 0``.
    """
    alpha = np.ones(A.shape[1]) / max(b.sum(), 1e-12)
    previous = -np.inf
    for n_iter in range(1, max_iter + 1):
        alpha = alpha + lr * A.T @ (1 / np.maximum(A @ alpha, 1e-12))
        alpha = alpha + (1 - b @ alpha) * b / (b @ b)
        alpha = np.maximum(alpha, 0)
        alpha = alpha / max(b @ alpha, 1e-12)
        objective = np.log(np.maximum(A @ alpha, 1e-12)).mean()
        if abs(objective - previous) < tol:
            return alpha, n_iter
        previous = objective
    return alpha, max_iter


class _RatioReweighting(_Reweighting):
    """A re-weighting whose density ratio is a function: new rows get weights too.

    Subclasses implement ``_ratio(X)`` from their fitted state.
    """

    def density_ratio(self, X):
        """Estimated ``p_target(x) / p_source(x)`` of rows ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to weigh.

        Returns
        -------
        ratio : ndarray of shape (n_samples,)
            The density ratio (not normalised like ``weights_``).
        """
        check_is_fitted(self, "weights_")
        return self._ratio(validate_data(self, X, dtype=np.float64, reset=False))


@fill_doc
class KLIEP(_RatioReweighting):
    """Kullback-Leibler importance estimation: a density ratio as a sum of kernels.

    The ratio ``p_target / p_source`` is modelled as a non-negative combination of
    Gaussian kernels centred on target rows, fitted to maximise the likelihood of the
    target rows under the re-weighted source; the wrapped estimator then learns with
    these weights. Built for covariate shift. The kernel width can be chosen among
    several by likelihood cross-validation on the target rows, which needs no labels.
    Unlike :class:`KMM` it gives weights for new rows too (:meth:`density_ratio`).

    Parameters
    ----------
    estimator : estimator, default=None
        A classifier whose ``fit`` takes ``sample_weight`` (or a Pipeline whose last step's
        does); None means ``LogisticRegression(max_iter=1000)``.
    gamma : "auto", float, list of float or None, default="auto"
        Width of the Gaussian kernels. A list: the one with the best held-out
        likelihood of the target rows (``cv`` folds), as Sugiyama et al. choose it. None
        means the median heuristic: ``1 / median`` of the squared Euclidean distances
        between distinct rows of ``fit`` (source and target, at most 1000 evenly spaced
        rows). ``"auto"``: the list of the median heuristic times 0.1, 0.3, 1, 3 and 10
        (the median heuristic alone when there are fewer target rows than folds).
    cv : int, default=5
        Folds of the likelihood cross-validation when ``gamma`` is a list or ``"auto"``.
    n_centers : int, default=100
        Kernel centres, drawn from the target rows.
    max_iter : int, default=1000
        Iterations of the projected gradient ascent.
    lr : float, default=1e-3
        Its step size.
    tol : float, default=1e-6
        Stop when the log-likelihood changes less than this.
    random_state : int, RandomState or None, default=None
        Picks the centres and the folds.

    Attributes
    ----------
    weights_ : ndarray of shape (n_source,)
        Weights of the source rows seen in ``fit``, mean 1.
    gamma_ : float
        The kernel width used.
    cv_log_likelihood_ : ndarray of shape (n_gammas,)
        Held-out log-likelihood of each ``gamma`` (only when ``gamma`` is a list or
        ``"auto"``).
    centers_ : ndarray of shape (n_centers, n_features)
        The kernel centres (target rows).
    alpha_ : ndarray of shape (n_centers,)
        Coefficients of the kernels.
    n_iter_ : int
        Iterations of the gradient ascent.
    {fitted_attributes}

    See Also
    --------
    KMM : Weights by kernel mean matching.
    DiscriminatorReweight : Importance weights from a domain classifier.

    References
    ----------
    Sugiyama et al., "Direct importance estimation with model selection and its
    application to covariate shift adaptation", NeurIPS 2007.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adaptation import KLIEP
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(0, 1, size=(100, 1)); Xt = rng.normal(1, 0.5, size=(50, 1))
    >>> X = np.vstack([Xs, Xt])
    >>> y = np.r_[(Xs[:, 0] > 0.5).astype(int), -np.ones(50, dtype=int)]
    >>> model = KLIEP(gamma=[0.1, 1.0, 10.0], random_state=0).fit(X, y)
    >>> ratio = model.density_ratio([[-1.0], [1.0]])
    >>> bool(ratio[1] > ratio[0])
    True
    """

    _parameter_constraints: dict = {
        **_DomainAdaptation._parameter_constraints,
        "gamma": [
            StrOptions({"auto"}),
            Interval(Real, 0, None, closed="neither"),
            "array-like",
            None,
        ],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "n_centers": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self, estimator=None, *, gamma="auto", cv=5, n_centers=100, max_iter=1000, lr=1e-3,
        tol=1e-6, random_state=None,
    ):  # fmt: skip
        self.estimator = estimator
        self.gamma = gamma
        self.cv = cv
        self.n_centers = n_centers
        self.max_iter = max_iter
        self.lr = lr
        self.tol = tol
        self.random_state = random_state

    def _fit_ratio(self, Xs, Xt, gamma, rng):
        picked = rng.choice(len(Xt), min(self.n_centers, len(Xt)), replace=False)
        centers = Xt[picked]
        A = rbf_kernel(Xt, centers, gamma=gamma)
        b = rbf_kernel(Xs, centers, gamma=gamma).mean(axis=0)
        alpha, n_iter = _kliep_alpha(A, b, self.lr, self.max_iter, self.tol)
        return centers, alpha, n_iter

    def _select_gamma(self, Xs, Xt, rng):
        if isinstance(self.gamma, str):  # "auto"
            median = median_heuristic(np.vstack([Xs, Xt]))
            if len(Xt) < self.cv:
                return median
            gammas = median * AUTO_GAMMA_FACTORS
        else:
            gammas = np.atleast_1d(np.asarray(self.gamma, dtype=np.float64))
        if len(gammas) == 1:
            return float(gammas[0])
        if len(Xt) < self.cv:
            raise ValueError(
                f"KLIEP chooses gamma by {self.cv}-fold cross-validation over the target "
                f"rows, but there are {len(Xt)}; give one gamma or fewer folds (cv)."
            )
        folds = list(KFold(self.cv, shuffle=True, random_state=rng).split(Xt))
        likelihood = []
        for gamma in gammas:
            held_out = []
            for train, test in folds:
                centers, alpha, _ = self._fit_ratio(Xs, Xt[train], gamma, rng)
                ratio = rbf_kernel(Xt[test], centers, gamma=gamma) @ alpha
                held_out.append(np.log(np.maximum(ratio, 1e-12)).mean())
            likelihood.append(np.mean(held_out))
        self.cv_log_likelihood_ = np.asarray(likelihood)
        return float(gammas[int(np.argmax(likelihood))])

    def _source_weights(self, Xs, Xt):
        rng = check_random_state(self.random_state)
        self.__dict__.pop("cv_log_likelihood_", None)
        if self.gamma is None:
            self.gamma_ = median_heuristic(np.vstack([Xs, Xt]))
        else:
            self.gamma_ = self._select_gamma(Xs, Xt, rng)
        self.centers_, self.alpha_, self.n_iter_ = self._fit_ratio(Xs, Xt, self.gamma_, rng)
        return self._ratio(Xs)

    def _ratio(self, X):
        return rbf_kernel(X, self.centers_, gamma=self.gamma_) @ self.alpha_


DISCRIMINATOR_CS = np.logspace(-4, 0, 5)
"""The ``C`` values the default discriminator chooses from."""


def _fit_default_discriminator(X, domain):
    """Fit the calibrated, regularised default discriminator; return it fitted.

    Standardised features and a logistic regression whose ``C`` is chosen by 3-fold
    log-loss on the domain labels, then refitted on every row. ``C`` stays at most 1: a
    weakly regularised discriminator separates the domains of many features with
    over-confident probabilities (and takes long to do so).
    """
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        {"logisticregression__C": DISCRIMINATOR_CS},
        scoring="neg_log_loss",
        cv=StratifiedKFold(min(3, np.bincount(domain).min())),
    )
    return search.fit(X, domain).best_estimator_


def _log_odds(discriminator, X):
    """``log p(target | x) - log p(source | x)``, with probabilities kept off 0 and 1."""
    p = np.clip(discriminator.predict_proba(X)[:, 1], 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


@fill_doc
class DiscriminatorReweight(_RatioReweighting):
    """Weights from a domain classifier: ``p(target | x) / p(source | x)``.

    A probabilistic classifier learns to tell source rows from target rows; a source row
    that looks like a target row gets a large weight, and the wrapped estimator learns
    with these weights. Built for covariate shift, and scales to many rows and features
    better than :class:`KMM`.

    The weights of the source rows of ``fit`` come from out-of-fold probabilities
    (cross-fitting): each row is weighed by a discriminator that did not see it. A
    discriminator judged on its own training rows separates the domains perfectly as soon
    as there are more features than rows, so that every source row looks equally unlike
    the target and the weights say nothing.

    Parameters
    ----------
    estimator : estimator, default=None
        A classifier whose ``fit`` takes ``sample_weight`` (or a Pipeline whose last step's
        does); None means ``LogisticRegression(max_iter=1000)``.
    discriminator : classifier with ``predict_proba``, default=None
        Tells the domains apart. None means a calibrated, regularised one: standardised
        features and a logistic regression whose ``C`` (``1e-4`` to ``1``) is chosen by
        3-fold log-loss on the domain labels.
    cv : int, cross-validation generator or None, default=5
        Folds for the out-of-fold probabilities of the source rows (stratified by domain);
        None uses the discriminator fitted on all rows (in-sample). Either way, ``fit``
        needs at least 2 source rows and 2 target rows.
    max_weight : float, default=100.0
        The density ratio is clipped here (in ``weights_`` before normalisation, and in
        :meth:`density_ratio`), so that a few rows cannot take over.

    Attributes
    ----------
    weights_ : ndarray of shape (n_source,)
        Weights of the source rows seen in ``fit``, mean 1.
    discriminator_ : classifier
        The domain classifier fitted on all rows (class 1 = target); it gives
        :meth:`density_ratio` for new rows.
    prior_ratio_ : float
        ``n_source / n_target``, which turns the classifier's odds into a density ratio.
    {fitted_attributes}

    See Also
    --------
    KMM : Weights by kernel mean matching.
    KLIEP : Importance weights as a sum of kernels.

    References
    ----------
    Bickel, Brückner and Scheffer, "Discriminative learning under covariate shift", JMLR
    2009 (the ratio from a domain classifier).

    Chernozhukov et al., "Double/debiased machine learning for treatment and structural
    parameters", The Econometrics Journal 2018 (cross-fitting).

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adaptation import DiscriminatorReweight
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(0, 1, size=(100, 1)); Xt = rng.normal(1, 1, size=(100, 1))
    >>> X = np.vstack([Xs, Xt])
    >>> y = np.r_[(Xs[:, 0] > 0.5).astype(int), -np.ones(100, dtype=int)]
    >>> model = DiscriminatorReweight().fit(X, y)
    >>> ratio = model.density_ratio([[-1.0], [1.0]])
    >>> bool(ratio[1] > ratio[0])
    True
    """

    _parameter_constraints: dict = {
        **_DomainAdaptation._parameter_constraints,
        "discriminator": [None, HasMethods(["fit", "predict_proba"])],
        "cv": ["cv_object"],
        "max_weight": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, estimator=None, *, discriminator=None, cv=5, max_weight=100.0):
        self.estimator = estimator
        self.discriminator = discriminator
        self.cv = cv
        self.max_weight = max_weight

    def _source_weights(self, Xs, Xt):
        if min(len(Xs), len(Xt)) < 2:
            counts = ", ".join(
                f"{n} {domain} row{'s' * (n != 1)}"
                for n, domain in ((len(Xs), "source"), (len(Xt), "target"))
            )
            raise ValueError(
                "DiscriminatorReweight needs at least 2 source rows and 2 target rows to learn "
                f"to tell the domains apart; got {counts}. Give more rows of the smaller "
                "domain (unlabelled target rows will do)."
            )
        X = np.vstack([Xs, Xt])
        domain = np.r_[np.zeros(len(Xs), dtype=int), np.ones(len(Xt), dtype=int)]
        if self.discriminator is None:
            self.discriminator_ = _fit_default_discriminator(X, domain)
        else:
            self.discriminator_ = clone(self.discriminator).fit(X, domain)
        base = clone(self.discriminator_)  # the default: with the C it chose
        self.prior_ratio_ = len(Xs) / len(Xt)
        if self.cv is None:
            return self._ratio(Xs)
        folds = check_cv(self.cv, domain, classifier=True)
        log_odds = np.empty(len(Xs))
        for train, test in folds.split(X, domain):
            rows = test[test < len(Xs)]
            if len(rows):
                log_odds[rows] = _log_odds(clone(base).fit(X[train], domain[train]), X[rows])
        return self._from_log_odds(log_odds)

    def _from_log_odds(self, log_odds):
        return np.minimum(self.prior_ratio_ * np.exp(log_odds), self.max_weight)

    def _ratio(self, X):
        return self._from_log_odds(_log_odds(self.discriminator_, X))
