"""Transferability scores: how well given features (or a source classifier) fit new labels.

Each score reads one matrix computed by a single forward pass, never trains a network, and
returns a float where higher means a better expected transfer. They differ in what they
assume, so they can disagree:

* :func:`logme` -- the evidence of a Bayesian linear model of the labels on the features;
* :func:`h_score` -- class separation relative to the feature covariance, with
  Ledoit-Wolf shrinkage so that it stays stable with few samples;
* :func:`leep` -- how well the source classifier's own predictions, re-mapped to the new
  labels, explain them (needs a backbone that keeps its source head).

All three work in float64 and avoid ``(n_features, n_features)`` inverses: they use the
eigendecomposition of the smaller Gram matrix (``n x n`` when there are fewer samples
than features), so that the small-sample case, the usual one, is exact and cheap.
"""

import numpy as np
from scipy.special import expit
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_array, check_consistent_length, column_or_1d

__all__ = ["h_score", "leep", "logme"]

# Grid over log(lambda), lambda = alpha / beta, per e-fold; then a golden-section refinement.
_GRID_STEP = 0.25
_GOLDEN_STEPS = 60


def _check_features(features, name="features"):
    return check_array(features, dtype=np.float64, ensure_min_samples=2, input_name=name)


def _class_indicators(y, n):
    """Labels -> (classes, integer codes), refusing continuous targets and a single class."""
    y = column_or_1d(y, warn=True)
    check_consistent_length(np.empty(n), y)
    kind = type_of_target(y, input_name="y")
    if kind not in ("binary", "multiclass"):
        raise ValueError(
            f"y must hold class labels for this score; got a {kind!r} target "
            "(logme takes regression targets with regression=True)."
        )
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"A score needs at least 2 classes; y has one: {classes.tolist()[0]!r}.")
    return classes, codes


def _gram_basis(F, Y):
    """Eigen-basis of ``F``'s smaller Gram matrix, and the targets ``Y`` expressed in it.

    Returns ``(s2, Z, r0)``: the squared singular values of ``F`` that the basis keeps
    (``k <= min(n, d)`` of them, zeros allowed), the coordinates ``Z = U.T @ Y`` of the
    targets on the matching left singular vectors ``U``, and the squared norm of the part
    of each target column outside the span of ``U``. The ``d - k`` remaining singular
    values are exactly zero, which is what the callers account for.
    """
    n, d = F.shape
    if n <= d:  # U is the eigenvectors of F F^T: a complete basis of R^n, no division
        s2, U = np.linalg.eigh(F @ F.T)
        return np.clip(s2, 0.0, None), U.T @ Y, np.zeros(Y.shape[1])
    s2, V = np.linalg.eigh(F.T @ F)
    # Directions below the round-off of the Gram matrix are zero singular values: the part
    # of Y along them is left in the residual.
    keep = s2 > s2.max(initial=0.0) * d * np.finfo(np.float64).eps
    s2, V = s2[keep], V[:, keep]
    Z = (V.T @ (F.T @ Y)) / np.sqrt(s2)[:, None]
    r0 = np.clip((Y**2).sum(axis=0) - (Z**2).sum(axis=0), 0.0, None)
    return s2, Z, r0


def _log_evidence(t, log_s2, Z2, r0, n):
    """Per-sample log evidence at ``log(lambda) = t`` for each target column.

    ``t`` has one entry per column, or is a grid of shape ``(g, 1)`` (every column at every
    grid point). With beta at its optimum for each lambda (``beta = n / E``) the evidence of
    the model ``y = F w + noise``, ``w ~ N(0, 1/alpha)``, ``noise ~ N(0, 1/beta)``, reads

        2 L = k t - sum_i log(lambda + s_i^2) - n log(E / n) - n (1 + log 2 pi),
        E = r0 + sum_i lambda z_i^2 / (lambda + s_i^2),

    over the k kept singular values; the zero ones cancel between the prior's
    ``d/2 log alpha`` and ``log det A``.
    """
    t = np.asarray(t, dtype=np.float64)
    tt = t[..., None]  # against the singular values: (columns, k) or (g, 1, k)
    with np.errstate(divide="ignore"):
        ridge = np.logaddexp(tt, log_s2).sum(axis=-1)
        weight = expit(tt - log_s2)  # lambda / (lambda + s^2)
    if t.ndim == 2:  # a grid of shape (g, 1): every column at every grid point
        fit = r0 + weight[:, 0, :] @ Z2
    else:  # one lambda per column
        fit = r0 + np.einsum("ck,kc->c", weight, Z2)
    k = log_s2.size
    return (k * t - ridge - n * np.log(fit / n) - n * (1 + np.log(2 * np.pi))) / (2 * n)


