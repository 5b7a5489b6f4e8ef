"""Feature-based transfer: map source and target rows into a shared feature space."""

from numbers import Integral, Real

import numpy as np
from scipy.linalg import eigh
from sklearn.covariance import empirical_covariance, ledoit_wolf, shrunk_covariance
from sklearn.decomposition import PCA
from sklearn.utils import TransformerTags
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import _DomainAdaptation
from ._docs import fill_doc
from ._domains import source_rows
from ._kernels import kernel, kernel_width


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
    """Two maps into a shared space: one for source rows, one for target rows.

    Subclasses implement ``_fit_mapping(Xs, Xt)`` (setting ``_n_out``, the width of the
    shared space), ``_map_source(Xs)`` and ``_map_target(Xt)``; a method that needs the
    labels overrides ``_adapt`` instead of ``_fit_mapping``.
    """

    def _adapt(self, X, y, domains):
        source, target = domains.source, domains.target
        self._fit_mapping(X[source], X[target])
        return self._adapt_rows(X, source), None

    def _adapt_rows(self, X, source):
        """Rows of ``X`` in the shared space: ``source`` rows as source, the rest as target."""
        out = np.empty((len(X), self._n_out), dtype=np.float64)
        if not source.all():
            out[~source] = self._map_target(X[~source])
        if source.any():
            out[source] = self._map_source(X[source])
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags = TransformerTags(preserves_dtype=["float64"])
        return tags

    def transform(self, X, sample_domain=None):
        """Map rows into the shared space (target rows, unless ``sample_domain`` says source).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to map.
        sample_domain : array-like of shape (n_samples,), default=None
            Positive entries mark source rows; None treats every row as a target row.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            The rows in the shared space.
        """
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._adapt_rows(X, source_rows(sample_domain, len(X)))

    @fill_doc
    def fit_transform(self, X, y, sample_domain=None):
        """Fit, then return the source and target rows of ``X`` in the shared space.

        Parameters
        ----------
        {fit_parameters}

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            Source rows mapped as source rows, target rows as target rows.
        """
        return self._fit(X, y, sample_domain)


