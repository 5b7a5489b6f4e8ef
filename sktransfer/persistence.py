"""A safe file format for fitted models: weights as safetensors, the rest as JSON.

``save(estimator, path)`` writes one zip file holding ``sktransfer.json`` (format version,
estimator class, parameters, classes, backbone architecture and preprocessing) and
``weights.safetensors``. ``load(path)`` rebuilds the architecture from its name and loads
the tensors: no pickle runs and no class named in the file is imported unless it is on a
short list of known estimators, so a model file from someone else cannot execute code.

What can be saved: a fitted :class:`~sktransfer.FineTunedClassifier`, a
:class:`~sktransfer.PretrainedFeatureExtractor`, or a :class:`~sklearn.pipeline.Pipeline`
of these and of scikit-learn's ``StandardScaler``, ``Normalizer``, ``PCA``,
``LogisticRegression`` and ``LinearSVC``. Models whose backbone is an arbitrary Python
module, or that use a callable head, cannot be described without pickle: use
:mod:`joblib` for those.

The JSON records the SHA-256 of the weights and of itself. A file that is not in this
format, was written by a newer version, or whose content does not match its checksums
(damaged, or edited by hand) is refused. The checksums detect damage and edits; they are
not a signature: someone who rewrites a file can rewrite them too, but can still not make
loading run code.
"""

import hashlib
import importlib
import inspect
import json
import os
import tempfile
import zipfile
from dataclasses import asdict

import numpy as np

from . import __version__
from .backbones import Preprocessing, load_backbone

FORMAT = "sktransfer"
FORMAT_VERSION = 1
_META, _WEIGHTS = "sktransfer.json", "weights.safetensors"
_MAX_META_BYTES = 64 * 1024**2
# Parameters used only while training that may hold Python objects: the file stores None
# (and lists the name under "dropped_params"), since the weights already hold their effect.
_TRAINING_ONLY = ("callbacks", "augment")
# scikit-learn steps a pipeline may hold: name -> module. Their fitted state is arrays and
# numbers; load imports nothing else.
_SKLEARN_STEPS = {
    "StandardScaler": "sklearn.preprocessing",
    "Normalizer": "sklearn.preprocessing",
    "PCA": "sklearn.decomposition",
    "LogisticRegression": "sklearn.linear_model",
    "LinearSVC": "sklearn.svm",
}

__all__ = ["load", "save"]


# --- JSON values ----------------------------------------------------------------------------
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


