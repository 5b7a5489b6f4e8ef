"""Codecs for sktransfer's estimators and for the :class:`~sktransfer.Backbone` they hold.

A backbone is stored as its architecture's name, its weights' label and its input pipeline.
Its tensors are stored unless they rebuild from their name (:attr:`Backbone.rebuildable`):
then the weights' digest is recorded, and loading checks the rebuilt weights against it.
Stored tensors are checked against the architecture before it is built (a file must not
make loading allocate a network it holds no weights for).

A :class:`~sktransfer.FineTunedClassifier` is stored as its parameters, its backbone's
architecture and input pipeline, its classes and the tensors of ``net_.module_`` (trunk
and head); a ``backbone`` parameter that is a fitted model or a ``Backbone`` is stored
with its weights unless they rebuild from their name, so that the loaded model's
parameter still holds those weights. A multi-label classifier's ``classes_`` are the
columns of ``y`` (``0 .. n_labels - 1``); the names of those labels, where the caller gave
the fitted model some as ``label_names_`` (one string per label, as the command line does),
are stored with it and set again on load.
"""

import copy

import numpy as np
import torch

from .._core.device import fallback_device
from .._fine_tuning import (
    MultiLabel,
    Recipe,
    Regression,
    SingleLabel,
    TransferNet,
    build_net,
    make_head,
    release_training_state,
    to_device,
)
from ..backbones import Backbone, build_backbone, is_checkpoint_path, load_backbone
from ._codec import Codec


# --- the input pipeline: the one place that describes and rebuilds it ----------------------
def describe_pipeline(preprocessing):
    """Return a backbone's input pipeline as JSON values (its modality's description)."""
    return preprocessing.describe()


def rebuild_pipeline(backbone, values):
    """Return ``backbone``'s input pipeline set as :func:`describe_pipeline` described it.

    The freshly built backbone's own pipeline checks the values (they come from a file).
    """
    return backbone.preprocessing.restore(values)


# --- the backbone ----------------------------------------------------------------------------
def backbone_to_json(backbone):
    """Describe a backbone: ``(description, tensors)``.

    The tensors are left out exactly when :attr:`Backbone.rebuildable` is true; the
    description is JSON.
    """
    if not isinstance(backbone.spec, str):
        raise TypeError(
            "The safe format rebuilds a network from its architecture's name; this "
            f"backbone is a {type(backbone.spec).__name__} object. Use joblib.dump instead."
        )
    stored = not backbone.rebuildable
    weights = backbone.weights if backbone.weights is None else str(backbone.weights)
    description = {
        "spec": backbone.spec,
        "weights": weights,
        "stored": stored,
        "digest": None if stored else backbone.origin[2],
        "preprocessing": describe_pipeline(backbone.preprocessing),
    }
    tensors = {}
    if stored:
        state = backbone.net.state_dict()
        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    return description, tensors


def backbone_from_json(description, tensors, sources):
    """Rebuild a backbone from :func:`backbone_to_json`'s output (checked, no pickle).

    ``sources`` checks the spec first: nothing is read from a source the caller did not
    allow.
    """
    spec, weights = description["spec"], description["weights"]
    sources.check(spec)
    if description["stored"]:
        check_stored_tensors(spec, tensors)
        backbone = load_backbone(spec, weights=None)  # the architecture
        backbone.net.load_state_dict(tensors, strict=True)
        backbone.head, backbone.weights = None, weights
    else:
        if weights is None or is_checkpoint_path(weights):
            # random weights and checkpoint files are always stored: a file that says
            # otherwise was not written by save (and would build the network for nothing)
            raise ValueError(
                f"The file names {weights!r} weights of {spec!r} without storing them; "
                "only weights loaded by name are left out of a file."
            )
        backbone = load_backbone(spec, weights)
        if backbone.origin is None or backbone.origin[2] != description["digest"]:
            raise ValueError(
                f"The {weights!r} weights of {spec!r} on this machine differ from those "
                "the model was saved with, and the file does not hold them."
            )
    backbone.preprocessing = rebuild_pipeline(backbone, description["preprocessing"])
    return backbone


