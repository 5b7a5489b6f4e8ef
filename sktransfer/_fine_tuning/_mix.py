"""Mixup and cutmix: training batches blended with a shuffled copy of themselves.

With ``mixup=alpha`` each training batch is replaced by ``lam * X + (1 - lam) *
X[perm]``, ``perm`` a random permutation of its rows and ``lam`` drawn from
``Beta(alpha, alpha)`` for the batch (Zhang et al., ICLR 2018); with ``cutmix=alpha`` a
box of a ``1 - lam`` share of each image is pasted from the image ``perm`` points to,
and ``lam`` becomes the share the box left (Yun et al., ICCV 2019). With both, each
batch takes one of the two at random, as timm's ``Mixup`` does. The targets are mixed
alike: the one-hot labels (each label's 0/1 for multi-label) and the row weights, as
``lam * t + (1 - lam) * t[perm]``. The cross-entropy of such a soft target is the same
mixture of the two labels' cross-entropies.

A classifier's tool: a blend of two images rarely has the blend of their real-valued
targets. The inputs change every batch, so, as with augmentation, the frozen-prefix
cache is not used.
"""

import torch

__all__ = ["BatchMixer"]


class BatchMixer:
    """Mix a training batch ``(X, packed targets)`` (see the module's description).

    Parameters
    ----------
    mixup, cutmix : float
        The ``alpha`` of each (0: not used).
    task : SingleLabel or MultiLabel
        Turns the packed targets into probabilities (:meth:`soft_targets`).
    """

    def __init__(self, mixup, cutmix, task):
        self.mixup = mixup
        self.cutmix = cutmix
        self.task = task

    def __call__(self, X, packed):
        """Return the mixed batch ``(X, packed)``: soft targets, then the row weights."""
        use_cutmix = self.cutmix > 0 and (self.mixup <= 0 or torch.rand(()) < 0.5)
        alpha = self.cutmix if use_cutmix else self.mixup
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        perm = torch.randperm(len(X))
        if use_cutmix:
            X, lam = _paste_box(X, perm, lam)
        else:
            X = lam * X + (1 - lam) * X[perm]
        targets = torch.cat([self.task.soft_targets(packed[:, :-1]), packed[:, -1:]], dim=1)
        return X, lam * targets + (1 - lam) * targets[perm]


def _paste_box(X, perm, lam):
    """Paste a random box of ``1 - lam`` of each image's area from ``X[perm]``.

    Returns the images and the share of each image's own pixels (the box clipped to the
    image may be smaller than asked).
    """
    height, width = X.shape[-2:]
    ratio = (1 - lam) ** 0.5
    h, w = int(height * ratio), int(width * ratio)
    cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
    top, bottom = max(cy - h // 2, 0), min(cy + h - h // 2, height)
    left, right = max(cx - w // 2, 0), min(cx + w - w // 2, width)
    X = X.clone()
    X[..., top:bottom, left:right] = X[perm][..., top:bottom, left:right]
    return X, 1 - (bottom - top) * (right - left) / (height * width)
