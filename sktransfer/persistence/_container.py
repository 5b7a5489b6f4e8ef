"""The file: a zip of a JSON description and safetensors weights, bounded and checksummed.

This module knows nothing of any estimator: :mod:`._dispatch` turns a model into a JSON
entry and named tensors, and back. Here is what every file shares: the JSON encoding of
values, the checksums, the format version, and the bounds on what a file may make us read
(and on the parameters that cost resources whatever the data).
"""

import contextlib
import hashlib
import json
import os
import struct
import zipfile

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load as tensors_from_bytes
from safetensors.torch import save as tensors_to_bytes

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


# --- JSON values -----------------------------------------------------------------------------
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


# --- (description, tensors) -> file ---------------------------------------------------------
def write(path, model, tensors):
    """Write the file: ``model`` is the JSON entry of the model, ``tensors`` its weights."""
    weights = tensors_to_bytes(tensors)
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


def _read_zip(path):
    """Return ``(description, weights bytes)`` of a model file, or raise FormatError."""
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


def read(path):
    """Return ``(description, tensors by name)`` of a model file, or raise FormatError."""
    given = os.fspath(path)
    meta, data = _read_zip(given)
    try:
        return meta, tensors_from_bytes(data)
    except (SafetensorError, ValueError, TypeError, RuntimeError) as exc:
        raise FormatError(f"{given} is not a valid sktransfer model file ({exc}).") from None
