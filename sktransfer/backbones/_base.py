"""The :class:`Backbone` record every estimator works from, and its preprocessing."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How a backbone expects its images: resize, centre-crop, scale, normalise.

    Parameters
    ----------
    crop_size : int
        Side of the square the network sees.
    resize_size : int
        The shorter image side is resized to this before the centre crop.
    interpolation : str
        ``"bilinear"``, ``"bicubic"`` or ``"nearest"``.
    mean, std : tuple of float
        Per-channel normalisation applied to pixels scaled to [0, 1].
    """

    crop_size: int = 224
    resize_size: int = 256
    interpolation: str = "bilinear"
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    def with_image_size(self, image_size):
        """Return a copy that crops to ``image_size``, resizing in the same proportion."""
        if image_size is None or image_size == self.crop_size:
            return self
        ratio = self.resize_size / self.crop_size
        return replace(self, crop_size=int(image_size), resize_size=round(image_size * ratio))

    def _finish(self):
        return [
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean=list(self.mean), std=list(self.std)),
        ]

    def eval_transform(self):
        """Deterministic transform: PIL image or uint8 ``(C, H, W)`` tensor -> float tensor."""
        mode = InterpolationMode(self.interpolation)
        return T.Compose(
            [
                T.Resize(self.resize_size, interpolation=mode, antialias=True),
                T.CenterCrop(self.crop_size),
                *self._finish(),
            ]
        )

    def train_transform(self, augment="default"):
        """Transform for training.

        ``augment=None`` or ``False`` gives :meth:`eval_transform`; ``"default"`` (or
        ``True``) a random resized crop and a horizontal flip; a callable is applied to
        the decoded image first and is followed by the usual resize, crop and normalisation.
        """
        if augment is None or augment is False:
            return self.eval_transform()
        mode = InterpolationMode(self.interpolation)
        if augment is True or augment == "default":
            return T.Compose(
                [
                    T.RandomResizedCrop(self.crop_size, scale=(0.5, 1.0), interpolation=mode),
                    T.RandomHorizontalFlip(),
                    *self._finish(),
                ]
            )
        if callable(augment):
            return T.Compose([augment, self.eval_transform()])
        raise ValueError(
            f"augment must be None, False, True, 'default' or a callable transform; "
            f"got {augment!r}"
        )


@dataclass(eq=False)
class Backbone:
    """A pretrained network prepared for transfer.

    ``net`` is an :class:`torch.nn.Sequential` of *stages* run from input to output; its
    output is a ``(n_samples, num_features)`` tensor of pooled features. The stages that
    hold parameters are the backbone's **layer groups**, the units that fine-tuning
    freezes (counted from the input). Backbones that cannot be cut into sequential stages
    have a single stage; their layer groups are then sets of parameters inside it.

    Build one with :func:`sktransfer.load_backbone`.

    Attributes
    ----------
    name : str
        Canonical name, e.g. ``"efficientnet_lite0"`` or ``"timm:convnext_nano"``.
    net : torch.nn.Sequential
        The trunk without its classification head.
    preprocessing : Preprocessing
        Resize, crop and normalisation the weights were trained with.
    num_features : int
        Width of the pooled feature vector.
    head : torch.nn.Module or None
        The pretrained classification head (e.g. the 1000 ImageNet classes), kept so that
        ``head(net(x))`` reproduces the original network's logits.
    layer_groups : list of (str, list of str)
        Freezing units from input to output: a name and the qualified names of the
        parameters of ``net`` it holds.
    spec : object
        What was asked for (a name or a module), to rebuild the architecture.
    weights : object
        The weights that were loaded (``"DEFAULT"``, an enum name, a path or None).
    """

    name: str
    net: nn.Sequential
    preprocessing: Preprocessing
    num_features: int
    head: nn.Module | None = None
    layer_groups: list = field(default_factory=list)
    spec: object = None
    weights: object = None

    def __post_init__(self):
        if not self.layer_groups:
            self.layer_groups = stage_groups(self.net)

    @property
    def layer_names(self):
        """Names of every module of ``net`` whose output can be extracted, in order."""
        return [name for name, _ in self.net.named_modules() if name]

    @property
    def n_layer_groups(self):
        """Number of freezing units."""
        return len(self.layer_groups)

    def __repr__(self):
        return (
            f"Backbone(name={self.name!r}, num_features={self.num_features}, "
            f"n_layer_groups={self.n_layer_groups}, crop_size={self.preprocessing.crop_size})"
        )


def stage_groups(net):
    """Layer groups of a staged net: one per stage that holds parameters."""
    groups = []
    for stage_name, stage in net.named_children():
        params = [f"{stage_name}.{n}" for n, _ in stage.named_parameters()]
        if params:
            groups.append((stage_name, params))
    return groups


def parameter_groups(module):
    """Split a module that is not sequential into ordered parameter groups.

    The child holding more than half the parameters is opened up (a transformer's encoder,
    then its list of blocks) until no child dominates; every child with parameters is then
    a group, in registration order. Parameters that belong directly to an opened module
    (class tokens, position embeddings) join the first group.
    """
    groups, loose = _split(module, "")
    if loose and groups:
        groups[0] = (groups[0][0], loose + groups[0][1])
    elif loose:
        groups = [("params", loose)]
    return groups


def _split(module, prefix):
    total = sum(p.numel() for p in module.parameters())
    groups = []
    loose = [f"{prefix}{n}" for n, _ in module.named_parameters(recurse=False)]
    for name, child in module.named_children():
        size = sum(p.numel() for p in child.parameters())
        if size == 0:
            continue
        n_children = sum(1 for c in child.children() if any(True for _ in c.parameters()))
        if size > total / 2 and n_children > 1:
            inner, inner_loose = _split(child, f"{prefix}{name}.")
            groups += inner
            loose += inner_loose
        else:
            params = [f"{prefix}{name}.{n}" for n, _ in child.named_parameters()]
            groups.append((f"{prefix}{name}", params))
    return groups, loose


def single_stage(trunk, name="trunk"):
    """Wrap a module that maps images to features as a one-stage net with finer groups."""
    net = nn.Sequential(OrderedDict([(name, trunk)]))
    groups = [(g, [f"{name}.{p}" for p in params]) for g, params in parameter_groups(trunk)]
    return net, groups
