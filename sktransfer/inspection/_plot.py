"""Draw explanations: a map over its image, a text with its words highlighted."""

import numpy as np

__all__ = ["plot_explanation", "plot_text_explanation"]

MONO_ADVANCE = 0.6  # a monospace character's width, in ems (DejaVu Sans Mono: 0.602)


def plot_explanation(image, heatmap, *, ax=None, alpha=0.5, cmap="jet", title=None):
    """Draw ``heatmap`` over ``image`` with matplotlib and return the axes.

    Parameters
    ----------
    image : ndarray of shape (height, width, 3) or (height, width), or PIL image
        The original image.
    heatmap : ndarray of shape (height, width)
        Its map from :func:`explain`, in [0, 1].
    ax : matplotlib Axes, optional
        Where to draw (a new figure's axes otherwise).
    alpha : float, default=0.5
        Opacity of the map.
    cmap : str, default="jet"
        Colour map of the map.
    title : str, optional
        The axes' title.

    Returns
    -------
    ax : matplotlib Axes
    """
    import matplotlib.pyplot as plt  # an optional dependency, needed for plots only

    image = np.asarray(image)
    heatmap = np.asarray(heatmap)
    if heatmap.shape != image.shape[:2]:
        raise ValueError(
            f"The map has shape {heatmap.shape}; the image is {image.shape[:2]}: give "
            "the image the map was computed for."
        )
    if ax is None:
        _, ax = plt.subplots()
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    ax.imshow(heatmap, cmap=cmap, alpha=alpha, vmin=0, vmax=1)
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return ax


def _layout(explanation, width):
    """``(token, score, line, column)`` of each token, wrapped at ``width`` characters."""
    placed, line, column, end = [], 0, 0, 0
    for token, (start, stop), score in zip(
        explanation.tokens, explanation.spans, explanation.scores, strict=True
    ):
        column += 1 if start > end and column else 0  # one space where the text has any
        if column and column + len(token) > width:
            line, column = line + 1, 0
        placed.append((token, float(score), line, column))
        column, end = column + len(token), stop
    return placed


def plot_text_explanation(explanation, *, ax=None, cmap="RdBu_r", width=60, title=None):
    """Draw a text with each word's background coloured by its attribution.

    Parameters
    ----------
    explanation : TextExplanation
        One text's explanation from :func:`explain`.
    ax : matplotlib Axes, optional
        Where to draw (a new figure's axes, sized to the text, otherwise).
    cmap : str, default="RdBu_r"
        Diverging colour map: its upper end for the words the target's score rests on,
        its lower end for those that lower it, its middle for neither (the strongest
        attribution sets the scale).
    width : int, default=60
        Characters per line before the text wraps.
    title : str, optional
        The axes' title.

    Returns
    -------
    ax : matplotlib Axes
    """
    import matplotlib.pyplot as plt  # an optional dependency, needed for plots only

    if not hasattr(explanation, "tokens"):
        raise TypeError(
            "plot_text_explanation takes one TextExplanation from explain(model, texts); "
            f"got {type(explanation).__name__}."
        )
    placed = _layout(explanation, width)
    n_lines = 1 + max((line for *_, line, _ in placed), default=0)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.09 * width + 0.4, 0.3 * n_lines + 0.4))
    colours = plt.get_cmap(cmap)
    top = max(float(np.abs(explanation.scores).max(initial=0)), 1e-12)
    inches = ax.get_window_extent().width / ax.figure.dpi
    size = min(12.0, 72 * inches / (width * MONO_ADVANCE))  # ``width`` characters fill a line
    for token, score, line, column in placed:
        face = colours(0.5 + 0.5 * score / top)
        dark = 0.299 * face[0] + 0.587 * face[1] + 0.114 * face[2] < 0.5
        ax.annotate(  # placed in points from the left edge: spacing survives tight_layout
            token, (0, 1 - (line + 0.5) / n_lines), xycoords="axes fraction",
            xytext=(column * size * MONO_ADVANCE, 0), textcoords="offset points",
            family="monospace", fontsize=size, va="center", ha="left",
            color="white" if dark else "black",
            bbox={"facecolor": face, "edgecolor": "none", "pad": 1},
        )  # fmt: skip
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return ax
