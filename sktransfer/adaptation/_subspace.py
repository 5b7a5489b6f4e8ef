"""Feature-based transfer: map source and target rows into a shared feature space."""

from numbers import Integral, Real

import numpy as np
from scipy.linalg import eigh
from sklearn.covariance import empirical_covariance, ledoit_wolf, shrunk_covariance
from sklearn.decomposition import PCA
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.utils import TransformerTags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import _DomainAdaptation, split_domains


def _covariance(X, reg):
    """Covariance with shrinkage: ``"auto"`` (Ledoit-Wolf on standardised data) or a float."""
    if reg == "auto":
        scale = X.std(axis=0)
        scale[scale == 0] = 1
        cov = ledoit_wolf((X - X.mean(axis=0)) / scale)[0]
        return scale[:, None] * cov * scale[None, :]
    return shrunk_covariance(empirical_covariance(X), shrinkage=reg)


def _matrix_power(cov, power):
    values, vectors = eigh(cov)
    values = np.clip(values, np.finfo(float).eps, None)
    return (vectors * values**power) @ vectors.T


class _FeatureAdaptation(_DomainAdaptation):
    """A feature mapping: source rows to the shared space, target rows to the shared space."""

    def _adapt(self, X, y, source, target, labelled):
        self._fit_mapping(X[source], X[target])
        out = np.empty((len(X), self._n_out), dtype=np.float64)
        out[source] = self._map_source(X[source])
        out[target] = self._adapt_target(X[target])
        return out, None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags = TransformerTags(preserves_dtype=["float64"])
        return tags

    def transform(self, X, sample_domain=None):
        """Map rows into the shared space (target rows, unless ``sample_domain`` says source).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        sample_domain : array-like of shape (n_samples,), default=None
            Positive entries mark source rows; None treats every row as target.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        if sample_domain is None:
            return self._adapt_target(X)
        source = np.asarray(sample_domain) > 0
        out = np.empty((len(X), self._n_out), dtype=np.float64)
        out[source] = self._map_source(X[source])
        out[~source] = self._adapt_target(X[~source])
        return out

    def fit_transform(self, X, y, sample_domain=None):
        """Fit, then map source rows and target rows of ``X`` into the shared space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Labels, ``-1`` for unlabelled target rows.
        sample_domain : array-like of shape (n_samples,), default=None

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
        """
        self.fit(X, y, sample_domain=sample_domain)
        X = np.asarray(X, dtype=np.float64)
        source, _, _, _ = split_domains(X, y, sample_domain, n_samples=len(X))
        return self.transform(X, sample_domain=np.where(source, 1, -1))


class CORAL(_FeatureAdaptation):
    """Correlation alignment: re-colour source features with the target covariance.

    Source rows are centred, whitened with their own covariance and coloured with the
    target's; target rows are centred. The wrapped estimator learns on the aligned labelled
    rows and predicts target rows. Built for a linearly re-scaled or correlated target
    feature space.

    Parameters
    ----------
    estimator : estimator, default=None
        Any scikit-learn classifier; None means ``LogisticRegression(max_iter=1000)``.
    reg : "auto" or float in [0, 1], default="auto"
        Covariance shrinkage: ``"auto"`` for Ledoit-Wolf, or a fixed shrinkage.

    Attributes
    ----------
    estimator_ : estimator
        The fitted estimator.
    classes_ : ndarray
        Class labels.
    mean_source_, mean_target_ : ndarray of shape (n_features,)
        Domain means.
    mapping_ : ndarray of shape (n_features, n_features)
        ``cov_source^(-1/2) @ cov_target^(1/2)``, applied to centred source rows.

    See Also
    --------
    SubspaceAlignment, TransferComponentAnalysis : Other shared feature spaces.

    References
    ----------
    Sun, Feng and Saenko, "Return of frustratingly easy domain adaptation", AAAI 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adaptation import CORAL
    >>> rng = np.random.default_rng(0)
    >>> Xs = rng.normal(size=(100, 2)); ys = (Xs[:, 0] > 0).astype(int)
    >>> Xt = rng.normal(size=(100, 2)) * [3.0, 0.5]
    >>> X, y = np.vstack([Xs, Xt]), np.r_[ys, -np.ones(100, dtype=int)]
    >>> model = CORAL().fit(X, y)
    >>> model.score(Xt, (Xt[:, 0] > 0).astype(int)) > 0.9
    True
    """

    _parameter_constraints: dict = {
        "estimator": [None, HasMethods(["fit", "predict"])],
        "reg": [StrOptions({"auto"}), Interval(Real, 0, 1, closed="both")],
    }

    def __init__(self, estimator=None, *, reg="auto"):
        self.estimator = estimator
        self.reg = reg

    def _fit_mapping(self, Xs, Xt):
        self.mean_source_, self.mean_target_ = Xs.mean(axis=0), Xt.mean(axis=0)
        inv_sqrt = _matrix_power(_covariance(Xs, self.reg), -0.5)
        self.mapping_ = inv_sqrt @ _matrix_power(_covariance(Xt, self.reg), 0.5)
        self._n_out = Xs.shape[1]

    def _map_source(self, Xs):
        return (Xs - self.mean_source_) @ self.mapping_

    def _adapt_target(self, X):
        return X - self.mean_target_


class SubspaceAlignment(_FeatureAdaptation):
    """Subspace alignment: align the source's principal subspace with the target's.

    Each domain gets its own PCA; source coordinates are mapped by
    ``M = P_source^T P_target`` onto the target basis. Built for a rotated (and re-scaled)
    feature space.

    Parameters
    ----------
    estimator : estimator, default=None
        Any scikit-learn classifier; None means ``LogisticRegression(max_iter=1000)``.
    n_components : int, default=None
        Dimension of the subspaces; None keeps ``min(n_source, n_target, n_features)``.

    Attributes
    ----------
    estimator_ : estimator
    classes_ : ndarray
    pca_source_, pca_target_ : PCA
        The two subspaces.
    alignment_ : ndarray of shape (n_components, n_components)
        The alignment matrix ``M``.

    References
    ----------
    Fernando et al., "Unsupervised visual domain adaptation using subspace alignment",
    ICCV 2013.
    """

    _parameter_constraints: dict = {
        "estimator": [None, HasMethods(["fit", "predict"])],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, estimator=None, *, n_components=None):
        self.estimator = estimator
        self.n_components = n_components

    def _fit_mapping(self, Xs, Xt):
        k = self.n_components or min(len(Xs), len(Xt), Xs.shape[1])
        if k > min(len(Xs), len(Xt), Xs.shape[1]):
            raise ValueError(
                f"n_components={k} is more than min(n_source, n_target, n_features) = "
                f"{min(len(Xs), len(Xt), Xs.shape[1])}."
            )
        self.pca_source_ = PCA(k).fit(Xs)
        self.pca_target_ = PCA(k).fit(Xt)
        self.alignment_ = self.pca_source_.components_ @ self.pca_target_.components_.T
        self._n_out = k

    def _map_source(self, Xs):
        return self.pca_source_.transform(Xs) @ self.alignment_

    def _adapt_target(self, X):
        return self.pca_target_.transform(X)


class TransferComponentAnalysis(_FeatureAdaptation):
    """Transfer component analysis: a kernel feature space where the domains' means meet.

    Finds the components of the kernel matrix over source and target rows that keep
    their variance while minimising the maximum mean discrepancy between domains.

    Parameters
    ----------
    estimator : estimator, default=None
        Any scikit-learn classifier; None means ``LogisticRegression(max_iter=1000)``.
    kernel : str, default="rbf"
        Any kernel of :func:`sklearn.metrics.pairwise.pairwise_kernels`.
    gamma : float, default=None
        Kernel coefficient (rbf, poly, sigmoid, laplacian); None uses scikit-learn's
        default ``1 / n_features``.
    n_components : int, default=None
        Dimension of the embedding; None means ``min(n_samples, n_features)``.
    mu : float, default=0.1
        Trade-off between variance kept and the mean discrepancy.

    Attributes
    ----------
    estimator_ : estimator
    classes_ : ndarray
    components_ : ndarray of shape (n_fit_samples, n_components)
        The transfer components (coefficients of the kernel columns).
    X_fit_ : ndarray of shape (n_fit_samples, n_features)
        Source and target rows the kernel is taken against.

    References
    ----------
    Pan et al., "Domain adaptation via transfer component analysis", IEEE TNN 2011.
    """

    _parameter_constraints: dict = {
        "estimator": [None, HasMethods(["fit", "predict"])],
        "kernel": [str],
        "gamma": [Interval(Real, 0, None, closed="neither"), None],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "mu": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, estimator=None, *, kernel="rbf", gamma=None, n_components=None, mu=0.1):
        self.estimator = estimator
        self.kernel = kernel
        self.gamma = gamma
        self.n_components = n_components
        self.mu = mu

    def _kernel(self, A, B):
        params = {} if self.gamma is None or self.kernel == "linear" else {"gamma": self.gamma}
        return pairwise_kernels(A, B, metric=self.kernel, **params)

    def _fit_mapping(self, Xs, Xt):
        ns, nt = len(Xs), len(Xt)
        n = ns + nt
        self.X_fit_ = np.vstack([Xs, Xt])
        K = self._kernel(self.X_fit_, self.X_fit_)
        e = np.r_[np.full(ns, 1 / ns), np.full(nt, -1 / nt)]
        L = np.outer(e, e)
        H = np.eye(n) - np.full((n, n), 1 / n)
        # leading eigenvectors of (K L K + mu I)^-1 K H K
        values, vectors = np.linalg.eig(
            np.linalg.solve(K @ L @ K + self.mu * np.eye(n), K @ H @ K)
        )
        k = self.n_components or min(n, Xs.shape[1])
        order = np.argsort(-np.abs(values))[:k]
        self.components_ = np.real(vectors[:, order])
        self._n_out = k

    def _map_source(self, Xs):
        return self._kernel(Xs, self.X_fit_) @ self.components_

    def _adapt_target(self, X):
        return self._kernel(X, self.X_fit_) @ self.components_
