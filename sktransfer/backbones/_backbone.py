"""The :class:`Backbone` record every estimator works from, and :func:`load_backbone`.

A backbone carries everything an estimator needs to know about a network, so that the
estimators never ask which modality they work on: its input pipeline (``preprocessing``:
how raw inputs are checked, turned into batches and fed), its stages and layer groups,
its feature size, and where its weights came from. Where a spec's network comes from is
decided in :mod:`._sources`.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from numbers import Integral

import torch
from torch import nn

from .._core.digests import weights_digest
from .._modalities import ImagePipeline
from ._layer_groups import frozen_stage_count, stage_groups
from ._sources import DEFAULT_BACKBONE, build, build_module, source_state
from ._weights import is_checkpoint_path


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
    preprocessing : InputPipeline
        The input pipeline (its modality's): how inputs are checked, batched and
        normalised, as the weights were trained.
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
    preprocessing: object
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
        return weights_digest(self.net)

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

    def frozen_stage_count(self, n_frozen):
        """Count the leading stages of ``net`` that ``freeze(n_frozen)`` freezes whole."""
        return frozen_stage_count(self.net, self.layer_groups, self.resolve_n_frozen(n_frozen))

    def check_layer(self, layer):
        """Refuse a layer name ``net`` does not have, suggesting close names (None: the end)."""
        if layer is None or layer in self.layer_names:
            return
        close = difflib.get_close_matches(layer, self.layer_names, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        stages = [name for name, _ in self.net.named_children()]
        raise ValueError(
            f"Unknown layer {layer!r} for backbone {self.name!r}.{hint} The stages "
            f"are {stages}; every valid name ({len(self.layer_names)} in all, e.g. "
            f"{self.layer_names[1]!r}) is listed by backbone_.layer_names."
        )

    def __repr__(self):
        weights = "stored" if self.origin is None else repr(self.weights)
        return (
            f"Backbone(name={self.name!r}, weights={weights}, "
            f"num_features={self.num_features}, n_layer_groups={self.n_layer_groups}, "
            f"preprocessing={self.preprocessing!r})"
        )


def _device_of(module):
    tensor = next(iter(module.state_dict().values()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def build_backbone(spec, weights, *, random_state=0):
    """Build a fresh :class:`Backbone` from a string spec (no cache).

    Random initialisation (``weights=None``) draws from ``random_state`` (an int), in a
    forked random stream: the same spec and seed give the same network in every process.
    """
    if weights is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_state)
            return Backbone(**build(spec, weights))
    backbone = Backbone(**build(spec, weights))
    if not is_checkpoint_path(weights):  # a named source: rebuildable while unchanged
        backbone.origin = (spec, weights, backbone.weights_digest())
    return backbone


@lru_cache(maxsize=4)
def _cached_build(spec, weights, random_state, state):
    """Build once per spec, weights and seed: a search loads each file once (callers copy)."""
    return build_backbone(spec, weights, random_state=random_state)


def load_backbone(spec=DEFAULT_BACKBONE, weights="DEFAULT", *, preprocessing=None, random_state=0):
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
    preprocessing : InputPipeline, optional
        Overrides the backbone's input pipeline (for an image network, its resize, crop
        and normalisation). A module of your own takes an :class:`ImagePipeline` unless
        given another modality's pipeline.
    random_state : int, default=0
        Seed of the random initialisation (``weights=None``).

    Returns
    -------
    Backbone
        A fresh copy, in eval mode, on the CPU. Random initialisation (``weights=None``)
        is seeded by ``random_state``: the same spec gives the same network in every
        process.

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
        backbone = Backbone(**build_module(copy.deepcopy(spec), preprocessing or ImagePipeline()))
    elif isinstance(spec, str):
        key = str(weights) if weights is not None else None
        if key is not None and is_checkpoint_path(weights):
            backbone = build_backbone(spec, weights)  # a file may change: no cache
        else:
            state = source_state(spec)  # a local folder edited since: built again
            backbone = copy.deepcopy(_cached_build(spec, key, int(random_state), state))
    else:
        raise TypeError(
            "backbone must be a model name, a torch.nn.Module, a Backbone or a fitted "
            f"sktransfer estimator; got {type(spec).__name__}."
        )
    if preprocessing is not None:
        backbone.preprocessing = preprocessing
    return backbone
