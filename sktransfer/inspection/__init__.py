"""Seeing why: where in an image a fitted model looks (class activation maps).

:func:`explain` returns one map per image, aligned to the original image and scaled to
[0, 1]; :func:`plot_explanation` overlays it.
"""

from ._maps import explain
from ._plot import plot_explanation

__all__ = ["explain", "plot_explanation"]
