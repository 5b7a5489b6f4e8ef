"""The file: a zip of a JSON description and safetensors weights, bounded and checksummed.

The container knows nothing of any estimator's internals. Each class it may rebuild has a
codec (:class:`Codec`) in :data:`REGISTRY`, by class name: the sktransfer estimators
describe themselves (``_to_safe_state`` / ``_from_safe_state``), scikit-learn's steps and
``Pipeline`` are described by :mod:`._sklearn`. The container owns what all of them share:
JSON encoding of parameter values, dropping training-only objects, tensor names, the
checksums, the format version, the bounds on what a file may make us read, and the
validation of loaded parameters.
"""

import contextlib
import hashlib
import importlib
import inspect
import json
import os
import struct
import warnings
import zipfile

from .. import __version__
from .._core.files import atomic_write

FORMAT = "sktransfer"
FORMAT_VERSION = 2
_META, _WEIGHTS = "sktransfer.json", "weights.safetensors"
# A description is kilobytes; weights are bounded by the file's own size and by this.
MAX_META_BYTES = 16 * 1024**2
MAX_WEIGHTS_BYTES = 64 * 1024**3
_CHUNK = 1024**2
# Parameters that cost resources whatever the data: larger saved values are lowered to
# these on load (they change neither the weights nor the predictions), with a warning.
MAX_BATCH_SIZE = 1024


def max_num_workers():
    """Return the CPUs this process may use: the most worker processes a loaded model gets."""
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class FormatError(ValueError):
    """A file refused with a complete message (turned into a plain ValueError by load)."""


# --- codecs ----------------------------------------------------------------------------------
class Codec:
    """How the container saves and rebuilds one class (subclasses override the methods).

    ``encode(estimator, child)`` returns ``(params, state, tensors)`` as described in
    :meth:`sktransfer.FineTunedClassifier._to_safe_state`; ``child(key, estimator)`` stores a
    nested estimator and returns ``key``. ``decode(cls, params, state, tensors, child)``
    rebuilds it; ``child(key)`` returns the nested estimator stored under ``key``.
    """

    name = None
    validate_before = True  # the parameters can be checked on ``cls(**params)`` first

    def load_class(self):
        raise NotImplementedError

    def training_only(self, cls):
        """Return the parameters stored as None when they hold Python objects."""
        return ()

    def encode(self, estimator, child):
        raise NotImplementedError

    def decode(self, cls, params, state, tensors, child):
        raise NotImplementedError


class OwnCodec(Codec):
    """An sktransfer estimator: it describes itself (``_to_safe_state``/``_from_safe_state``)."""

    def __init__(self, name):
        self.name = name

    def load_class(self):
        import sktransfer

        return getattr(sktransfer, self.name)

    def training_only(self, cls):
        return getattr(cls, "_safe_training_only", ())

    def encode(self, estimator, child):
        params, state, tensors = estimator._to_safe_state()
        if "memory" in params:  # a cache folder of this machine, as a Pipeline's memory
            params = params | {"memory": None}
        return params, state, tensors

    def decode(self, cls, params, state, tensors, child):
        if params.get("memory") is not None:
            raise ValueError(
                f"a {self.name}'s memory folder is not stored (it is None in a saved model)"
            )
        return cls._from_safe_state(params, state, tensors)


REGISTRY = {}


def register(codec):
    REGISTRY[codec.name] = codec
    return codec


for _name in ("FineTunedClassifier", "PretrainedFeatureExtractor"):
    register(OwnCodec(_name))


def _codec_for(estimator):
    from . import _sklearn  # registers Pipeline and the scikit-learn steps

    codec = REGISTRY.get(type(estimator).__name__)
    if codec is None or codec.load_class() is not type(estimator):
        raise TypeError(
            "sktransfer.save takes a FineTunedClassifier, a PretrainedFeatureExtractor, or a "
            f"Pipeline of these and of {', '.join(_sklearn.STEPS)}; got "
            f"{type(estimator).__name__}. Use joblib.dump for other objects."
        )
    return codec


