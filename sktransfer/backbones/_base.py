"""The :class:`Backbone` record every estimator works from, and its input pipeline.

A backbone carries everything an estimator needs to know about a network, so that the
estimators never ask which modality they work on: its input pipeline (``preprocessing``:
how raw inputs are checked, turned into batches and fed), its stages and layer groups,
its feature size, and where its weights came from.
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from numbers import Integral, Real

import torch
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

# Crops larger than this are refused: a 2048 px crop already needs ~50 MB per image in
# float32 after the first convolution; a crafted 3000 px setting took 7.7 GB.
MAX_IMAGE_SIZE = 2048

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

    modality = "image"

    def __post_init__(self):
        for name in ("crop_size", "resize_size"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or not 1 <= value <= 2 * MAX_IMAGE_SIZE:
                raise ValueError(
                    f"Preprocessing.{name} must be an integer in [1, {2 * MAX_IMAGE_SIZE}]; "
                    f"got {value!r}."
                )
        if self.crop_size > MAX_IMAGE_SIZE:
            raise ValueError(
                f"Preprocessing.crop_size={self.crop_size} is above the limit of "
                f"{MAX_IMAGE_SIZE} pixels."
            )
        if self.interpolation not in ("bilinear", "bicubic", "nearest"):
            raise ValueError(
                "Preprocessing.interpolation must be 'bilinear', 'bicubic' or 'nearest'; "
                f"got {self.interpolation!r}."
            )
        for name in ("mean", "std"):
            value = tuple(getattr(self, name))
            if len(value) != 3 or not all(isinstance(v, Real) for v in value):
                raise ValueError(f"Preprocessing.{name} must be 3 numbers; got {value!r}.")
            object.__setattr__(self, name, value)

    @classmethod
    def from_json(cls, values):
        """Rebuild from ``dataclasses.asdict`` output read back from JSON (validated)."""
        fields = {"crop_size", "resize_size", "interpolation", "mean", "std"}
        if not isinstance(values, dict) or set(values) != fields:
            raise ValueError(f"Preprocessing needs exactly the fields {sorted(fields)}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def with_options(self, image_size=None, max_length=None):
        """Return a copy configured by an estimator's input parameters.

        ``image_size`` crops to that side, resizing in the same proportion; None keeps
        the backbone's own. ``max_length`` is for text backbones and is ignored here.
        """
        if image_size is None or image_size == self.crop_size:
            return self
        ratio = self.resize_size / self.crop_size
        return replace(self, crop_size=int(image_size), resize_size=round(image_size * ratio))

    def with_image_size(self, image_size):
        """Return a copy that crops to ``image_size`` (see :meth:`with_options`)."""
        return self.with_options(image_size=image_size)

    def check(self, X):
        """Validate raw input ``X`` (nothing is decoded): see :mod:`sktransfer._images`."""
        from .._images import check_images

        return check_images(X)

    def example_input(self, n=1, random=False):
        """Return a batch of ``n`` blank (or random) inputs, as the network receives them."""
        shape = (n, 3, self.crop_size, self.crop_size)
        return torch.randn(shape) if random else torch.zeros(shape)

    def batches(
        self,
        inputs,
        batch_size,
        *,
        augment=None,
        num_workers=0,
        progress=False,
        desc=None,
        uniform=False,
    ):
        """Yield the network's input batches for checked ``inputs``, in order.

        ``augment`` is as in :meth:`train_transform` (None: the deterministic transform).
        Image batches always have one shape (``uniform`` is for text).
        """
        from .._images import iter_batches

        return iter_batches(
            inputs,
            self.train_transform(augment),
            batch_size,
            num_workers=num_workers,
            progress=progress,
            desc=desc,
        )

    def dataset(self, inputs, targets=None, *, augment=None):
        """Return a :class:`torch.utils.data.Dataset` of ``(input, target)`` pairs for training."""
        from .._images import ImageDataset

        return ImageDataset(inputs, self.train_transform(augment), targets)

    def _finish(self):
        # uint8 images are resized in uint8 (as PIL-based pipelines do, and three times
        # faster to decode than in float32); float images (float arrays, 16-bit files) in
        # float32, keeping their precision
        return [
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean=list(self.mean), std=list(self.std)),
        ]

    def eval_transform(self):
        """Deterministic transform: PIL image or ``(C, H, W)`` tensor -> float tensor."""
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
    freezes (counted from the input, see :meth:`freeze`). Backbones that cannot be cut into
    sequential stages have a single stage; their layer groups are then sets of parameters
    inside it.

    Build one with :func:`sktransfer.load_backbone`.

    Attributes
    ----------
    name : str
        Canonical name, e.g. ``"efficientnet_lite0"`` or ``"timm:convnext_nano"``.
    net : torch.nn.Sequential
        The trunk without its classification head.
    preprocessing : Preprocessing
        The input pipeline: how inputs are checked, batched and normalised, as the
        weights were trained.
    num_features : int
        Width of the pooled feature vector.
    head : torch.nn.Module or None
        The classification head of the task the weights were trained on (e.g. the 1000
        ImageNet classes), so that ``head(net(x))`` reproduces the original network's
        logits; None when there is none (a module of your own, or a fine-tuned trunk,
        whose features no longer match it).
    layer_groups : list of (str, list of str)
        Freezing units from input to output: a name and the qualified names of the
        parameters of ``net`` it holds.
    spec : object
        What was asked for (a name or a module), to rebuild the architecture.
    weights : object
        The weights that were loaded (``"DEFAULT"``, an enum name, a path, None for
        random initialisation, or ``"fine-tuned"``).
    origin : tuple or None
        ``(spec, weights, digest)`` when the weights came unchanged from a named source
        (the bundled or pretrained weights), else None. See :attr:`rebuildable`.
    """

    name: str
    net: nn.Sequential
    preprocessing: Preprocessing
    num_features: int
    head: nn.Module | None = None
    layer_groups: list = field(default_factory=list)
    spec: object = None
    weights: object = None
    origin: tuple | None = None

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

    # --- where the weights come from: the one rule for files and pickles -------------------
    def weights_digest(self):
        """SHA-256 of the trunk's tensors (parameters and buffers), names included."""
        digest = hashlib.sha256()
        for name, tensor in self.net.state_dict().items():
            digest.update(name.encode())
            data = tensor.detach().cpu().contiguous()
            digest.update(str(data.dtype).encode() + str(tuple(data.shape)).encode())
            digest.update(data.view(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    @property
    def rebuildable(self):
        """Whether the weights can be rebuilt bit for bit from their named source.

        True only for weights loaded by name (bundled or pretrained) and unchanged since:
        then a file or a pickle stores the name, not the tensors. Fine-tuned or random
        weights, a checkpoint file (which may change) and modules of your own are stored.
        """
        if self.origin is None or self.net is None:
            return False
        return self.origin[2] == self.weights_digest()

    def __deepcopy__(self, memo):  # a copy in memory keeps everything (no pickling rule)
        new = object.__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    def __getstate__(self):
        state = dict(self.__dict__)
        if self.rebuildable:
            state["net"] = state["head"] = None  # rebuilt from `origin` on unpickling
        elif self.net is not None and _device_of(self.net).type != "cpu":  # for CPU machines
            state["net"] = copy.deepcopy(self.net).cpu()
            state["head"] = copy.deepcopy(self.head).cpu() if self.head is not None else None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.net is None and self.origin is not None:
            from . import load_backbone

            spec, weights, digest = self.origin
            source = load_backbone(spec, weights)
            if source.origin is None or source.origin[2] != digest:
                raise ValueError(
                    f"The weights of backbone {spec!r} ({weights!r}) on this machine differ "
                    "from those the object was pickled with; the pickle does not hold them."
                )
            self.net, self.head = source.net, source.head

    # --- freezing ----------------------------------------------------------------------------
    def resolve_n_frozen(self, n_frozen):
        """Turn ``"all"`` or a negative count into the number of frozen groups."""
        n_groups = self.n_layer_groups
        if isinstance(n_frozen, str) and n_frozen == "all":
            return n_groups
        if isinstance(n_frozen, Integral) and not isinstance(n_frozen, bool):
            if -n_groups <= n_frozen <= n_groups:
                return int(n_frozen) if n_frozen >= 0 else n_groups + int(n_frozen)
        raise ValueError(
            f"n_frozen must be 'all' or an integer in [-{n_groups}, {n_groups}] for backbone "
            f"{self.name!r}, which has {n_groups} layer groups; got {n_frozen!r}."
        )

    def freeze(self, n_frozen):
        """Freeze the first ``n_frozen`` layer groups and unfreeze the rest.

        Parameters
        ----------
        n_frozen : "all" or int
            Groups counted from the input; negative counts from the top.

        Returns
        -------
        n_frozen : int
            The number of frozen groups.
        """
        n = self.resolve_n_frozen(n_frozen)
        frozen = {p for _, params in self.layer_groups[:n] for p in params}
        for name, param in self.net.named_parameters():
            param.requires_grad_(name not in frozen)
        return n

    def frozen_stages(self):
        """Count the leading stages of ``net`` that have no trainable parameter."""
        count = 0
        for stage in self.net.children():
            if any(p.requires_grad for p in stage.parameters()):
                break
            count += 1
        return count

    def __repr__(self):
        weights = "stored" if self.origin is None else repr(self.weights)
        return (
            f"Backbone(name={self.name!r}, weights={weights}, "
            f"num_features={self.num_features}, n_layer_groups={self.n_layer_groups}, "
            f"preprocessing={self.preprocessing!r})"
        )


def preprocessing_from_json(values):
    """Rebuild any backbone's input pipeline from its JSON description (validated)."""
    if isinstance(values, dict) and "spec" in values:
        from ._text import TextPreprocessing

        return TextPreprocessing.from_json(values)
    return Preprocessing.from_json(values)


def _device_of(module):
    tensor = next(iter(module.state_dict().values()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


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
