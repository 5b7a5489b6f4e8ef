"""Which classes a file may hold, and the recursion that turns a model into entries and back.

:data:`CODECS` is the one table of classes the format saves and rebuilds, each with its
codec. ``save`` looks an estimator's exact type up in it; ``load`` looks the class *name*
a file gives up in it, and refuses any other: loading imports nothing a file names.

What every entry shares is done here, not by the codecs: JSON-encoding the parameters,
dropping training-only objects, naming the tensors, and on load checking the parameters
with the estimator's own constraints and the format's limits.
"""

import inspect
import os
import warnings

from safetensors import SafetensorError
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted

from .._extractor import PretrainedFeatureExtractor
from .._few_shot import FewShotTextClassifier
from .._fine_tuning import FineTunedClassifier, FineTunedRegressor
from .._zero_shot import ZeroShotTextClassifier
from ..exceptions import SourceNotAllowedError, WeightsUnavailableError
from ._codecs_sklearn import PipelineCodec, StepCodec
from ._codecs_text import FewShotCodec, ZeroShotCodec
from ._codecs_transfer import ExtractorCodec, FineTunedCodec
from ._container import (
    MAX_BATCH_SIZE,
    FormatError,
    decode_value,
    encode_value,
    max_num_workers,
    read,
    write,
)
from ._sources import AllowedSources

# Every class a file may hold: type -> codec. Nothing else is saved or loaded.
CODECS = {
    FineTunedClassifier: FineTunedCodec(),
    FineTunedRegressor: FineTunedCodec(),
    PretrainedFeatureExtractor: ExtractorCodec(),
    ZeroShotTextClassifier: ZeroShotCodec(),
    FewShotTextClassifier: FewShotCodec(),
    Pipeline: PipelineCodec(),
    StandardScaler: StepCodec(),
    Normalizer: StepCodec(),
    PCA: StepCodec(),
    LogisticRegression: StepCodec(),
    LinearSVC: StepCodec(),
}
_BY_NAME = {cls.__name__: cls for cls in CODECS}
_STEPS = [cls.__name__ for cls, codec in CODECS.items() if isinstance(codec, StepCodec)]


def codec_for(estimator):
    """Return the codec of ``estimator``'s exact type (a subclass is not its base)."""
    codec = CODECS.get(type(estimator))
    if codec is None:
        raise TypeError(
            "sktransfer.save takes a FineTunedClassifier, a FineTunedRegressor, a "
            "PretrainedFeatureExtractor, a ZeroShotTextClassifier, a FewShotTextClassifier, or a "
            f"Pipeline of these and of {', '.join(_STEPS)}; got "
            f"{type(estimator).__name__}. Use joblib.dump for other objects."
        )
    return codec


# --- estimator -> entry ----------------------------------------------------------------------
def save_model(estimator, path):
    """Write ``estimator`` to ``path`` (see :func:`sktransfer.save`)."""
    tensors = {}
    model = _encode(estimator, "", tensors)
    write(path, model, tensors)


def _encode(estimator, prefix, tensors_out):
    """Describe a fitted estimator as a JSON entry; its tensors go into ``tensors_out``."""
    codec = codec_for(estimator)
    check_is_fitted(estimator)
    children = {}

    def child(key, sub):
        key = str(key)
        children[key] = _encode(sub, f"{prefix}{key}.", tensors_out)
        return key

    params, state, tensors = codec.encode(estimator, child)
    name = type(estimator).__name__
    encoded, dropped = _encode_params(name, params, codec.training_only)
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


def _encode_params(name, params, training_only):
    """Return ``(params as JSON, training-only parameters stored as None)``."""
    encoded, dropped, bad = {}, [], []
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
    return encoded, dropped


# --- entry -> estimator ----------------------------------------------------------------------
def load_model(path, allow_sources=None):
    """Rebuild the model stored in ``path`` (see :func:`sktransfer.load`)."""
    given = os.fspath(path)
    sources = AllowedSources(allow_sources, given)
    try:
        meta, weights = read(given)
        claimed = set()
        estimator = _decode(meta.get("model"), "", weights, claimed, sources)
        if claimed != set(weights):
            raise FormatError(
                f"{given} is not a valid sktransfer model file (tensors that no part uses: "
                f"{sorted(set(weights) - claimed)[:5]})."
            )
        return estimator
    except FormatError as exc:
        raise ValueError(str(exc)) from None
    except (SourceNotAllowedError, WeightsUnavailableError):
        raise  # complete messages, of their own types
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


def _decode(entry, prefix, weights, claimed, sources):
    """Rebuild one estimator from its entry and the tensors named in it."""
    path = sources.path
    if not isinstance(entry, dict):
        raise FormatError(f"{path} is not a valid sktransfer model file (malformed entry).")
    name = entry.get("estimator")
    cls = _BY_NAME.get(name) if isinstance(name, str) else None
    if cls is None:
        raise FormatError(f"{path} holds an unknown estimator {name!r}.")
    codec = CODECS[cls]
    params = decode_value(entry["params"])
    if not isinstance(params, dict):
        raise FormatError(f"{path} is not a valid sktransfer model file (params of {name}).")
    unknown = set(params) - set(cls._get_param_names())
    if unknown:
        raise FormatError(f"{path} has unknown parameters {sorted(unknown)} for {name}.")
    params = _limit_params(cls, params, path)
    if codec.validate_before:  # before the codec builds anything (an image_size of 3000 px)
        _validate(cls(**params), path)

    tensors = _claim_tensors(entry["tensors"], prefix, weights, claimed, path)
    children = entry.get("children", {})
    if not isinstance(children, dict):
        raise FormatError(f"{path} is not a valid sktransfer model file (children of {name}).")

    def child(key):
        if key not in children:
            raise FormatError(f"{path} is not a valid sktransfer model file (no part {key!r}).")
        return _decode(children[key], f"{prefix}{key}.", weights, claimed, sources)

    state = decode_value(entry["state"])
    estimator = codec.decode(cls, params, state, tensors, child, sources)
    if type(estimator) is not cls:
        raise FormatError(f"{path}: the {name} codec returned a {type(estimator).__name__}.")
    _validate(estimator, path)
    return estimator


def _claim_tensors(names, prefix, weights, claimed, path):
    """Return the tensors an entry names, by their name within it; each may be named once."""
    tensors = {}
    for full in names:
        if not isinstance(full, str) or not full.startswith(prefix) or full in claimed:
            raise FormatError(f"{path} is not a valid sktransfer model file (tensor {full!r}).")
        if full not in weights:
            raise FormatError(f"{path} is not a valid sktransfer model file (no tensor {full!r}).")
        claimed.add(full)
        tensors[full[len(prefix) :]] = weights[full]
    return tensors


def _limit_params(cls, params, path):
    """Apply the format's limits to loaded parameters; return the parameters to use."""
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
    try:
        if hasattr(estimator, "_validate_params"):
            estimator._validate_params()
    except InvalidParameterError as exc:
        raise FormatError(f"{path} holds invalid parameters: {exc}") from None