# --- JSON values -----------------------------------------------------------------------------
def _scalar(value):
    """Return ``value`` as a JSON scalar, or raise TypeError."""
    import numpy as np

    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if type(value).__name__ == "device" and type(value).__module__ == "torch":
        value = str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(type(value).__name__)


def encode_value(value):
    """Return ``value`` as JSON: scalars, lists, dicts (any scalar keys); else TypeError.

    Dicts with keys other than strings (``class_weight={0: 1.0, 5: 2.0}``) become
    ``{"__items__": [[key, value], ...]}``, which :func:`decode_value` turns back.
    """
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and "__items__" not in value:
            return {k: encode_value(v) for k, v in value.items()}
        return {"__items__": [[_scalar(k), encode_value(v)] for k, v in value.items()]}
    return _scalar(value)


def decode_value(value):
    """Inverse of :func:`encode_value` on what ``json.loads`` returned."""
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__items__"}:
            items = value["__items__"]
            if not isinstance(items, list) or not all(
                isinstance(i, list) and len(i) == 2 and not isinstance(i[0], (list, dict))
                for i in items
            ):
                raise ValueError("malformed dict items")
            return {k: decode_value(v) for k, v in items}
        return {k: decode_value(v) for k, v in value.items()}
    return value


def _digest(meta):
    body = {k: v for k, v in meta.items() if k != "metadata_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# --- estimator -> entry ----------------------------------------------------------------------
def _encode(estimator, prefix, tensors_out):
    """Describe a fitted estimator as a JSON entry; its tensors go into ``tensors_out``."""
    from sklearn.utils.validation import check_is_fitted

    codec = _codec_for(estimator)
    check_is_fitted(estimator)
    children = {}

    def child(key, sub):
        key = str(key)
        children[key] = _encode(sub, f"{prefix}{key}.", tensors_out)
        return key

    params, state, tensors = codec.encode(estimator, child)
    name = type(estimator).__name__
    encoded, dropped, bad = {}, [], []
    training_only = codec.training_only(type(estimator))
    for key, value in params.items():
        try:
            encoded[key] = encode_value(value)
        except TypeError:
            if key in training_only:
                encoded[key] = None
                dropped.append(key)
            else:
                bad.append(key)
    if bad:
        raise TypeError(
            f"Cannot save {name} in the safe format: parameter(s) {', '.join(bad)} hold "
            "Python objects. Use joblib.dump instead."
        )
    try:
        state = encode_value(state)
    except TypeError as exc:
        raise TypeError(
            f"Cannot save {name} in the safe format: its state holds a {exc}. Use "
            "joblib.dump instead."
        ) from None
    names = []
    for key, tensor in tensors.items():
        full = prefix + key
        if full in tensors_out:
            raise TypeError(f"Cannot save {name}: tensor name {full!r} is used twice.")
        tensors_out[full] = tensor.detach().cpu().contiguous()
        names.append(full)
    entry = {
        "estimator": name,
        "params": encoded,
        "dropped_params": dropped,
        "state": state,
        "tensors": sorted(names),
    }
    if children:
        entry["children"] = children
    return entry


def write(estimator, path):
    """Write ``estimator`` to ``path`` (see :func:`sktransfer.save`)."""
    from safetensors.torch import save as to_bytes

    tensors = {}
    model = _encode(estimator, "", tensors)
    weights = to_bytes(tensors)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sktransfer_version": __version__,
        "model": model,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    meta = json.loads(json.dumps(meta))  # as load will read it
    meta["metadata_sha256"] = _digest(meta)
    with (
        atomic_write(path) as file,
        zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive,
    ):
        archive.writestr(_META, json.dumps(meta, indent=1))
        archive.writestr(_WEIGHTS, weights)


# --- file -> (description, weights) ----------------------------------------------------------
def _check_member(info, file_size, cap, path):
    """Refuse a member before reading it: compressed, encrypted, or larger than it may be."""
    what = f"{path} is not an sktransfer model file ({info.filename}"
    if info.flag_bits & 0x1:
        raise FormatError(f"{what} is encrypted).")
    if info.compress_type != zipfile.ZIP_STORED:
        raise FormatError(
            f"{what} is compressed; sktransfer writes its members uncompressed and reads "
            "nothing else)."
        )
    if info.file_size != info.compress_size or info.file_size > file_size:
        raise FormatError(
            f"{what} declares {info.file_size} bytes; the whole file has {file_size})."
        )
    if info.file_size > cap:
        raise FormatError(f"{what} declares {info.file_size} bytes, above the limit of {cap}).")


def _read_member(archive, info, path):
    """Read a member in chunks, hashing as it comes; return ``(bytes, sha256 hex)``."""
    digest = hashlib.sha256()
    data = bytearray(info.file_size)
    view, filled = memoryview(data), 0
    with archive.open(info) as member:
        while chunk := member.read(_CHUNK):
            if filled + len(chunk) > info.file_size:
                raise FormatError(f"{path} is damaged ({info.filename} is longer than declared).")
            view[filled : filled + len(chunk)] = chunk
            digest.update(chunk)
            filled += len(chunk)
    view.release()
    if filled != info.file_size:
        raise FormatError(f"{path} is damaged ({info.filename} is truncated).")
    return bytes(data), digest.hexdigest()


def _check_header(meta, path):
    refuse = f"{path} is not an sktransfer model file"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FormatError(f"{refuse} (no sktransfer format marker).")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError(f"{refuse} (format_version {version!r}).")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{path} was written by a newer sktransfer (format {version}); "
            f"this one reads format {FORMAT_VERSION}: upgrade sktransfer."
        )
    if version < FORMAT_VERSION:
        written = meta.get("sktransfer_version")
        raise FormatError(
            f"{path} is in format {version}, written by an older sktransfer "
            f"({written if isinstance(written, str) else 'unknown version'}); this one reads "
            f"format {FORMAT_VERSION}. Load it with the sktransfer that wrote it and save it "
            "again with this one, or refit the model."
        )