def check_stored_tensors(spec, tensors):
    """Refuse stored weights that do not fit ``spec``'s architecture, before building it.

    The architecture is first built on the ``meta`` device, which allocates nothing: a
    file that names a large network but holds none of its weights is refused without
    allocating the network's memory.
    """
    try:
        with torch.device("meta"):  # never through load_backbone's cache of real builds
            expected = build_backbone(spec, None).net.state_dict()
    except (NotImplementedError, RuntimeError):
        return  # an architecture that cannot be built without data: the strict load checks

    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(
        k
        for k in set(expected) & set(tensors)
        if tuple(expected[k].shape) != tuple(tensors[k].shape)
    )
    problems = [
        f"{len(names)} {what} (first: {names[0]!r})"
        for what, names in (
            ("missing tensors", missing),
            ("unexpected tensors", unexpected),
            ("tensors of the wrong shape", wrong),
        )
        if names
    ]
    if problems:
        raise ValueError(
            f"The file's stored weights do not fit the {spec!r} architecture it names: "
            + "; ".join(problems)
            + ". The file is damaged or was not written by sktransfer.save."
        )


# --- the backbone parameter --------------------------------------------------------------
def backbone_param_to_json(estimator):
    """Describe the ``backbone`` parameter: ``(json_value, description, tensors)``.

    A name stays a name. A :class:`Backbone` or a fitted estimator is stored through
    :func:`backbone_to_json` (with its weights unless they are rebuildable), so that after
    loading the parameter still holds those weights.
    """
    if isinstance(estimator.backbone, str):
        return estimator.backbone, None, {}
    record = getattr(estimator.backbone, "backbone_", estimator.backbone)
    if not isinstance(record, Backbone):
        raise TypeError(
            "The safe format cannot describe a backbone given as a "
            f"{type(estimator.backbone).__name__} object. Use joblib.dump instead."
        )
    description, tensors = backbone_to_json(record)
    return record.spec, description, tensors


def backbone_param_from_json(value, description, tensors, sources):
    """Rebuild the ``backbone`` parameter from :func:`backbone_param_to_json`'s output."""
    if description is None:
        return value
    return backbone_from_json(description, tensors, sources)


# --- the estimators --------------------------------------------------------------------------
class _TransferCodec(Codec):
    """What both estimators share: no ``memory`` folder, and a backbone the caller allows.

    The ``backbone`` parameter is checked too, although loading does not read it: a refit
    would.
    """

    def encode(self, estimator, child):
        params, state, tensors = self._encode(estimator)
        # a cache folder of this machine, as a Pipeline's memory
        return params | {"memory": None}, state, tensors

    def decode(self, cls, params, state, tensors, child, sources):
        if params.get("memory") is not None:
            raise ValueError(
                f"a {cls.__name__}'s memory folder is not stored (it is None in a saved model)"
            )
        sources.check(params.get("backbone"))
        return self._decode(cls, params, state, tensors, sources)


class ExtractorCodec(_TransferCodec):
    """A :class:`~sktransfer.PretrainedFeatureExtractor`: its backbone, layer and pooling."""

    training_only = ("memory",)

    def _encode(self, estimator):
        value, described, _ = backbone_param_to_json(estimator)  # backbone_ holds its weights
        description, tensors = backbone_to_json(estimator.backbone_)
        params = estimator.get_params(deep=False) | {"backbone": value}
        state = {
            "backbone_": description,
            "backbone_is_record": described is not None,
            "layer_": estimator.layer_,
            "pooling": estimator._pooling,
        }
        return params, state, tensors

    def _decode(self, cls, params, state, tensors, sources):
        estimator = cls(**params)
        backbone = backbone_from_json(state["backbone_"], tensors, sources)
        if state["backbone_is_record"]:  # the parameter holds the same weights
            estimator.backbone = copy.deepcopy(backbone)
        device = fallback_device(estimator.device)
        estimator._set_fitted(backbone, device, state["layer_"], state["pooling"])
        estimator.layer_scores_ = None  # the ranking is not part of the model
        return estimator


