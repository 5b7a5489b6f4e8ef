"""What every transfer estimator shares: the backbone parameters, loading, inputs, cloning.

An estimator built on :class:`TransferEstimator` never asks which modality it works on:
the backbone's input pipeline (``backbone_.preprocessing``) checks the raw input, makes
the batches and knows the blank input used to probe shapes.
"""

import os
from numbers import Integral

import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval
from torch import nn

from ..backbones import Backbone, load_backbone
from ..backbones._base import MAX_IMAGE_SIZE


class TransferEstimator(BaseEstimator):
    """Base of the estimators that run a pretrained backbone (private).

    Subclasses merge :attr:`_parameter_constraints` into their own and call
    :meth:`_load_backbone` in ``fit``.
    """

    _parameter_constraints: dict = {
        "backbone": [str, nn.Module, Backbone, BaseEstimator],
        "weights": [str, os.PathLike, None],
        "image_size": [Interval(Integral, 16, MAX_IMAGE_SIZE, closed="both"), None],
        "max_length": [Interval(Integral, 2, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
    }

    def _load_backbone(self):
        """Load the backbone named by the parameters, its input pipeline configured."""
        backbone = load_backbone(self.backbone, self.weights)
        backbone.preprocessing = backbone.preprocessing.with_options(
            image_size=self.image_size, max_length=self.max_length
        )
        return backbone

    def _batches(
        self, inputs, preprocessing, *, augment=None, progress=False, desc=None, uniform=False
    ):
        return preprocessing.batches(
            inputs,
            self.batch_size,
            augment=augment,
            num_workers=self.num_workers,
            progress=progress,
            desc=desc,
            uniform=uniform,
        )

    def __sklearn_clone__(self):
        new = super().__sklearn_clone__()
        if isinstance(getattr(self.backbone, "backbone_", None), Backbone):
            # A fitted source model is a parameter through its weights: cloning it (which
            # unfits it) would lose them, so the clone shares it (fit only reads it).
            new.backbone = self.backbone
        return new

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
