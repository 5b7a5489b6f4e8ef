"""The domain convention: which rows are source rows and which are target rows.

Source and target rows are stacked in one ``X``. Unlabelled rows have ``y = -1``. An
optional ``sample_domain`` array says which row is which (positive: source, negative:
target); without it, rows with ``y = -1`` are target rows and the others source rows.
This is skada's convention, so data prepared for one library works with the other.

Every module of :mod:`sktransfer.adaptation` reads the domains here:
:func:`split_domains` for ``fit`` (strict, and it says how it read ``y``),
:func:`fold_domains` for a scorer's or a splitter's fold, and :func:`source_rows` for the
rows given to ``predict`` and ``transform``.
"""

import warnings
from collections import namedtuple
from numbers import Real

import numpy as np
from sklearn.utils.validation import column_or_1d

UNLABELLED = -1

Domains = namedtuple("Domains", ["source", "target", "labelled"])
Domains.__doc__ = """Boolean masks over the rows: source rows, target rows, labelled rows."""

_ONE_PER_ROW = {
    "y": "one label per row (-1 for unlabelled target rows)",
    "sample_domain": "one domain per row (positive for source, negative for target)",
}


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


def _one_per_row(values, n_samples, name):
    """``values`` as a 1-d array, checked to hold one entry per row of ``X``."""
    values = column_or_1d(values)
    if n_samples is not None and len(values) != n_samples:
        raise ValueError(
            f"{name} has {len(values)} entries but X has {n_samples} rows: give "
            f"{_ONE_PER_ROW[name]}."
        )
    return values


def _read_domains(y, sample_domain, n_samples):
    """Read the domains as the arrays give them, before any judgement: ``(y, Domains)``.

    Source and target rows come from ``sample_domain`` (positive, negative), else from
    ``y`` (``-1`` marks a target row). The lengths and the values of ``sample_domain`` are
    checked; whether there are source and target rows is left to the caller.
    """
    if y is None and sample_domain is None:
        raise ValueError(
            "Give sample_domain (positive for source rows, negative for target rows) or y "
            "(-1 for unlabelled target rows) to tell the domains apart."
        )
    if y is not None:
        y = _one_per_row(y, n_samples, "y")
        n_samples = len(y)
        labelled = ~unlabelled_mask(y)
    if sample_domain is None:
        return y, Domains(labelled, ~labelled, labelled)
    sample_domain = _one_per_row(sample_domain, n_samples, "sample_domain")
    if y is None:
        labelled = np.ones(len(sample_domain), dtype=bool)
    if not np.issubdtype(sample_domain.dtype, np.number) or np.any(sample_domain == 0):
        raise ValueError(
            "sample_domain must hold positive numbers (source) or negative numbers "
            "(target), not 0."
        )
    return y, Domains(sample_domain > 0, sample_domain < 0, labelled)


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
    y, domains = _read_domains(y, sample_domain, n_samples)
    if sample_domain is None:
        return _domains_from_labels(y, domains, stacklevel + 1)
    if not domains.target.any():
        raise ValueError(
            "No target rows: sample_domain has no negative entry; give the target rows a "
            "negative sample_domain."
        )
    if not domains.source.any():
        raise ValueError("No source rows: sample_domain has no positive entry.")
    return domains


def _domains_from_labels(y, domains, stacklevel):
    """Check the domains that ``y = -1`` alone gives, and say how ``y`` was read."""
    labelled = domains.labelled
    if labelled.all():
        warnings.warn(
            "No target rows to adapt to: y has no -1 (unlabelled target rows) and no "
            "sample_domain was given, so every row is used as source and as target; "
            "the model fits as its estimator alone would.",
            UserWarning,
            stacklevel=stacklevel,
        )
        everything = np.ones(len(labelled), dtype=bool)
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
    # the labels are what makes a row a source row here: none, no source
    require_labelled_source(domains)
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


def _labels_below_placeholder(labels):
    """Return the distinct numeric labels below ``-1`` (none for strings)."""
    if labels.dtype.kind in "iuf":
        below = labels[labels < UNLABELLED]
    elif labels.dtype.kind == "O":
        below = [v for v in labels if isinstance(v, Real) and v < UNLABELLED]
    else:
        return []
    return np.unique(below).tolist()


def require_labelled_source(domains):
    """Raise the one error for source rows that all have ``y = -1``."""
    if not (domains.source & domains.labelled).any():
        raise ValueError(
            "No labelled source rows: every source row has y = -1 (without sample_domain, "
            "the rows with a label are the source rows); give the source rows their labels."
        )


def fold_domains(y, sample_domain, n_samples):
    """``(y, source, target)`` of a fold that a scorer scores or a splitter splits.

    Read as :func:`split_domains` reads them, without its warnings (a search calls this
    once per fold); a fold needs both domains.
    """
    y, domains = _read_domains(y, sample_domain, n_samples)
    if not domains.target.any():
        raise ValueError(
            "No target rows to score on: give the target rows y = -1 or a negative "
            "sample_domain (with metadata routing, the scorer requests sample_domain)."
        )
    if not domains.source.any():
        raise ValueError("No source rows: every row is a target row.")
    return y, domains.source, domains.target


def source_rows(sample_domain, n_samples):
    """Mask of the rows that ``sample_domain`` marks as source rows (none when it is None)."""
    if sample_domain is None:
        return np.zeros(n_samples, dtype=bool)
    return _one_per_row(sample_domain, n_samples, "sample_domain") > 0