class FineTunedCodec(_TransferCodec):
    """A fine-tuned estimator: its network, what its task learnt and its frozen groups."""

    training_only = ("callbacks", "augment", "memory")

    def _encode(self, estimator):
        if callable(estimator.head):
            raise TypeError("A callable head cannot be saved in the safe format; use joblib.")
        value, described, param_tensors = backbone_param_to_json(estimator)
        record = estimator._backbone
        if not isinstance(record.spec, str):
            raise TypeError(
                "The safe format rebuilds the network from its architecture's name; this "
                f"backbone is a {type(record.spec).__name__} object. Use joblib.dump instead."
            )
        state = {
            "backbone_param": described,
            "spec": record.spec,
            "weights_label": None if record.weights is None else str(record.weights),
            "preprocessing": describe_pipeline(record.preprocessing),
            **task_to_json(estimator._task),
            **label_names_to_json(estimator),
            "n_frozen_": estimator.n_frozen_,
            "n_cached_stages_": estimator.n_cached_stages_,
            **Recipe(estimator.best_recipe_["n_frozen"], estimator.recipe_results_).to_json(),
        }
        tensors = {f"backbone.{k}": v for k, v in param_tensors.items()}
        for key, tensor in estimator.net_.module_.state_dict().items():
            tensors[f"module.{key}"] = tensor.detach().cpu().contiguous()
        params = estimator.get_params(deep=False) | {"backbone": value}
        return params, state, tensors

    def _decode(self, cls, params, state, tensors, sources):
        estimator = cls(**params)
        estimator.backbone = backbone_param_from_json(
            params["backbone"], state["backbone_param"], _strip(tensors, "backbone."), sources
        )
        sources.check(state["spec"])
        check_stored_tensors(state["spec"], _strip(tensors, "module.trunk."))
        backbone = load_backbone(state["spec"], weights=None)  # the architecture
        backbone.preprocessing = rebuild_pipeline(backbone, state["preprocessing"])
        backbone.weights = state["weights_label"]
        task = task_from_json(state, getattr(estimator, "loss", None))
        n_outputs = task.n_outputs
        _check_head_shapes(estimator.head, n_outputs, _strip(tensors, "module.head."))
        head = make_head(estimator.head, estimator.dropout, backbone.num_features, n_outputs)
        module = TransferNet(backbone.net, head)
        module.load_state_dict(_strip(tensors, "module."), strict=True)
        device = fallback_device(estimator.device)
        module = to_device(module.eval(), device)
        estimator.net_ = build_net(estimator, module, device, task)
        estimator.net_.initialize()  # module_ is `module` itself
        release_training_state(estimator.net_)
        n_frozen = backbone.resolve_n_frozen(state["n_frozen_"])  # not searched again
        recipe = None  # files written before n_frozen="auto": the parameter, as given
        if "best_recipe_" in state:
            recipe = Recipe.from_json(state["best_recipe_"], state["recipe_results_"])
            if backbone.resolve_n_frozen(recipe.n_frozen) != n_frozen:
                raise ValueError(
                    f"best_recipe_ {recipe.best} does not match the {n_frozen} frozen groups "
                    "stored."
                )
        estimator._set_fitted(
            backbone, task, n_frozen, state["n_cached_stages_"], device, recipe=recipe
        )
        if "label_names" in state:
            estimator.label_names_ = label_names_from_json(state["label_names"], task)
        return estimator