@fill_doc
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
    mean_source_, mean_target_ : ndarray of shape (n_features,)
        Domain means.
    mapping_ : ndarray of shape (n_features, n_features)
        ``cov_source^(-1/2) @ cov_target^(1/2)``, applied to centred source rows.
    {fitted_attributes}

    See Also
    --------
    SubspaceAlignment, TransferComponentAnalysis : Other shared feature spaces.
    KMM, KLIEP, DiscriminatorReweight : Re-weight the source rows instead.

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
    >>> model.transform(Xt).shape
    (100, 2)
    >>> bool(model.score(Xt, (Xt[:, 0] > 0).astype(int)) > 0.9)
    True
    """

    _parameter_constraints: dict = {
        **_DomainAdaptation._parameter_constraints,
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

    def _map_target(self, X):
        return X - self.mean_target_


@fill_doc
class SubspaceAlignment(_FeatureAdaptation):
    """Subspace alignment: align the source's principal subspace with the target's.

    Each domain gets its own PCA; source coordinates are mapped by
    ``M = P_source^T P_target`` onto the target basis. Built for a rotated (and re-scaled)
    feature space.

    Parameters
    ----------
    estimator : estimator, default=None
        Any scikit-learn classifier; None means ``LogisticRegression(max_iter=1000)``.
    n_components : int or float in (0, 1), default=0.9
        Dimension of the subspaces. A float is a share of the variance: the fewest
        components that keep it in each domain (the larger of the two counts), so that the
        dimension follows the data. All components (``min(n_source, n_target,
        n_features)``) align nothing but the means: each domain is then only centred.

    Attributes
    ----------
    pca_source_, pca_target_ : PCA
        The two subspaces.
    alignment_ : ndarray of shape (n_components, n_components)
        The alignment matrix ``M``.
    {fitted_attributes}

    See Also
    --------
    CORAL : Align second-order statistics instead of subspaces.
    TransferComponentAnalysis : A kernel space where the domain means meet.

    References
    ----------
    Fernando et al., "Unsupervised visual domain adaptation using subspace alignment",
    ICCV 2013.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adaptation import SubspaceAlignment
    >>> rng = np.random.default_rng(0)
    >>> Zs, Zt = rng.normal(size=(100, 2)) * [3, 1], rng.normal(size=(100, 2)) * [3, 1]
    >>> Xs = Zs @ [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]  # a plane in 3-D
    >>> Xt = Zt @ [[0.5, 0.0, 0.87], [0.0, 1.0, 0.0]]  # the plane tilted by 60 degrees
    >>> X = np.vstack([Xs, Xt])
    >>> y = np.r_[(Zs.sum(axis=1) > 0).astype(int), -np.ones(100, dtype=int)]
    >>> model = SubspaceAlignment(n_components=2).fit(X, y)
    >>> model.transform(Xt).shape
    (100, 2)
    """

    _parameter_constraints: dict = {
        **_DomainAdaptation._parameter_constraints,
        "n_components": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Real, 0, 1, closed="neither"),
        ],
    }

    def __init__(self, estimator=None, *, n_components=0.9):
        self.estimator = estimator
        self.n_components = n_components

    def _fit_mapping(self, Xs, Xt):
        most = min(len(Xs), len(Xt), Xs.shape[1])
        if isinstance(self.n_components, Integral):
            k = self.n_components
            if k > most:
                raise ValueError(
                    f"n_components={k} is more than min(n_source, n_target, n_features) = {most}."
                )
        else:
            k = max(_components_keeping(Z, self.n_components) for Z in (Xs, Xt))
            k = min(k, most)
        self.pca_source_ = PCA(k, svd_solver="full").fit(Xs)
        self.pca_target_ = PCA(k, svd_solver="full").fit(Xt)
        self.alignment_ = self.pca_source_.components_ @ self.pca_target_.components_.T
        self._n_out = k

    def _map_source(self, Xs):
        return self.pca_source_.transform(Xs) @ self.alignment_

    def _map_target(self, X):
        return self.pca_target_.transform(X)


def _components_keeping(X, share):
    """Count the fewest principal components of ``X`` that keep ``share`` of its variance."""
    if len(X) < 2:
        return 1
    values = np.linalg.svd(X - X.mean(axis=0), compute_uv=False) ** 2
    total = values.sum()
    if total <= 0:
        return 1
    return int(np.searchsorted(np.cumsum(values) / total, share) + 1)


def default_n_components(n_samples, dim, n_means):
    """Return the default number of components of TCA and JDA.

    About ten rows per component, at most 100 (Long et al.'s choice), and at most ``dim``
    less the ``n_means`` directions in which the means to match differ, so that the
    embedding can leave those directions out.
    """
    return max(1, min(100, n_samples // 10, dim - n_means))


class _ComponentAnalysis(_FeatureAdaptation):
    """Components that keep the variance of all rows while the domains' distributions meet.

    The solver that :class:`TransferComponentAnalysis` and
    :class:`~sktransfer.adaptation.JointDistributionAdaptation` share. The discrepancy
    matrix is given as ``E`` with ``M = E @ E.T`` (one column per mean to match), so that
    neither ``M`` nor ``K M K`` is ever built as an ``n x n`` product of three matrices.
    """

    _parameter_constraints: dict = {
        **_DomainAdaptation._parameter_constraints,
        "kernel": [str],
        "gamma": [Interval(Real, 0, None, closed="neither"), None],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "mu": [Interval(Real, 0, None, closed="left"), None],
    }

    def _kernel(self, A, B):
        return kernel(A, B, self.kernel, self.gamma_)

    def _solve(self, X, E, reduce=True):
        """Fit ``components_`` to the rows ``X`` (source, then target) for ``M = E E^T``.

        ``reduce=False`` solves a linear problem in the input space even when the rows
        span fewer dimensions (the tests compare the two).
        """
        rows = X
        basis = None  # columns spanning the rows, when the problem is solved in their span
        if self.kernel == "linear":  # in the input space: an n_features-sized problem
            self.X_fit_, self.gamma_ = None, None
            centred = X - X.mean(axis=0)
            largest = float((centred**2).sum(axis=0).max())  # of the variances' diagonal
            scale, power = float(np.einsum("ij,ij->i", X, X).mean()), 1
            if reduce and X.shape[1] > len(X):
                # more features than rows: every component with a non-zero eigenvalue lies
                # in the span of the rows, so the same components come from an
                # n_samples-sized problem in an orthonormal basis of that span
                basis = np.linalg.qr(X.T)[0]
                X, centred = X @ basis, centred @ basis
            variance = centred.T @ centred
            projected = X.T @ E
        else:
            self.X_fit_ = X
            self.gamma_ = kernel_width(self.gamma, self.kernel, X)
            K = self._kernel(X, X)
            KH = K - K.mean(axis=1, keepdims=True)  # K @ H; K H K = (K H)(K H)^T
            variance = KH @ KH.T
            projected = K @ E
            scale, power = float(np.mean(np.diag(K))), 2
            largest = float(np.max(np.diag(variance)))
        dim = len(variance) if basis is None else len(basis)
        if self.mu is None:
            norm = np.linalg.norm(E.T @ E)  # the Frobenius norm of M = E E^T
            scale = scale if scale > 0 else 1.0
            self.mu_ = 0.0 if norm == 0 else float(1 / (0.1 * norm * scale**power))
        else:
            self.mu_ = float(self.mu)
        if self.n_components is None:
            # the directions in which the means to match differ (none when they agree)
            tolerance = 1e-8 * np.sqrt(max(largest, 1e-300))
            n_means = int((np.linalg.svd(projected, compute_uv=False) > tolerance).sum())
            k = default_n_components(len(X), dim, n_means)
        else:
            k = min(self.n_components, dim)
        # leading generalised eigenvectors of V w = lambda (I + mu P P^T) w, i.e. of
        # (I + mu K M K)^-1 K H K, by a symmetric solver: real and sorted
        size = len(variance)
        if k > size:  # more components than rows: some have a zero eigenvalue
            return self._solve(rows, E, reduce=False)
        discrepancy = np.eye(size) + self.mu_ * (projected @ projected.T)
        values, vectors = eigh(variance, discrepancy, subset_by_index=[size - k, size - 1])
        if basis is not None:
            if values[0] <= 1e-10 * max(values[-1], 0.0):
                # a component with a zero eigenvalue, chosen among the many such directions
                # of the input space: solved there, as without the basis
                return self._solve(rows, E, reduce=False)
            vectors = basis @ vectors
        vectors = vectors[:, ::-1] / np.linalg.norm(vectors, axis=0)[::-1]
        # a sign per component, so that fits on the same data agree
        signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(k)])
        self.components_ = vectors * signs
        self._n_out = k

    def _embed(self, X):
        if self.X_fit_ is None:
            return X @ self.components_
        return self._kernel(X, self.X_fit_) @ self.components_

    def _map_source(self, Xs):
        return self._embed(Xs)

    def _map_target(self, X):
        return self._embed(X)


def mean_difference(n_source, n_target):
    """Return ``e`` of the marginal discrepancy ``L = e e^T``: ``1/ns``, then ``-1/nt``."""
    return np.r_[np.full(n_source, 1 / n_source), np.full(n_target, -1 / n_target)]


@fill_doc
class TransferComponentAnalysis(_ComponentAnalysis):
    """Transfer component analysis: a feature space where the domains' means meet.

    Finds the components (of the features, or of the kernel matrix over source and
    target rows) that keep their variance while minimising the maximum mean discrepancy
    between domains. Built for a shift of the input distribution that leaves the classes
    where they were relative to each other, such as an offset.

    Parameters
    ----------
    estimator : estimator, default=None
        Any scikit-learn classifier; None means ``LogisticRegression(max_iter=1000)``.
    kernel : str, default="linear"
        Any kernel of :func:`sklearn.metrics.pairwise.pairwise_kernels`. ``"linear"`` is
        solved in the input space (Long et al.'s primal form: the regulariser is the norm of
        the projection, and the problem has ``n_features`` rows instead of ``n_samples``),
        which scales to many rows; with more features than rows (pretrained features of a
        few hundred images) the same components come from a problem the size of the rows'
        span, ``n_samples``. L2-normalise the rows first, as Long et al. do. Another
        kernel (``"rbf"``, Pan et al.'s form) solves an ``n_samples``-sized problem: time
        grows as ``n_samples**3`` and memory as ``n_samples**2``.
    gamma : float, default=None
        Kernel width, for the kernels that take one. None means the median heuristic:
        ``1 / median`` of the squared Euclidean distances between distinct rows of ``fit``
        (source and target, at most 1000 evenly spaced rows).
    n_components : int, default=None
        Dimension of the embedding. None follows the data: ``min(100, n_samples // 10)``
        (about ten rows per component; 100 is Long et al.'s choice), and at most the size
        of the problem (``n_features`` for the linear kernel, else ``n_samples``) less one,
        the direction in which the domain means differ. Components beyond the leading few
        carry little variance and can carry a domain's own variation, which a classifier
        that standardises its features on the source rows then magnifies.
    mu : float, default=None
        Weight of the mean discrepancy between the domains against the variance kept, as
        skada's ``mu``: the components maximise the variance ``W^T K H K W`` relative to
        ``W^T (I + mu K L K) W``, so that a larger ``mu`` brings the domains' means closer;
        0 keeps the variance alone (kernel PCA). Pan et al. weigh the regulariser
        instead: their ``mu`` is ``1 / mu``. None scales it to the data:
        ``10 / (||L||_F s^2)`` (``s`` for the linear kernel), where ``s`` is the mean of
        ``k(x, x)`` over the rows of ``fit``: Long et al.'s ``lambda = 0.1`` (with ``L``
        normalised) for rows of unit norm, and the same balance for rows of any scale.

    Attributes
    ----------
    gamma_ : float or None
        The kernel width used (None for a kernel without one, such as ``"linear"``).
    mu_ : float
        The weight of the mean discrepancy used.
    components_ : ndarray of shape (n_fit_samples, n_components) or (n_features, n_components)
        The transfer components, unit norm: coefficients of the kernel columns, or for the
        linear kernel of the features.
    X_fit_ : ndarray of shape (n_fit_samples, n_features) or None
        Source and target rows the kernel is taken against (None for the linear kernel).
    {fitted_attributes}

    See Also
    --------
    JointDistributionAdaptation : TCA that also matches the class-conditional distributions.
    CORAL, SubspaceAlignment : Linear shared spaces, cheaper for many rows.

    References
    ----------
    Pan et al., "Domain adaptation via transfer component analysis", IEEE TNN 2011.

    Long et al., "Transfer feature learning with joint distribution adaptation", ICCV 2013
    (the primal form and the scale of ``mu``).

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adaptation import TransferComponentAnalysis
    >>> rng = np.random.default_rng(0)
    >>> Xs, Xt = rng.normal(size=(60, 2)), rng.normal(size=(60, 2)) + [1.5, -1.5]
    >>> X = np.vstack([Xs, Xt])
    >>> y = np.r_[(Xs[:, 0] > 0).astype(int), -np.ones(60, dtype=int)]
    >>> tca = TransferComponentAnalysis(kernel="rbf", n_components=2, gamma=0.1).fit(X, y)
    >>> tca.transform(Xt).shape
    (60, 2)
    """

    def __init__(self, estimator=None, *, kernel="linear", gamma=None, n_components=None, mu=None):
        self.estimator = estimator
        self.kernel = kernel
        self.gamma = gamma
        self.n_components = n_components
        self.mu = mu

    def _fit_mapping(self, Xs, Xt):
        self._solve(np.vstack([Xs, Xt]), mean_difference(len(Xs), len(Xt))[:, None])
