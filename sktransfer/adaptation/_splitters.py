"""Splitters for a search without target labels: the target rows stay in every fold.

A splitter here is called as scikit-learn calls any splitter, ``split(X, y,
sample_domain)``; the target rows are told apart by ``y = -1`` or by ``sample_domain``
(negative for target rows) and stay unlabelled. Names, parameters and behaviour follow
``skada.model_selection``.
"""

from numbers import Real

import numpy as np
from sklearn.model_selection import KFold
from sklearn.utils import check_random_state
from sklearn.utils.metadata_routing import MetadataRequest
from sklearn.utils.validation import _num_samples

from ._domains import fold_domains


class _DomainSplitter:
    """What the splitters share: domains from ``sample_domain`` or ``y``, and routing."""

    def get_n_splits(self, X=None, y=None, sample_domain=None):
        """Return the number of splits.

        Parameters
        ----------
        X, y, sample_domain : object
            Ignored, for compatibility.

        Returns
        -------
        n_splits : int
            The number of splits.
        """
        return self.n_splits

    def get_metadata_routing(self):
        """Request ``sample_domain`` for ``split`` (used when metadata routing is enabled).

        Returns
        -------
        routing : MetadataRequest
            ``sample_domain`` requested by ``split``.
        """
        request = MetadataRequest(owner=type(self).__name__)
        request.split.add_request(param="sample_domain", alias=True)
        return request

    def split(self, X, y=None, sample_domain=None):
        """Yield ``(train, test)`` row indices.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Source and target rows.
        y : array-like of shape (n_samples,), default=None
            Labels, ``-1`` for target rows; tells the domains apart without
            ``sample_domain``.
        sample_domain : array-like of shape (n_samples,), default=None
            Positive for source rows, negative for target rows.

        Yields
        ------
        train, test : ndarray
            Row indices of each split.
        """
        _, source, target = fold_domains(y, sample_domain, _num_samples(X))
        yield from self._split(np.flatnonzero(source), np.flatnonzero(target))

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


def _n_test(n, test_size):
    n_test = (
        int(np.ceil(test_size * n))
        if isinstance(test_size, Real) and test_size < 1
        else int(test_size)
    )
    if not 1 <= n_test < n:
        raise ValueError(
            f"test_size={test_size} leaves no row to train or to test on with {n} rows."
        )
    return n_test


class SourceTargetShuffleSplit(_DomainSplitter):
    """Shuffle-split the source rows and the target rows separately, as skada does.

    Each split holds out ``test_size`` of the source rows and of the target rows; the
    training rows are the rest of both. The target rows stay unlabelled throughout (their
    labels, if any, are for the scorer to ignore).

    Parameters
    ----------
    n_splits : int, default=10
        Number of splits.
    test_size : float or int, default=0.1
        Share (or number) of each domain's rows held out.
    random_state : int, RandomState or None, default=None
        The shuffles.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adaptation import SourceTargetShuffleSplit
    >>> y = np.r_[[0, 1] * 10, [-1] * 20]
    >>> train, test = next(SourceTargetShuffleSplit(1, test_size=0.2, random_state=0).split(y, y))
    >>> int((y[test] == -1).sum()), int((y[test] != -1).sum())
    (4, 4)
    """

    def __init__(self, n_splits=10, *, test_size=0.1, random_state=None):
        self.n_splits = n_splits
        self.test_size = test_size
        self.random_state = random_state

    def _split(self, source, target):
        n_source, n_target = (
            _n_test(len(source), self.test_size),
            _n_test(len(target), self.test_size),
        )
        rng = check_random_state(self.random_state)
        for _ in range(self.n_splits):
            s, t = rng.permutation(source), rng.permutation(target)
            yield np.r_[s[n_source:], t[n_target:]], np.r_[s[:n_source], t[:n_target]]


class SourceKFold(_DomainSplitter):
    """K folds of the source rows; every target row is in every training and test fold.

    The transductive setting of domain adaptation: the unlabelled target rows are the
    rows to predict, so a method sees all of them when it adapts, and an unsupervised
    scorer judges it on all of them, while the labelled source rows are split into folds
    so that no source row is scored by a model that learnt its label.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds of the source rows.
    shuffle : bool, default=True
        Shuffle the source rows before folding them.
    random_state : int, RandomState or None, default=None
        The shuffle.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.adaptation import SourceKFold
    >>> y = np.r_[[0, 1] * 10, [-1] * 20]
    >>> train, test = next(SourceKFold(5, random_state=0).split(y, y))
    >>> int((y[train] == -1).sum()), int((y[test] == -1).sum()), int((y[test] != -1).sum())
    (20, 20, 4)
    """

    def __init__(self, n_splits=5, *, shuffle=True, random_state=None):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def _split(self, source, target):
        folds = KFold(self.n_splits, shuffle=self.shuffle, random_state=self.random_state)
        for train, test in folds.split(source):
            yield np.r_[source[train], target], np.r_[source[test], target]
