"""Instance-based transfer: re-weight source rows so that they look like the target."""

from numbers import Integral, Real

import numpy as np
from scipy.optimize import minimize
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import _DomainAdaptation


class _Reweighting(_DomainAdaptation):
    """Weights for the source rows feed the wrapped estimator's ``sample_weight``.

    ``weights_`` holds the weights of the source rows seen in ``fit`` (mean 1); target
    rows that carry labels are used with weight 1.
    """

    def _adapt(self, X, y, source, target, labelled):
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
        return None, weights

    def _gamma(self, X):
        if self.gamma is not None:
            return self.gamma
        var = X.var()
        return 1.0 / (X.shape[1] * var) if var > 0 else 1.0


_COMMON = {"estimator": [None, HasMethods(["fit", "predict"])]}


class KMM(_Reweighting):
    """Kernel mean matching: weights that match the source and target kernel means.

    Solves the quadratic programme of Huang et al. for weights in ``[0, B]`` whose
    weighted source mean in the kernel's feature space is closest to the target mean.
    Built for covariate shift (the same labelling rule, a different input distribution).

    Parameters
    ----------
    estimator : estimator, default=None
        A classifier whose ``fit`` takes ``sample_weight``; None means
        ``LogisticRegression(max_iter=1000)``.
    kernel : str, default="rbf"
        A kernel of :func:`sklearn.metrics.pairwise.pairwise_kernels`.
    gamma : float, default=None
        Kernel width; None means ``1 / (n_features * X.var())``.
    B : float, default=1000.0
        Upper bound of a weight.
    eps : float, default=None
        Tolerance on the mean weight (``|mean(w) - 1| <= eps``); None means
        ``(sqrt(n_source) - 1) / sqrt(n_source)``.
    max_iter : int, default=1000
        Iterations of the solver (SLSQP).

    Attributes
    ----------
    weights_ : ndarray of shape (n_source,)
        Weights of the source rows seen in ``fit``, mean 1.
    n_iter_ : int
        Iterations the solver ran.
    estimator_ : estimator
    classes_ : ndarray

    References
    ----------
    Huang et al., "Correcting sample selection bias by unlabeled data", NeurIPS 2006.
    """

    _parameter_constraints: dict = _COMMON | {
        "kernel": [str],
        "gamma": [Interval(Real, 0, None, closed="neither"), None],
        "B": [Interval(Real, 0, None, closed="neither")],
        "eps": [Interval(Real, 0, None, closed="left"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self, estimator=None, *, kernel="rbf", gamma=None, B=1000.0, eps=None, max_iter=1000
    ):
        self.estimator = estimator
        self.kernel = kernel
        self.gamma = gamma
        self.B = B
        self.eps = eps
        self.max_iter = max_iter

    def _source_weights(self, Xs, Xt):
        ns, nt = len(Xs), len(Xt)
        params = {} if self.kernel == "linear" else {"gamma": self._gamma(np.vstack([Xs, Xt]))}
        K = pairwise_kernels(Xs, Xs, metric=self.kernel, **params)
        kappa = pairwise_kernels(Xs, Xt, metric=self.kernel, **params).sum(axis=1) * ns / nt
        eps = (np.sqrt(ns) - 1) / np.sqrt(ns) if self.eps is None else self.eps
        ones = np.ones(ns)
        result = minimize(
            lambda b: 0.5 * b @ K @ b - kappa @ b,
            ones,
            jac=lambda b: K @ b - kappa,
            bounds=[(0, self.B)] * ns,
            constraints=[
                {
                    "type": "ineq",
                    "fun": lambda b: ns * (1 + eps) - b.sum(),
                    "jac": lambda b: -ones,
                },
                {"type": "ineq", "fun": lambda b: b.sum() - ns * (1 - eps), "jac": lambda b: ones},
            ],
            method="SLSQP",
            options={"maxiter": self.max_iter},
        )
        self.n_iter_ = result.nit
        return result.x


class KLIEP(_Reweighting):
    """Kullback-Leibler importance estimation: a density ratio as a sum of kernels.

    The ratio ``p_target / p_source`` is modelled as a non-negative combination of
    Gaussian kernels centred on target rows, fitted to maximise the likelihood of the
    target rows under the re-weighted source. Built for covariate shift. Unlike
    :class:`KMM` it gives weights for new rows too (:meth:`density_ratio`).

    Parameters
    ----------
    estimator : estimator, default=None
        A classifier whose ``fit`` takes ``sample_weight``; None means
        ``LogisticRegression(max_iter=1000)``.
    gamma : float, default=None
        Width of the Gaussian kernels; None means ``1 / (n_features * X.var())``.
    n_centers : int, default=100
        Kernel centres, drawn from the target rows.
    max_iter : int, default=1000
        Iterations of the projected gradient ascent.
    lr : float, default=1e-3
        Its step size.
    tol : float, default=1e-6
        Stop when the log-likelihood improves less than this.
    random_state : int, RandomState or None, default=None
        Picks the centres.

    Attributes
    ----------
    weights_ : ndarray of shape (n_source,)
        Weights of the source rows seen in ``fit``, mean 1.
    centers_ : ndarray of shape (n_centers, n_features)
    alpha_ : ndarray of shape (n_centers,)
        Coefficients of the kernels.
    n_iter_ : int
        Iterations of the gradient ascent.
    estimator_ : estimator
    classes_ : ndarray

    References
    ----------
    Sugiyama et al., "Direct importance estimation with model selection and its
    application to covariate shift adaptation", NeurIPS 2007.
    """

    _parameter_constraints: dict = _COMMON | {
        "gamma": [Interval(Real, 0, None, closed="neither"), None],
        "n_centers": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self, estimator=None, *, gamma=None, n_centers=100, max_iter=1000, lr=1e-3, tol=1e-6,
        random_state=None,
    ):  # fmt: skip
        self.estimator = estimator
        self.gamma = gamma
        self.n_centers = n_centers
        self.max_iter = max_iter
        self.lr = lr
        self.tol = tol
        self.random_state = random_state

    def _source_weights(self, Xs, Xt):
        rng = check_random_state(self.random_state)
        picked = rng.choice(len(Xt), min(self.n_centers, len(Xt)), replace=False)
        self.centers_ = Xt[picked]
        self.gamma_ = self._gamma(np.vstack([Xs, Xt]))
        A = pairwise_kernels(Xt, self.centers_, metric="rbf", gamma=self.gamma_)
        b = pairwise_kernels(Xs, self.centers_, metric="rbf", gamma=self.gamma_).mean(axis=0)
        alpha = np.ones(len(picked)) / max(b.sum(), 1e-12)
        previous = -np.inf
        self.n_iter_ = 0
        for _ in range(self.max_iter):
            self.n_iter_ += 1
            alpha = alpha + self.lr * A.T @ (1 / np.maximum(A @ alpha, 1e-12))
            alpha = alpha + (1 - b @ alpha) * b / (b @ b)
            alpha = np.maximum(alpha, 0)
            alpha = alpha / max(b @ alpha, 1e-12)
            objective = np.log(np.maximum(A @ alpha, 1e-12)).mean()
            if objective - previous < self.tol:
                break
            previous = objective
        self.alpha_ = alpha
        return pairwise_kernels(Xs, self.centers_, metric="rbf", gamma=self.gamma_) @ alpha

    def density_ratio(self, X):
        """Estimated ``p_target(x) / p_source(x)`` of rows ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ratio : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return pairwise_kernels(X, self.centers_, metric="rbf", gamma=self.gamma_) @ self.alpha_


class DiscriminatorReweight(_Reweighting):
    """Weights from a domain classifier: ``p(target | x) / p(source | x)``.

    A probabilistic classifier learns to tell source rows from target rows; a source row
    that looks like a target row gets a large weight. Built for covariate shift, and
    scales to many rows and features better than :class:`KMM`.

    Parameters
    ----------
    estimator : estimator, default=None
        A classifier whose ``fit`` takes ``sample_weight``; None means
        ``LogisticRegression(max_iter=1000)``.
    discriminator : classifier with ``predict_proba``, default=None
        Tells the domains apart; None means ``LogisticRegression(max_iter=1000)``.
    max_weight : float, default=100.0
        Weights are clipped here before normalisation, so that a few rows cannot take
        over.

    Attributes
    ----------
    weights_ : ndarray of shape (n_source,)
        Weights of the source rows seen in ``fit``, mean 1.
    discriminator_ : classifier
        The fitted domain classifier (class 1 = target).
    estimator_ : estimator
    classes_ : ndarray
    """

    _parameter_constraints: dict = _COMMON | {
        "discriminator": [None, HasMethods(["fit", "predict_proba"])],
        "max_weight": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, estimator=None, *, discriminator=None, max_weight=100.0):
        self.estimator = estimator
        self.discriminator = discriminator
        self.max_weight = max_weight

    def _source_weights(self, Xs, Xt):
        disc = (
            self.discriminator
            if self.discriminator is not None
            else LogisticRegression(max_iter=1000)
        )
        self.discriminator_ = clone(disc).fit(
            np.vstack([Xs, Xt]), np.r_[np.zeros(len(Xs)), np.ones(len(Xt))]
        )
        self._prior = len(Xs) / len(Xt)
        return self._ratio(Xs)

    def _ratio(self, X):
        p = np.clip(self.discriminator_.predict_proba(X)[:, 1], 1e-12, 1 - 1e-12)
        return np.minimum(self._prior * p / (1 - p), self.max_weight)

    def density_ratio(self, X):
        """Estimated ``p_target(x) / p_source(x)`` of rows ``X`` (clipped at max_weight).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ratio : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self._ratio(validate_data(self, X, dtype=np.float64, reset=False))