def read(path):
    """Return ``(description, weights bytes)`` of a model file, or raise ValueError."""
    given = os.fspath(path)
    refuse = f"{given} is not an sktransfer model file"
    modified = (
        f"{given} has been modified or damaged: its {{}} does not match the checksum recorded "
        "when it was saved. Refusing to load it."
    )
    with open(given, "rb") as file:  # a missing file stays a FileNotFoundError
        file_size = os.fstat(file.fileno()).st_size
        try:
            with zipfile.ZipFile(file) as archive:
                infos = archive.infolist()
                names = sorted(info.filename for info in infos)
                if names != sorted([_META, _WEIGHTS]):
                    raise FormatError(f"{refuse} (unexpected contents: {names}).")
                by_name = {info.filename: info for info in infos}
                _check_member(by_name[_META], file_size, MAX_META_BYTES, given)
                _check_member(by_name[_WEIGHTS], file_size, MAX_WEIGHTS_BYTES, given)
                text, _ = _read_member(archive, by_name[_META], given)
                meta = json.loads(text)
                _check_header(meta, given)
                if meta.get("metadata_sha256") != _digest(meta):
                    raise FormatError(modified.format(f"description ({_META})"))
                weights, sha = _read_member(archive, by_name[_WEIGHTS], given)
                if sha != meta.get("weights_sha256"):
                    raise FormatError(modified.format(f"weights file ({_WEIGHTS})"))
        except FormatError:
            raise
        except zipfile.BadZipFile as exc:
            if "CRC" in str(exc):
                raise FormatError(f"{given} is damaged ({exc}).") from None
            raise FormatError(f"{refuse} ({exc}).") from None
        except (
            zipfile.LargeZipFile,
            OSError,
            EOFError,
            NotImplementedError,
            RuntimeError,  # an encrypted member; JSON nested too deeply (RecursionError)
            ValueError,  # JSON or UTF-8 errors; a negative seek
            struct.error,
            OverflowError,
        ) as exc:
            raise FormatError(f"{refuse} ({type(exc).__name__}: {exc}).") from None
    return meta, weights


# --- entry -> estimator ----------------------------------------------------------------------
def _limit_params(cls, params, path):
    """Apply the container's limits to loaded parameters; return the parameters to use."""
    name = cls.__name__
    params = dict(params)
    for key, limit, why in (
        ("num_workers", max_num_workers(), "the CPUs this process may use"),
        ("batch_size", MAX_BATCH_SIZE, "sktransfer's limit for a loaded model"),
    ):
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            _warn(
                f"{path}: {name} was saved with {key}={value}; loaded with {key}={limit} "
                f"({why}). Set it with set_params to change it."
            )
            params[key] = limit
    return params


