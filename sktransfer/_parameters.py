"""The parameter constraints every estimator and function shares: one table.

Each estimator picks the rows it takes (:func:`constraints`) and adds only the ones that
are its own, so a shared parameter (``image_size``, ``pooling``, ``batch_size``, ...) is
checked the same way everywhere.
"""

import os
from numbers import Integral

import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from torch import nn

from ._modalities import MAX_IMAGE_SIZE, POOLINGS
from .backbones import Backbone

__all__ = ["CONSTRAINTS", "constraints"]

CONSTRAINTS = {
    "backbone": [str, nn.Module, Backbone, BaseEstimator],
    "weights": [str, os.PathLike, None],
    "image_size": [Interval(Integral, 16, MAX_IMAGE_SIZE, closed="both"), None],
    "max_length": [Interval(Integral, 2, None, closed="left"), None],
    "layer": [str, None],
    "pooling": [StrOptions(set(POOLINGS)), None],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "device": [str, torch.device],
    "num_workers": [Interval(Integral, 0, None, closed="left")],
    "memory": [None, str, os.PathLike, HasMethods(["cache"])],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


def constraints(*names):
    """Return the rows of :data:`CONSTRAINTS` for ``names`` (a ``_parameter_constraints``)."""
    return {name: CONSTRAINTS[name] for name in names}
