"""Overlay a map from :func:`~sktransfer.inspection.explain` on its image."""

import numpy as np

__all__ = ["plot_explanation"]


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