def _warn(message):
    """Warn at the caller's line, outside this package (however deep the model is)."""
    here, level = os.path.dirname(os.path.abspath(__file__)), 2
    frame = inspect.currentframe().f_back
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(here):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def _validate(estimator, path):
    """Check parameters with the estimator's own constraints (``_validate_params``)."""
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        if hasattr(estimator, "_validate_params"):
            estimator._validate_params()
    except InvalidParameterError as exc:
        raise FormatError(f"{path} holds invalid parameters: {exc}") from None


def _decode(entry, prefix, weights, claimed, path):
    """Rebuild one estimator from its entry and the tensors named in it."""
    from . import _sklearn  # noqa: F401  (registers Pipeline and the scikit-learn steps)

    if not isinstance(entry, dict):
        raise FormatError(f"{path} is not a valid sktransfer model file (malformed entry).")
    name = entry.get("estimator")
    codec = REGISTRY.get(name) if isinstance(name, str) else None
    if codec is None:
        raise FormatError(f"{path} holds an unknown estimator {name!r}.")
    cls = codec.load_class()
    params = decode_value(entry["params"])
    if not isinstance(params, dict):
        raise FormatError(f"{path} is not a valid sktransfer model file (params of {name}).")
    unknown = set(params) - set(cls._get_param_names())
    if unknown:
        raise FormatError(f"{path} has unknown parameters {sorted(unknown)} for {name}.")
    params = _limit_params(cls, params, path)
    if codec.validate_before:  # before the codec builds anything (an image_size of 3000 px)
        _validate(cls(**params), path)

    tensors = {}
    for full in entry["tensors"]:
        if not isinstance(full, str) or not full.startswith(prefix) or full in claimed:
            raise FormatError(f"{path} is not a valid sktransfer model file (tensor {full!r}).")
        if full not in weights:
            raise FormatError(f"{path} is not a valid sktransfer model file (no tensor {full!r}).")
        claimed.add(full)
        tensors[full[len(prefix) :]] = weights[full]
    children = entry.get("children", {})
    if not isinstance(children, dict):
        raise FormatError(f"{path} is not a valid sktransfer model file (children of {name}).")

    def child(key):
        if key not in children:
            raise FormatError(f"{path} is not a valid sktransfer model file (no part {key!r}).")
        return _decode(children[key], f"{prefix}{key}.", weights, claimed, path)

    estimator = codec.decode(cls, params, decode_value(entry["state"]), tensors, child)
    if type(estimator) is not cls:
        raise FormatError(f"{path}: the {name} codec returned a {type(estimator).__name__}.")
    _validate(estimator, path)
    return estimator


def load_model(path):
    """Rebuild the model stored in ``path`` (see :func:`sktransfer.load`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load as from_bytes

    from ..exceptions import WeightsUnavailableError

    given = os.fspath(path)
    try:
        meta, data = read(given)
        try:
            weights = from_bytes(data)
        except (SafetensorError, ValueError, TypeError, RuntimeError) as exc:
            raise FormatError(f"{given} is not a valid sktransfer model file ({exc}).") from None
        del data
        claimed = set()
        estimator = _decode(meta.get("model"), "", weights, claimed, given)
        if claimed != set(weights):
            raise FormatError(
                f"{given} is not a valid sktransfer model file (tensors that no part uses: "
                f"{sorted(set(weights) - claimed)[:5]})."
            )
        return estimator
    except FormatError as exc:
        raise ValueError(str(exc)) from None
    except WeightsUnavailableError:
        raise
    except (
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RuntimeError,
        ValueError,
        SafetensorError,
    ) as exc:
        raise ValueError(
            f"{given} is not a valid sktransfer model file ({type(exc).__name__}: {exc})."
        ) from None


def import_class(module, name):
    """Import ``name`` from ``module`` (only ever called with names from a fixed list)."""
    return getattr(importlib.import_module(module), name)
