"""Docstring parts that several adaptation classes share, written once.

A docstring line that holds only ``{name}`` is replaced by the part ``name`` of
:data:`PARTS`, indented as that line (:func:`fill_doc`), so that the classes document the
same parameter or attribute in the same words.
"""

import re
import textwrap

_PREDICT_X = """\
X : array-like of shape (n_samples, n_features)
    Rows to predict, taken as target rows."""

_CLASSIFIER_ATTRIBUTES = """\
classes_ : ndarray of shape (n_classes,)
    Class labels.
n_features_in_ : int
    Number of features seen in ``fit``."""

PARTS = {
    "fit_parameters": """\
X : array-like of shape (n_samples, n_features)
    Source and target rows.
y : array-like of shape (n_samples,)
    Labels, ``-1`` for unlabelled (target) rows.
sample_domain : array-like of shape (n_samples,), default=None
    Positive for source rows, negative for target rows; inferred from ``y`` when None
    (see :func:`~sktransfer.adaptation.split_domains`).""",
    "predict_X": _PREDICT_X,
    "predict_parameters": f"""\
{_PREDICT_X}
sample_domain : array-like of shape (n_samples,), default=None
    Positive entries mark rows to map as source rows (a feature-based method maps
    source and target rows differently; the unsupervised scorers of
    :mod:`sktransfer.adaptation` predict held-out source rows this way). None takes
    every row as a target row.""",
    "classifier_attributes": _CLASSIFIER_ATTRIBUTES,
    "fitted_attributes": f"""\
estimator_ : estimator
    The fitted estimator.
{_CLASSIFIER_ATTRIBUTES}""",
}
"""The parts, by name: numpydoc entries without their section header."""

_PLACEHOLDER = re.compile(r"^(\s*)\{(\w+)\}$")


def fill_doc(obj):
    """Fill the ``{name}`` lines of ``obj``'s docstring with :data:`PARTS`; return ``obj``."""
    if obj.__doc__ is None:  # python -OO
        return obj
    lines = []
    for line in obj.__doc__.split("\n"):
        match = _PLACEHOLDER.match(line)
        if match is None:
            lines.append(line)
        else:
            lines.append(textwrap.indent(PARTS[match.group(2)], match.group(1)))
    obj.__doc__ = "\n".join(lines)
    return obj
