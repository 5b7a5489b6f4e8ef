"""FineTunedClassifier's own description for the safe format (see sktransfer.persistence).

The file holds the parameters, the backbone's architecture name and input pipeline, the
classes, and the tensors of ``net_.module_`` (trunk and head); a ``backbone`` parameter
that is a fitted model or a :class:`~sktransfer.Backbone` is stored with its weights
unless they rebuild from their name.
"""

import numpy as np

from .._core.device import fallback_device
from ..backbones import load_backbone
from ..backbones._backbone import check_stored_tensors
from ._network import TransferNet, make_head, to_device
from ._skorch import build_net, release_training_state


def to_safe_state(estimator):
    """Return ``(params, state, tensors)`` for a fitted FineTunedClassifier."""
    if callable(estimator.head):
        raise TypeError("A callable head cannot be saved in the safe format; use joblib.")
    value, described, param_tensors = estimator._backbone_param_to_safe()
    record = estimator._backbone
    if not isinstance(record.spec, str):
        raise TypeError(
            "The safe format rebuilds the network from its architecture's name; this "
            f"backbone is a {type(record.spec).__name__} object. Use joblib.dump instead."
        )
    kind, classes = _classes_to_json(estimator.classes_)
    state = {
        "backbone_param": described,
        "spec": record.spec,
        "weights_label": None if record.weights is None else str(record.weights),
        "preprocessing": record.preprocessing.describe(),
        "classes_dtype": kind,
        "classes": classes,
        "n_frozen_": estimator.n_frozen_,
        "n_cached_stages_": estimator.n_cached_stages_,
    }
    tensors = {f"backbone.{k}": v for k, v in param_tensors.items()}
    for key, tensor in estimator.net_.module_.state_dict().items():
        tensors[f"module.{key}"] = tensor.detach().cpu().contiguous()
    params = estimator.get_params(deep=False) | {"backbone": value}
    return params, state, tensors


def from_safe_state(cls, params, state, tensors):
    """Rebuild a fitted FineTunedClassifier from :func:`to_safe_state`'s output."""
    estimator = cls(**params)
    estimator.backbone = estimator._backbone_param_from_safe(
        params["backbone"], state["backbone_param"], _strip(tensors, "backbone.")
    )
    check_stored_tensors(state["spec"], _strip(tensors, "module.trunk."))
    backbone = load_backbone(state["spec"], weights=None)  # the architecture
    backbone.preprocessing = backbone.preprocessing.restore(state["preprocessing"])
    backbone.weights = state["weights_label"]
    classes = _classes_from_json(state["classes_dtype"], state["classes"])
    _check_head_shapes(estimator.head, len(classes), _strip(tensors, "module.head."))
    head = make_head(estimator.head, estimator.dropout, backbone.num_features, len(classes))
    module = TransferNet(backbone.net, head)
    module.load_state_dict(_strip(tensors, "module."), strict=True)
    device = fallback_device(estimator.device)
    module = to_device(module.eval(), device)
    estimator.net_ = build_net(estimator, module, device, len(classes))
    estimator.net_.initialize()  # module_ is `module` itself
    release_training_state(estimator.net_)
    n_frozen = backbone.resolve_n_frozen(state["n_frozen_"])
    estimator._set_fitted(backbone, classes, n_frozen, state["n_cached_stages_"], device)
    return estimator


def _check_head_shapes(head, n_classes, head_tensors):
    """Check the head's size against its stored tensors before building it.

    A crafted file listing a million classes (or a huge hidden layer) must not make
    loading allocate gigabytes before ``load_state_dict`` would notice.
    """
    matrices = [t for t in head_tensors.values() if t.ndim == 2]
    if not matrices or matrices[-1].shape[0] != n_classes:
        raise ValueError(f"The stored head does not match the {n_classes} classes the file lists.")
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
