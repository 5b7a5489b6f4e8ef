"""A safe file format for fitted models: weights as safetensors, the rest as JSON.

``save(estimator, path)`` writes one zip file holding ``sktransfer.json`` (format version,
estimator class, parameters, classes, backbone architecture and preprocessing, and the
SHA-256 of the weights) and ``weights.safetensors``. ``load(path)`` rebuilds the
architecture from its name and loads the tensors: no pickle runs, so a model file from
someone else cannot execute code. A file that is not in this format, or whose weights do
not match the recorded checksum, is refused.

Models whose backbone is an arbitrary Python module, or that use a callable head, cannot
be described without pickle: use :mod:`joblib` for those.
"""

import hashlib
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
# training-time parameters that hold Python objects and do not affect predictions
_DROPPED = ("callbacks",)

__all__ = ["load", "save"]


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


def _json_params(estimator, arch):
    params = estimator.get_params(deep=False)
    params["backbone"] = arch
    for name in _DROPPED:
        if name in params:
            params[name] = None
    if params.get("weights") is not None and not isinstance(params["weights"], str):
        params["weights"] = os.fspath(params["weights"])
    bad = [
        name
        for name, value in params.items()
        if not isinstance(value, (str, int, float, bool, type(None)))
    ]
    if bad:
        raise TypeError(
            f"Cannot save {type(estimator).__name__} in the safe format: parameter(s) "
            f"{', '.join(bad)} hold Python objects. Use joblib.dump instead."
        )
    return params


def _architecture(backbone):
    if not isinstance(backbone.spec, str):
        raise TypeError(
            "The safe format rebuilds the network from its name; this backbone is a "
            f"{type(backbone.spec).__name__} object. Use joblib.dump instead."
        )
    return backbone.spec


def save(estimator, path):
    """Save a fitted FineTunedClassifier or PretrainedFeatureExtractor safely.

    Parameters
    ----------
    estimator : FineTunedClassifier or PretrainedFeatureExtractor
        A fitted estimator.
    path : str or path
        The file to write (conventionally ``*.skt``). It is written to a temporary name
        first and renamed, so a failure leaves no partial file.

    See Also
    --------
    load : Read the file back.

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
    from sklearn.utils.validation import check_is_fitted

    from ._extractor import PretrainedFeatureExtractor
    from ._finetune import FineTunedClassifier

    if not isinstance(estimator, (FineTunedClassifier, PretrainedFeatureExtractor)):
        raise TypeError(
            "sktransfer.save takes a FineTunedClassifier or a PretrainedFeatureExtractor; "
            f"got {type(estimator).__name__}. Use joblib.dump for other objects."
        )
    check_is_fitted(estimator)
    arch = _architecture(estimator.backbone_)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sktransfer_version": __version__,
        "estimator": type(estimator).__name__,
        "params": _json_params(estimator, arch),
        "preprocessing": asdict(estimator.backbone_.preprocessing),
    }
    if isinstance(estimator, FineTunedClassifier):
        if callable(estimator.head):
            raise TypeError("A callable head cannot be saved in the safe format; use joblib.")
        meta["classes_dtype"], meta["classes"] = _classes_to_json(estimator.classes_)
        meta["n_frozen"] = estimator.n_frozen_
        state = estimator.net_.module_.state_dict()
    else:
        state = {} if estimator._reloadable() else estimator.backbone_.net.state_dict()
    from safetensors.torch import save as to_bytes

    weights = to_bytes({k: v.detach().cpu().contiguous() for k, v in state.items()})
    meta["weights_sha256"] = hashlib.sha256(weights).hexdigest()

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


def _read(path):
    refuse = f"{path} is not an sktransfer model file"
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if names != {_META, _WEIGHTS}:
                raise ValueError(f"{refuse} (unexpected contents: {sorted(names)}).")
            meta = json.loads(archive.read(_META))
            weights = archive.read(_WEIGHTS)
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{refuse} ({exc}).") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{refuse} (no sktransfer format marker).")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by a newer sktransfer (format {meta['format_version']}); "
            f"this one reads format {FORMAT_VERSION}: upgrade sktransfer."
        )
    if hashlib.sha256(weights).hexdigest() != meta.get("weights_sha256"):
        raise ValueError(
            f"{path} has been modified or damaged: its weights do not match the checksum "
            "recorded when it was saved. Refusing to load it."
        )
    return meta, weights


def load(path):
    """Load a model written by :func:`save`; no pickle runs.

    Parameters
    ----------
    path : str or path
        The file.

    Returns
    -------
    estimator : FineTunedClassifier or PretrainedFeatureExtractor
        Fitted, on ``device="auto"`` of this machine.

    Raises
    ------
    ValueError
        The file is not in the format, was written by a newer version, or was modified.
    """
    from safetensors.torch import load as from_bytes

    from ._extractor import PretrainedFeatureExtractor
    from ._finetune import FineTunedClassifier

    meta, weights = _read(path)
    classes = {"FineTunedClassifier": FineTunedClassifier}
    classes["PretrainedFeatureExtractor"] = PretrainedFeatureExtractor
    if meta.get("estimator") not in classes:
        raise ValueError(f"{path} holds an unknown estimator {meta.get('estimator')!r}.")
    cls = classes[meta["estimator"]]
    params = meta["params"]
    unknown = set(params) - set(cls().get_params())
    if unknown:
        raise ValueError(f"{path} has unknown parameters {sorted(unknown)}.")
    estimator = cls(**params)
    state = from_bytes(weights)
    preprocessing = Preprocessing(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in meta["preprocessing"].items()}
    )
    if cls is PretrainedFeatureExtractor:
        backbone = None
        if state:
            backbone = load_backbone(params["backbone"], weights=None)
            backbone.net.load_state_dict(state)
        estimator._restore(backbone, preprocessing)
        return estimator
    backbone = load_backbone(params["backbone"], weights=None)  # architecture only
    backbone.preprocessing = preprocessing
    estimator._restore(
        backbone,
        _classes_from_json(meta["classes_dtype"], meta["classes"]),
        meta["n_frozen"],
        state,
    )
    return estimator