def _scalar(value):
    """Return ``value`` as a JSON scalar, or raise TypeError."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if type(value).__name__ == "device" and type(value).__module__ == "torch":
        value = str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(type(value).__name__)


def _json_params(estimator, overrides=None, exclude=()):
    """Return the parameters as JSON values; training-only objects become None."""
    params = {k: v for k, v in estimator.get_params(deep=False).items() if k not in exclude}
    params.update(overrides or {})
    dropped, bad = [], []
    for name, value in params.items():
        try:
            if isinstance(value, dict):  # class_weight: keys may be ints, which JSON can't
                params[name] = {"__items__": [[_scalar(k), _scalar(v)] for k, v in value.items()]}
            else:
                params[name] = _scalar(value)
        except TypeError:
            if name in _TRAINING_ONLY:
                params[name] = None
                dropped.append(name)
            else:
                bad.append(name)
    if bad:
        raise TypeError(
            f"Cannot save {type(estimator).__name__} in the safe format: parameter(s) "
            f"{', '.join(bad)} hold Python objects. Use joblib.dump instead."
        )
    return params, dropped


def _params_from_json(params):
    return {
        k: dict(map(tuple, v["__items__"])) if isinstance(v, dict) else v
        for k, v in params.items()
    }


def _digest(meta):
    body = {k: v for k, v in meta.items() if k != "metadata_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# --- estimators -> (JSON entry, tensors) -----------------------------------------------------
def _architecture(backbone):
    if not isinstance(backbone.spec, str):
        raise TypeError(
            "The safe format rebuilds the network from its name; this backbone is a "
            f"{type(backbone.spec).__name__} object. Use joblib.dump instead."
        )
    return backbone.spec


def _sklearn_class(name):
    if name not in _SKLEARN_STEPS:
        return None
    return getattr(importlib.import_module(_SKLEARN_STEPS[name]), name)


def _encode(estimator, prefix, tensors):
    """Describe a fitted estimator as a JSON entry; its arrays go into ``tensors``."""
    import torch
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    from ._extractor import PretrainedFeatureExtractor
    from ._finetune import FineTunedClassifier

    name = type(estimator).__name__
    if isinstance(estimator, Pipeline):
        check_is_fitted(estimator)
        params, _ = _json_params(estimator, exclude=("steps",))
        steps = []
        for i, (step_name, step) in enumerate(estimator.steps):
            if step is None or (isinstance(step, str) and step == "passthrough"):
                steps.append({"name": step_name, "estimator": "passthrough"})
            else:
                steps.append({"name": step_name, **_encode(step, f"{prefix}{i}.", tensors)})
        return {"estimator": "Pipeline", "params": params, "steps": steps}

    if isinstance(estimator, (FineTunedClassifier, PretrainedFeatureExtractor)):
        check_is_fitted(estimator)
        arch = _architecture(estimator.backbone_)
        params, dropped = _json_params(estimator, {"backbone": arch})
        entry = {
            "estimator": name,
            "params": params,
            "dropped_params": dropped,
            "preprocessing": asdict(estimator.backbone_.preprocessing),
        }
        if isinstance(estimator, FineTunedClassifier):
            if callable(estimator.head):
                raise TypeError("A callable head cannot be saved in the safe format; use joblib.")
            entry["classes_dtype"], entry["classes"] = _classes_to_json(estimator.classes_)
            entry["n_frozen"] = estimator.n_frozen_
            state = estimator.net_.module_.state_dict()
        else:
            state = {} if estimator._reloadable() else estimator.backbone_.net.state_dict()
        for key, value in state.items():
            tensors[prefix + key] = value.detach().cpu().contiguous()
        return entry

    cls = _sklearn_class(name)
    if cls is None or type(estimator) is not cls:
        raise TypeError(
            "sktransfer.save takes a FineTunedClassifier, a PretrainedFeatureExtractor, or a "
            f"Pipeline of these and of {', '.join(_SKLEARN_STEPS)}; got {name}. Use "
            "joblib.dump for other objects."
        )
    check_is_fitted(estimator)
    params, dropped = _json_params(estimator)
    fitted = {}
    for attr, value in vars(estimator).items():
        if attr in params:
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            tensors[prefix + attr] = torch.from_numpy(np.ascontiguousarray(value))
            fitted[attr] = {"tensor": prefix + attr}
        elif isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "OUS":
            fitted[attr] = {"array": _classes_to_json(value)}
        elif isinstance(value, np.generic):
            fitted[attr] = {"numpy": value.dtype.str, "value": value.item()}
        else:
            try:
                fitted[attr] = {"value": _scalar(value)}
            except TypeError:
                raise TypeError(
                    f"Cannot save {name} in the safe format: its attribute {attr} holds a "
                    f"{type(value).__name__}. Use joblib.dump instead."
                ) from None
    return {"estimator": name, "params": params, "fitted": fitted}


def save(estimator, path):
    """Save a fitted model in sktransfer's safe format (no pickle on load).

    Parameters
    ----------
    estimator : FineTunedClassifier, PretrainedFeatureExtractor or Pipeline
        A fitted estimator, or a fitted pipeline of these and of scikit-learn's
        ``StandardScaler``, ``Normalizer``, ``PCA``, ``LogisticRegression`` and
        ``LinearSVC``.
    path : str or path
        The file to write (conventionally ``*.skt``). It is written to a temporary name
        first and renamed, so a failure leaves no partial file.

    Raises
    ------
    TypeError
        The estimator, or one of its parameters (a callable head, a backbone given as a
        Python module), cannot be described without pickle: the message says to use
        :mod:`joblib`.

    See Also
    --------
    load : Read the file back.

    Notes
    -----
    A backbone given as a fitted estimator or a :class:`~sktransfer.Backbone` is stored
    as its architecture's name, with the fine-tuned weights. Training-only parameters that
    hold Python objects (``callbacks``, a callable ``augment``) are stored as None: the
    loaded model predicts the same, but refitting it would train without them.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> import sktransfer
    >>> X = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    >>> clf = sktransfer.FineTunedClassifier(image_size=32, max_epochs=1).fit(X, [0, 1] * 2)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.skt")
    >>> sktransfer.save(clf, path)
    >>> np.allclose(sktransfer.load(path).predict_proba(X), clf.predict_proba(X))
    True
    """
    tensors = {}
    entry = _encode(estimator, "", tensors)
    from safetensors.torch import save as to_bytes

    weights = to_bytes(tensors)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sktransfer_version": __version__,
        **entry,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    meta = json.loads(json.dumps(meta))  # as load will read it (tuples become lists)
    meta["metadata_sha256"] = _digest(meta)

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".partial")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(_META, json.dumps(meta, indent=2))
            archive.writestr(_WEIGHTS, weights)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# --- file -> estimator ----------------------------------------------------------------------
def _read(path):
    refuse = f"{path} is not an sktransfer model file"
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if names != {_META, _WEIGHTS}:
                raise ValueError(f"{refuse} (unexpected contents: {sorted(names)}).")
            if archive.getinfo(_META).file_size > _MAX_META_BYTES:
                raise ValueError(f"{refuse} ({_META} is too large).")
            meta = json.loads(archive.read(_META))
            weights = archive.read(_WEIGHTS)
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{refuse} ({exc}).") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{refuse} (no sktransfer format marker).")
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise ValueError(f"{refuse} (format_version {version!r}).")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by a newer sktransfer (format {version}); "
            f"this one reads format {FORMAT_VERSION}: upgrade sktransfer."
        )
    modified = (
        f"{path} has been modified or damaged: its {{}} does not match the checksum recorded "
        "when it was saved. Refusing to load it."
    )
    if meta.get("metadata_sha256") != _digest(meta):
        raise ValueError(modified.format(f"description ({_META})"))
    if hashlib.sha256(weights).hexdigest() != meta.get("weights_sha256"):
        raise ValueError(modified.format(f"weights file ({_WEIGHTS})"))
    return meta, weights


def _decode(entry, state, prefix, path):
    """Rebuild one estimator from its JSON entry and the tensors under ``prefix``."""
    from sklearn.pipeline import Pipeline

    from ._extractor import PretrainedFeatureExtractor
    from ._finetune import FineTunedClassifier

    name = entry["estimator"]
    own = {"FineTunedClassifier": FineTunedClassifier}
    own["PretrainedFeatureExtractor"] = PretrainedFeatureExtractor
    own["Pipeline"] = Pipeline
    cls = own.get(name) or _sklearn_class(name)
    if cls is None:
        raise ValueError(f"{path} holds an unknown estimator {name!r}.")
    params = _params_from_json(entry["params"])
    unknown = set(params) - set(inspect.signature(cls).parameters)
    if unknown:
        raise ValueError(f"{path} has unknown parameters {sorted(unknown)} for {name}.")

    if cls is Pipeline:
        steps = [
            (
                step["name"],
                "passthrough"
                if step["estimator"] == "passthrough"
                else _decode(step, state, f"{prefix}{i}.", path),
            )
            for i, step in enumerate(entry["steps"])
        ]
        return Pipeline(steps, **params)

    estimator = cls(**params)
    tensors = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if name not in own:  # a scikit-learn step: set its fitted attributes
        for attr, value in entry["fitted"].items():
            if "tensor" in value:
                value = state[value["tensor"]].numpy()
            elif "array" in value:
                value = _classes_from_json(*value["array"])
            elif "numpy" in value:
                value = np.dtype(value["numpy"]).type(value["value"])
            else:
                value = value["value"]
            setattr(estimator, attr, value)
        return estimator

    preprocessing = Preprocessing(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in entry["preprocessing"].items()}
    )
    if cls is PretrainedFeatureExtractor:
        backbone = None
        if tensors:
            backbone = load_backbone(params["backbone"], weights=None)
            backbone.net.load_state_dict(tensors)
        estimator._restore(backbone, preprocessing)
        return estimator
    backbone = load_backbone(params["backbone"], weights=None)  # architecture only
    backbone.preprocessing = preprocessing
    estimator._restore(
        backbone,
        _classes_from_json(entry["classes_dtype"], entry["classes"]),
        entry["n_frozen"],
        tensors,
    )
    return estimator


def load(path):
    """Load a model written by :func:`save`; no pickle runs.

    Parameters
    ----------
    path : str or path
        The file.

    Returns
    -------
    estimator : FineTunedClassifier, PretrainedFeatureExtractor or Pipeline
        Fitted, on ``device="auto"`` of this machine (the CPU when the saved device is
        not available here).

    Raises
    ------
    ValueError
        The file is not in the format, was written by a newer version, or was modified
        or damaged.

    See Also
    --------
    save : Write the file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as from_bytes

    meta, weights = _read(path)
    try:
        state = from_bytes(weights)
        return _decode(meta, state, "", path)
    except (KeyError, TypeError, AttributeError, RuntimeError, SafetensorError) as exc:
        raise ValueError(
            f"{path} is not a valid sktransfer model file ({type(exc).__name__}: {exc})."
        ) from None
