"""Seeing why: where in an image, and on which words, a fitted model's prediction rests.

:func:`explain` returns one explanation per input: for an image a map aligned to the
original image and scaled to [0, 1] (Grad-CAM, the class activation map or occlusion), for
a text a :class:`TextExplanation` of each word's attribution (occlusion).
:func:`plot_explanation` overlays a map; :func:`plot_text_explanation` highlights a text.
"""

from ._explain import explain
from ._plot import plot_explanation, plot_text_explanation
from ._words import TextExplanation

__all__ = ["TextExplanation", "explain", "plot_explanation", "plot_text_explanation"]