# --- kinds of target ---------------------------------------------------------------------------
def task_to_json(task):
    """Describe a fitted task: its kind and what it learnt from ``y``.

    A single-label task is stored as files before multi-label and regression stored it
    (``classes_dtype`` and ``classes`` alone), so those files still load.
    """
    if isinstance(task, SingleLabel):
        kind, classes = _classes_to_json(task.classes_)
        return {"classes_dtype": kind, "classes": classes}
    if isinstance(task, MultiLabel):
        return {"task": "multi-label", "n_labels": int(task.n_labels_)}
    return {
        "task": "regression",
        "target_mean": [float(v) for v in task.mean_],
        "target_scale": [float(v) for v in task.scale_],
        "one_d": bool(task.one_d_),
    }


def task_from_json(state, loss):
    """Rebuild a fitted task from :func:`task_to_json`'s output (checked)."""
    kind = state.get("task", "single-label")
    if kind == "single-label":
        return SingleLabel.fitted(_classes_from_json(state["classes_dtype"], state["classes"]))
    if kind == "multi-label":
        return MultiLabel.fitted(_positive_int(state["n_labels"], "n_labels"))
    if kind == "regression":
        mean = np.asarray(state["target_mean"], dtype=np.float64)
        scale = np.asarray(state["target_scale"], dtype=np.float64)
        if mean.ndim != 1 or mean.shape != scale.shape or not len(mean) or not (scale > 0).all():
            raise ValueError("The file's target scaling is not one positive scale per target.")
        return Regression(loss).fitted(mean, scale, bool(state["one_d"]))
    raise ValueError(f"Unknown kind of target {kind!r} in the file.")


def label_names_to_json(estimator):
    """Return ``{"label_names": [...]}`` for a multi-label model that names its labels, else {}.

    The names are ``label_names_``, distinct strings, one per label: anything else is
    refused, as a file must not hold names that do not match its labels.
    """
    names = getattr(estimator, "label_names_", None)
    if names is None:
        return {}
    task = estimator._task
    if (
        not isinstance(task, MultiLabel)
        or len(names) != task.n_labels_
        or not all(isinstance(name, str) for name in names)
        or len(set(names)) != len(names)
    ):
        raise TypeError(
            "label_names_ names the labels of a multi-label classifier, distinct strings, one "
            f"per column of y; this {type(estimator).__name__} has {task.n_outputs} outputs and "
            f"label_names_={list(names)!r}."
        )
    return {"label_names": [str(name) for name in names]}


def label_names_from_json(values, task):
    """Return the stored label names (checked: distinct strings, one per label)."""
    if (
        not isinstance(task, MultiLabel)
        or not isinstance(values, list)
        or len(values) != task.n_labels_
        or not all(isinstance(name, str) for name in values)
        or len(set(values)) != len(values)
    ):
        raise ValueError(
            "The file's label_names are not distinct strings, one per label of a multi-label "
            "classifier."
        )
    return np.asarray(values, dtype=object)


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"The file's {name} must be a positive integer; got {value!r}.")
    return value


def _check_head_shapes(head, n_classes, head_tensors):
    """Check the head's size against its stored tensors before building it.

    A crafted file listing a million classes (or a huge hidden layer) must not make
    loading allocate gigabytes before ``load_state_dict`` would notice.
    """
    matrices = [t for t in head_tensors.values() if t.ndim == 2]
    if not matrices or matrices[-1].shape[0] != n_classes:
        raise ValueError(f"The stored head does not match the {n_classes} outputs the file lists.")
    if head is not None and matrices[0].shape[0] != head:
        raise ValueError(f"The stored head does not have head={head} hidden units.")


def _strip(tensors, prefix):
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _classes_to_json(classes):
    kind = classes.dtype.kind
    if kind in "OUS" and all(isinstance(c, str) for c in classes):
        return "str", [str(c) for c in classes]
    if kind in "iu":
        return "int", [int(c) for c in classes]
    if kind == "b":
        return "bool", [bool(c) for c in classes]
    if kind == "f":
        return "float", [float(c) for c in classes]
    raise TypeError(f"classes of dtype {classes.dtype} cannot be saved in the safe format.")


def _classes_from_json(kind, values):
    dtype = {"str": object, "int": np.int64, "bool": bool, "float": np.float64}[kind]
    return np.asarray(values, dtype=dtype)
