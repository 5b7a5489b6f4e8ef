"""The kernels of the adaptation methods and their default width (``gamma=None``)."""

import numpy as np
from scipy.spatial.distance import pdist
from sklearn.metrics.pairwise import KERNEL_PARAMS, pairwise_kernels

MEDIAN_ROWS = 1000
"""The median heuristic looks at this many evenly spaced rows at most."""


def median_heuristic(X):
    """``1 / median`` of the squared Euclidean distances between distinct rows of ``X``.

    At most :data:`MEDIAN_ROWS` evenly spaced rows are used (every k-th row), so that the
    cost stays bounded and the result depends on nothing random. 1.0 when every row is
    the same.
    """
    step = -(-len(X) // MEDIAN_ROWS)  # ceiling division
    distances = pdist(X[::step], "sqeuclidean")
    distances = distances[distances > 0]
    return 1 / float(np.median(distances)) if len(distances) else 1.0


def median_heuristic_memory(n_rows):
    """Bytes :func:`median_heuristic` needs at its peak for ``n_rows`` rows.

    The distances between the rows it looks at, their mask and their copy without the zeros
    (float64, bool, float64: 17 bytes a pair).
    """
    step = max(-(-n_rows // MEDIAN_ROWS), 1)
    looked_at = -(-n_rows // step)
    return 17 * (looked_at * (looked_at - 1) // 2)


def kernel_width(gamma, kernel, X):
    """Return the ``gamma`` to compute ``kernel`` with, as documented for ``gamma=None``.

    That is ``gamma`` when given, else the median heuristic on ``X`` (the source and target rows
    of ``fit``); None for a kernel that takes no ``gamma`` (``"linear"``, ``"cosine"``).
    """
    if "gamma" not in KERNEL_PARAMS.get(kernel, ()):
        return None
    return median_heuristic(X) if gamma is None else gamma


def kernel(A, B, metric, gamma):
    """``pairwise_kernels(A, B)`` with ``gamma`` where the kernel takes one."""
    return pairwise_kernels(A, B, metric=metric, filter_params=True, gamma=gamma)
