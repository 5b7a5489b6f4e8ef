"""Test-time augmentation: each prediction averaged over views of the image.

``tta=True`` runs the network on each image as ``predict`` always does and on its
mirror image (the network's input flipped left to right), and averages the two
predictions: the class probabilities of a classifier (each label's for multi-label),
the predictions of a regressor. An integer ``tta=n`` takes the first ``n`` of
:data:`VIEWS`: the input, its mirror, then the four corner crops of
:data:`CORNER_FRACTION` of its side, each resized back to the input's size. ``tta=1``
(or False) is the input alone. The task averages the views (``average_views``); the
views are images' only: a text backbone refuses ``tta``.
"""

from numbers import Integral

import torch
from torch.nn import functional as F

__all__ = [
    "CORNER_FRACTION",
    "VIEWS",
    "ViewsForward",
    "check_views",
    "n_views",
    "require_image_batches",
]

VIEWS = ("input", "mirror", "top left", "top right", "bottom left", "bottom right")
# the side of a corner crop, as a share of the input's: a zoom of 8/7, about the
# centre crop's own margin (224 of 256 pixels)
CORNER_FRACTION = 7 / 8


def n_views(tta):
    """Return the number of views ``tta`` asks for (1: no test-time augmentation)."""
    if isinstance(tta, bool) or not isinstance(tta, Integral):
        return 2 if tta else 1
    return int(tta)


def check_views(tta, preprocessing):
    """Refuse ``tta`` for inputs that are not images (batches of ``(n, C, H, W)``)."""
    if n_views(tta) > 1:
        what = "averages predictions over flipped and cropped images"
        require_image_batches(f"tta={tta!r}", what, preprocessing, "tta=False")


def require_image_batches(setting, what, preprocessing, instead):
    """Refuse ``setting`` (which ``what``) unless the network's batches are images.

    Images are batches of ``(n, C, H, W)`` tensors; a ValueError names the setting, the
    inputs the backbone takes and the value to use ``instead``.
    """
    example = preprocessing.example_input()
    if not (torch.is_tensor(example) and example.ndim == 4):
        raise ValueError(
            f"{setting} {what}; this backbone takes {preprocessing.modality} inputs. "
            f"Leave {instead}."
        )


def view(batch, k):
    """Return view ``k`` of :data:`VIEWS` of an image ``batch`` ``(n, C, H, W)``."""
    if k == 0:
        return batch
    if k == 1:
        out = batch.flip(-1)
    else:
        height, width = batch.shape[-2:]
        h, w = round(CORNER_FRACTION * height), round(CORNER_FRACTION * width)
        top = 0 if k in (2, 3) else height - h
        left = 0 if k in (2, 4) else width - w
        crop = batch[..., top : top + h, left : left + w]
        out = F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False)
    if not batch.is_contiguous() and batch.is_contiguous(memory_format=torch.channels_last):
        return out.contiguous(memory_format=torch.channels_last)
    return out.contiguous()


class ViewsForward:
    """Run ``forward`` on each of the first ``n`` views of a batch.

    Returns the outputs stacked as ``(batch, n, ...)``, which the task averages.
    """

    def __init__(self, forward, n):
        self.forward = forward
        self.n = n

    @property
    def channels_last(self):
        return getattr(self.forward, "channels_last", True)

    def __call__(self, batch):
        return torch.stack([self.forward(view(batch, k)) for k in range(self.n)], dim=1)