def _max_log_evidence(F, Y):
    """Maximum over (alpha, beta) of the per-sample log evidence, for each column of Y."""
    n = F.shape[0]
    s2, Z, r0 = _gram_basis(F, Y)
    if (r0 + (Z**2).sum(axis=0) <= 0).any():
        raise ValueError("A target column is zero everywhere: it carries no information.")
    positive = s2[s2 > 0]
    if positive.size == 0:  # F is zero: the evidence does not depend on lambda
        return _log_evidence(np.zeros(Y.shape[1]), np.log(s2), Z**2, r0, n)
    with np.errstate(divide="ignore"):
        log_s2 = np.log(s2)
    # Far below the smallest s^2 the evidence falls, or (when the features can interpolate
    # the targets, r0 = 0) tends to a limit; far above the largest it tends to the
    # "features explain nothing" limit. The grid reaches both limits.
    low, high = np.log(positive.min()) - 40, np.log(positive.max()) + 40
    low = max(low, np.log(positive.max()) - 80)
    grid = np.arange(low, high + _GRID_STEP, _GRID_STEP)
    Z2 = Z**2
    values = _log_evidence(grid[:, None], log_s2, Z2, r0, n)  # (g, columns)
    best = values.argmax(axis=0)
    a = grid[np.maximum(best - 1, 0)]
    b = grid[np.minimum(best + 1, len(grid) - 1)]
    # Golden-section search in the bracket around each column's best grid point.
    ratio = (np.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = (_log_evidence(x, log_s2, Z2, r0, n) for x in (c, d))
    for _ in range(_GOLDEN_STEPS):
        left = fc > fd  # the maximum lies in [a, d]
        a, b = np.where(left, a, c), np.where(left, d, b)
        c, d = np.where(left, b - ratio * (b - a), d), np.where(left, c, a + ratio * (b - a))
        f_new = _log_evidence(np.where(left, c, d), log_s2, Z2, r0, n)
        fc, fd = np.where(left, f_new, fd), np.where(left, fc, f_new)
    return np.maximum(np.maximum(fc, fd), values.max(axis=0))


def logme(features, y, *, regression=None):
    """LogME: the maximum log evidence of a linear model of ``y`` on ``features``.

    You et al. (ICML 2021) model each target as ``y = features @ w + noise`` with a
    Gaussian prior on ``w`` and Gaussian noise, maximise the marginal likelihood (the
    evidence) over the prior's and the noise's precisions, and report it per sample.
    Classification targets are one-vs-rest indicator columns, one per class, and the
    score is their mean. A higher score predicts better accuracy after transfer.

    Exact for any shape: with fewer samples than features (``n < d``) the ``d - n``
    zero singular values of the features are accounted for, where the reference
    implementation over-counts them and returns scores that are far too high.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Features of the target images, e.g. a :class:`~sktransfer.PretrainedFeatureExtractor`
        output.
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
        Class labels, or real-valued targets.
    regression : bool, default=None
        Whether ``y`` holds real-valued targets (each column scored, then averaged) or
        class labels. None decides from ``y``: floats that are not whole numbers are
        regression targets.

    Returns
    -------
    float
        The mean over targets of the maximum log evidence divided by ``n_samples``.

    See Also
    --------
    h_score, leep : Scores with other assumptions.
    rank_candidates : Score many backbones and layers at once.

    Notes
    -----
    The evidence is maximised exactly over the ratio ``lambda = alpha / beta`` (the noise
    precision ``beta`` has a closed-form optimum for each ratio): a grid over
    ``log(lambda)`` finds the global maximum and a golden-section search refines it, for
    all classes at once. The reference code's fixed-point iteration stops after at most
    11 steps, which can leave it short of the maximum.

    References
    ----------
    K. You, Y. Liu, J. Wang, M. Long. LogME: Practical Assessment of Pre-trained Models
    for Transfer Learning. ICML 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.selection import logme
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 20)
    >>> informative = rng.normal(size=(40, 5)) + y[:, None]
    >>> noise = rng.normal(size=(40, 5))
    >>> logme(informative, y) > logme(noise, y)
    True
    """
    F = _check_features(features)
    n = F.shape[0]
    if regression is None:
        kind = type_of_target(y, input_name="y")
        regression = kind.startswith("continuous")
    if regression:
        Y = check_array(y, dtype=np.float64, ensure_2d=False, input_name="y")
        Y = Y.reshape(n, -1) if Y.ndim == 1 and len(Y) == n else Y
        check_consistent_length(F, Y)
        if Y.ndim != 2:
            raise ValueError(f"y must be 1-D or 2-D; got shape {Y.shape}.")
    else:
        _, codes = _class_indicators(y, n)
        Y = np.eye(codes.max() + 1)[codes]
    return float(_max_log_evidence(F, Y).mean())


def h_score(features, y):
    """H-score with shrinkage: how far apart the class means are, in the features' metric.

    ``tr(cov(f)^-1 cov(E[f | y]))`` (Bao et al. 2019), with the feature covariance
    shrunk towards a multiple of the identity by the Ledoit-Wolf rule (Ibrahim et al.
    2022), which keeps the score stable when there are few samples per feature. Higher
    is better.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
        Class labels.

    Returns
    -------
    float

    See Also
    --------
    logme, leep : Scores with other assumptions.

    Notes
    -----
    With ``a`` the Ledoit-Wolf shrinkage of the centred features and ``S`` their (biased)
    covariance, the score is ``(1 - a) tr(((1 - a) S + a mu I)^-1 B)``, ``mu`` the mean
    variance and ``B`` the (biased) covariance of the class means; the class means lie in
    the span of the samples, so only the ``min(n, d)`` directions of the features enter.

    References
    ----------
    Y. Bao et al. An Information-Theoretic Approach to Transferability in Task Transfer
    Learning. ICIP 2019. S. Ibrahim, N. Ponomareva, R. Mazumder. Newer is not always
    better: Rethinking transferability metrics, their peculiarities, stability and
    performance. ECML PKDD 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.selection import h_score
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 20)
    >>> h_score(rng.normal(size=(40, 5)) + y[:, None], y) > h_score(rng.normal(size=(40, 5)), y)
    True
    """
    F = _check_features(features)
    n, d = F.shape
    _, codes = _class_indicators(y, n)
    F = F - F.mean(axis=0)
    shrinkage = float(ledoit_wolf_shrinkage(F, assume_centered=True))
    mu = float((F**2).sum() / (n * d))
    # G: each column is a class's membership divided by its size, so F.T @ G = class means.
    counts = np.bincount(codes)
    G = np.eye(len(counts))[codes] / counts
    weights = counts / n
    s2, Z, _ = _gram_basis(F, G)  # Z = U.T @ G; a class mean along v_i is s_i * Z_i
    eig = (1 - shrinkage) * s2 / n + shrinkage * mu
    along = s2[:, None] * Z**2  # (v_i . mean_c)^2
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(eig[:, None] > 0, along / eig[:, None], 0.0)
    return float((1 - shrinkage) * (terms.sum(axis=0) * weights).sum())


def leep(probabilities, y):
    """LEEP: the log-likelihood of the labels under the source classifier, re-mapped.

    Nguyen et al. (ICML 2020): the empirical conditional ``P(y | z)`` of each target label
    ``y`` given each source class ``z`` turns the source classifier's probabilities
    ``theta(x)`` into a classifier of the target labels, ``sum_z P(y | z) theta(x)_z``; the
    score is its mean log-likelihood (at most 0; higher is better). It needs a backbone
    that keeps the head of its source task (``load_backbone().head`` for the bundled
    ImageNet networks).

    Parameters
    ----------
    probabilities : array-like of shape (n_samples, n_source_classes)
        The source classifier's probabilities for each image (rows sum to 1).
    y : array-like of shape (n_samples,)
        Class labels of the target task.

    Returns
    -------
    float

    See Also
    --------
    logme, h_score : Scores that read the features instead of a source head.

    References
    ----------
    C. Nguyen, T. Hassner, M. Seeger, C. Archambeau. LEEP: A New Measure to Evaluate
    Transferability of Learned Representations. ICML 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.selection import leep
    >>> y = np.array([0, 0, 1, 1])
    >>> sharp = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]])
    >>> leep(sharp, y) > leep(np.full((4, 2), 0.5), y)
    True
    """
    P = _check_features(probabilities, name="probabilities")
    n = P.shape[0]
    _, codes = _class_indicators(y, n)
    if (P < 0).any() or not np.allclose(P.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError(
            "probabilities must be non-negative with rows that sum to 1 (a softmax "
            "output); got row sums from "
            f"{P.sum(axis=1).min():.3g} to {P.sum(axis=1).max():.3g}."
        )
    joint = np.zeros((codes.max() + 1, P.shape[1]))
    np.add.at(joint, codes, P)  # n * P(y, z)
    marginal = joint.sum(axis=0)  # n * P(z)
    with np.errstate(divide="ignore", invalid="ignore"):
        conditional = np.where(marginal > 0, joint / marginal, 0.0)  # P(y | z)
    expected = np.einsum("nz,nz->n", P, conditional[codes])
    return float(np.log(expected).mean())
