"""Activations shared by every fit of a process, and optionally across processes.

Cross-validation, a grid search and the final refit run the same frozen network over the
same inputs again and again: a ``Pipeline([extractor, LogisticRegression()])`` searched
over 4 values of ``C`` with 5 folds computes every image's features 21 times. This module
keeps each computed row (one per input) and hands it back the next time, whichever
estimator, clone or fold asks.

A row is identified by two strings:

- a **key** for the input, from its content (:func:`input_keys`): a file's real path, size,
  modification and change times and inode (rewriting the file changes the key); a hash of
  an array's bytes, shape and dtype; of a PIL image's mode, size, EXIF orientation,
  palette and pixels; of a text's UTF-8 bytes;
- a **namespace** for the computation (:func:`make_namespace`): what the estimator knows
  determines the output, i.e. the network, weights and structure (:func:`module_digest`:
  equal weights in another architecture compute other rows), the input pipeline
  (``repr(preprocessing)``), the stage or layer and pooling, the device.

:func:`cached_rows` returns the rows of a namespace for a list of keys, computing only the
missing ones; :func:`prefix_rows` does the same for the output of a network's leading
stages, continuing from the deepest stage whose output is already cached.

Where rows live:

- **in this process**: one store shared by every estimator and thread, bounded by bytes
  (the ``shared_cache_size`` setting of :func:`sktransfer.set_config`, one bound for the
  whole process; the least recently used rows go first). ``shared=False`` bypasses it;
- **on disk**, when a folder is given (``memory=``, as ``Pipeline(memory=...)`` takes
  one): one safetensors file per namespace and key under
  ``<memory>/sktransfer-activations-v1/``, each written whole or not at all
  (:func:`~sktransfer._core.files.atomic_path`), so processes computing the same rows at
  the same time leave readable files. A file that cannot be read is computed again and
  rewritten. Delete the folder to free the space.

Rows are copied in and out exactly: a row read back is bit for bit the row that was
computed. (A network's float output for an input can differ in the last bits with the
batch it was computed in; a cached row is the one computed first.)

A row is a tensor, or a dict of tensors for a stage whose output has several parts (a
text encoder's hidden states and attention mask); all rows of a namespace share one layout.
"""

import os
import threading
import warnings
from collections import OrderedDict

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save_file

from .._config import get_config
from .digests import content_digest, module_digest
from .files import atomic_path

__all__ = [
    "cache_info",
    "cached_rows",
    "clear_cache",
    "content_digest",
    "input_keys",
    "make_namespace",
    "module_digest",
    "prefix_rows",
    "shared_store_bytes",
]

FOLDER = "sktransfer-activations-v1"  # under the memory folder; the version names the layout
_TENSOR = "tensor"  # the file's tensor name for a row that is a plain tensor
_PART = "part."  # the prefix of the tensor names for a row that is a dict


# --- keys ------------------------------------------------------------------------------------
def input_keys(inputs):
    """Return the content key of every input, in order: ``inputs.content_keys()``.

    Parameters
    ----------
    inputs : checked inputs
        What an input pipeline's ``check`` returns (``ImageList``, ``TextList``, ...).

    Returns
    -------
    keys : list of str
    """
    return list(inputs.content_keys())


def make_namespace(*parts):
    """Name a computation from the parts that determine its output.

    Parameters
    ----------
    *parts : str or object with a stable ``repr``
        For instance the network's digest (:func:`module_digest`), the input
        pipeline (``repr(preprocessing)``), the stage or layer and pooling, and the device.
        The torch version is always added (another version may round differently).

    Returns
    -------
    namespace : str
        40 hex digits.

    Examples
    --------
    >>> make_namespace("abc123", "layer=None", "pooling='avg'") == make_namespace(
    ...     "abc123", "layer=None", "pooling='max'")
    False
    """
    texts = [part if isinstance(part, str) else repr(part) for part in parts]
    return content_digest("namespace", torch.__version__, *texts)


# --- rows: a tensor, or a dict of tensors, with one row per input ------------------------------
def _split(out, n, namespace):
    """Check a computed output and return ``(names, tensors)``; names is None for a tensor."""
    if torch.is_tensor(out):
        names, tensors = None, (out,)
    elif isinstance(out, dict) and out and all(torch.is_tensor(v) for v in out.values()):
        names = tuple(sorted(out))  # one order for the parts, as files give them back
        tensors = tuple(out[name] for name in names)
    else:
        raise TypeError(
            f"The rows computed for namespace {namespace[:12]} must be a tensor or a dict of "
            f"tensors; got {type(out).__name__}."
        )
    for tensor in tensors:
        if tensor.ndim == 0 or len(tensor) != n or tensor.device.type != "cpu":
            raise ValueError(
                f"The rows computed for namespace {namespace[:12]} must be CPU tensors with "
                f"{n} rows (one per missing input); got shape {tuple(tensor.shape)} on "
                f"{tensor.device}."
            )
    return names, tensors


def _layout(names, tensors):
    return names, tuple((tuple(t.shape[1:]), t.dtype) for t in tensors)


def _join(names, tensors):
    return tensors[0] if names is None else dict(zip(names, tensors, strict=True))


def _row_bytes(row):
    return sum(t.numel() * t.element_size() for t in row)


class _Store:
    """Rows of every namespace in this process, bounded by bytes, least recently used first."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rows = OrderedDict()  # (namespace, key) -> tuple of tensors
        self._layouts = {}  # namespace -> (names, ((shape, dtype), ...))
        self.nbytes = 0

    def _trim(self, max_bytes):
        while self.nbytes > max_bytes:
            _, row = self._rows.popitem(last=False)
            self.nbytes -= _row_bytes(row)

    def layout(self, namespace):
        with self._lock:
            return self._layouts.get(namespace)

    @property
    def max_bytes(self):
        """The store's one bound: the ``shared_cache_size`` setting, in bytes."""
        return int(get_config()["shared_cache_size"] * 2**20)

    def get(self, namespace, keys):
        """Return ``{key: row}`` for the keys held (marking them used)."""
        found = {}
        with self._lock:
            self._trim(self.max_bytes)
            for key in keys:
                row = self._rows.get((namespace, key))
                if row is not None:
                    self._rows.move_to_end((namespace, key))
                    found[key] = row
        return found

    def put(self, namespace, layout, rows):
        """Store ``{key: row}`` (copies the caller does not share) within the bound."""
        max_bytes = self.max_bytes
        with self._lock:
            known = self._layouts.setdefault(namespace, layout)
            if known != layout:
                raise _layout_error(namespace, known, layout)
            for key, row in rows.items():
                size = _row_bytes(row)
                if size > max_bytes:
                    continue
                old = self._rows.pop((namespace, key), None)
                if old is not None:
                    self.nbytes -= _row_bytes(old)
                self._rows[(namespace, key)] = row
                self.nbytes += size
                self._trim(max_bytes)

    def info(self):
        with self._lock:
            return {
                "rows": len(self._rows),
                "nbytes": self.nbytes,
                "namespaces": len({ns for ns, _ in self._rows}),
            }

    def clear(self):
        with self._lock:
            self._rows.clear()
            self._layouts.clear()
            self.nbytes = 0


_STORE = _Store()  # the shared store: one per process, sized by the settings


def _layout_error(namespace, known, got):
    return ValueError(
        f"Rows of namespace {namespace[:12]} had the layout {known}; now {got}. A namespace "
        "must name everything that determines the output (weights, input pipeline, stage)."
    )


def shared_store_bytes():
    """Return the bound of the in-process store in bytes (0: off), from the settings."""
    return _STORE.max_bytes


def cache_info():
    """Return ``{"rows", "nbytes", "namespaces"}`` of the in-process store."""
    return _STORE.info()


def clear_cache():
    """Empty the in-process store (a ``memory`` folder is left as it is)."""
    _STORE.clear()


# --- the memory folder -----------------------------------------------------------------------
class _Disk:
    """Rows on disk: ``<memory>/sktransfer-activations-v1/<namespace>/<kk>/<key>.safetensors``."""

    def __init__(self, root):
        self.root = root
        self.failed = None  # the first write error of the call, reported once

    @classmethod
    def open(cls, memory):
        if memory is None:
            return None
        location = getattr(memory, "location", memory)  # a joblib.Memory gives its folder
        if location is None:
            return None
        if not isinstance(location, (str, os.PathLike)):
            raise TypeError(
                "memory must be None, a folder path or a joblib.Memory; got "
                f"{type(memory).__name__}."
            )
        location = os.fspath(location)
        if os.path.exists(location) and not os.path.isdir(location):
            raise NotADirectoryError(f"memory={location!r} is a file, not a folder.")
        root = os.path.join(location, FOLDER)
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as exc:
            raise type(exc)(
                exc.errno,
                f"memory={location!r}: cannot create the activation cache folder ({exc.strerror})",
                root,
            ) from None
        return cls(root)

    def path(self, namespace, key):
        name = content_digest("file", key)
        return os.path.join(
            self.root, content_digest("folder", namespace), name[:2], name + ".safetensors"
        )

    def read(self, namespace, key):
        """Return ``(names, tensors)`` read back, or None when missing or unreadable."""
        try:
            with open(self.path(namespace, key), "rb") as f:
                tensors = load_tensors(f.read())
        except Exception:  # missing, truncated, corrupt, not safetensors: computed again
            return None
        if set(tensors) == {_TENSOR}:
            return None, (tensors[_TENSOR],)
        if tensors and all(name.startswith(_PART) for name in tensors):
            names = sorted(tensors)
            return tuple(n[len(_PART) :] for n in names), tuple(tensors[n] for n in names)
        return None

    def write(self, namespace, key, names, row):
        if names is None:
            tensors = {_TENSOR: row[0]}
        else:
            tensors = {_PART + name: t for name, t in zip(names, row, strict=True)}
        path = self.path(namespace, key)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with atomic_path(path) as tmp:
                save_file(tensors, tmp)
        except OSError as exc:
            self.failed = self.failed or exc

    def has(self, namespace, key):
        return os.path.exists(self.path(namespace, key))

    def report(self):
        if self.failed is not None:
            warnings.warn(
                f"Could not write activations to the memory folder {self.root} "
                f"({self.failed}); they are computed again in other processes.",
                UserWarning,
                stacklevel=3,
            )


# --- the two entry points --------------------------------------------------------------------
def cached_rows(namespace, keys, compute, *, shared=True, memory=None):
    """Return the rows of ``namespace`` for ``keys``, computing only the missing ones.

    Parameters
    ----------
    namespace : str
        Names the computation (:func:`make_namespace`).
    keys : sequence of str
        One content key per input (:func:`input_keys`).
    compute : callable
        ``compute(indices)`` gets the positions (an int64 ndarray, increasing) of the
        inputs whose rows are missing, each key once, and returns their rows in that
        order: a CPU tensor (float32 for features) with one row per index, or a dict of
        such tensors.
    shared : bool, default=True
        Use the in-process store, shared by all namespaces and bounded by the
        ``shared_cache_size`` setting (least recently used rows are evicted to stay under
        it). It is off for every caller when that setting is 0.
    memory : str, path-like, joblib.Memory or None, default=None
        A folder that keeps the rows across processes; None keeps none on disk.

    Returns
    -------
    rows : torch.Tensor or dict of torch.Tensor
        One row per key, in order, on the CPU; the caller's to keep (the store holds
        its own copies).

    Examples
    --------
    >>> texts = ["a cat", "two dogs", "a cat"]
    >>> keys = [content_digest(text) for text in texts]
    >>> def lengths(indices):
    ...     print("computing", indices.tolist())
    ...     return torch.tensor([[float(len(texts[i]))] for i in indices])
    >>> ns = make_namespace("doctest", "text length")
    >>> cached_rows(ns, keys, lengths).tolist()
    computing [0, 1]
    [[5.0], [8.0], [5.0]]
    >>> cached_rows(ns, keys[1:], lengths).tolist()
    [[8.0], [5.0]]
    """
    keys = list(keys)
    n = len(keys)
    shared = bool(shared) and _STORE.max_bytes > 0
    disk = _Disk.open(memory)
    if not shared and disk is None:
        return _join(*_split(compute(np.arange(n, dtype=np.int64)), n, namespace))
    try:
        return _cached_rows(namespace, keys, compute, shared, disk)
    finally:
        if disk is not None:
            disk.report()


def _cached_rows(namespace, keys, compute, shared, disk):
    layout = _STORE.layout(namespace)
    found = _STORE.get(namespace, keys) if shared else {}
    if disk is not None:
        for key in found:
            if not disk.has(namespace, key):  # kept in memory before the folder was given
                disk.write(namespace, key, layout[0], found[key])
        read = {}
        for key in dict.fromkeys(k for k in keys if k not in found):
            row = disk.read(namespace, key)
            row_layout = None if row is None else _layout(row[0], [t[None] for t in row[1]])
            if row is not None and layout in (None, row_layout):  # another layout: recompute
                layout, read[key] = row_layout, row[1]
        if read and shared:
            _STORE.put(namespace, layout, read)
        found.update(read)

    first = {}  # each missing key -> its first position
    for i, key in enumerate(keys):
        if key not in found and key not in first:
            first[key] = i
    if not first:
        return _join(layout[0], _assemble(keys, layout, found, None))
    indices = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    names, tensors = _split(compute(indices), len(indices), namespace)
    if layout is not None and _layout(names, tensors) != layout:
        raise _layout_error(namespace, layout, _layout(names, tensors))
    layout = _layout(names, tensors)
    copies = {
        key: tuple(t[j].clone(memory_format=torch.contiguous_format) for t in tensors)
        for j, key in enumerate(first)
    }
    if shared:
        _STORE.put(namespace, layout, copies)
    if disk is not None:
        for key, row in copies.items():
            disk.write(namespace, key, names, row)
    if len(first) == len(keys):  # every row computed, each key once: the output as it came
        return _join(names, tensors)
    position = dict(zip(first, range(len(first)), strict=True))
    return _join(names, _assemble(keys, layout, found, (position, tensors)))


def _assemble(keys, layout, found, computed):
    """One tensor per part with a row per key: stored rows, then computed ones, copied in."""
    out = tuple(torch.empty((len(keys), *shape), dtype=dtype) for shape, dtype in layout[1])
    stored = [i for i, key in enumerate(keys) if key in found]
    if stored:
        for part, tensor in enumerate(out):
            tensor[stored] = torch.stack([found[keys[i]][part] for i in stored])
    if computed is not None:
        position, tensors = computed
        rows = [i for i, key in enumerate(keys) if key in position]
        source = [position[keys[i]] for i in rows]
        for tensor, part in zip(out, tensors, strict=True):
            tensor[rows] = part[source]
    return out


def prefix_rows(stage_namespaces, keys, run_stages, *, shared=True, memory=None):
    """Return the output of a network's leading stages, from the deepest stage cached.

    A network is a sequence of stages (``trunk[0], trunk[1], ...``). The output of the
    first ``k`` stages can continue from the cached output of the first ``j < k``: only
    stages ``j..k-1`` run on it. Fine-tuning with ``n_frozen=-2`` after ``n_frozen=-3``
    thus runs one stage more instead of the whole frozen prefix again.

    Parameters
    ----------
    stage_namespaces : sequence of str or None
        Entry ``i`` names the output of the first ``i + 1`` stages (:func:`make_namespace`
        with the weights of those stages and the stage count), or is None for a stage
        whose output is not worth keeping (too large). The last entry names the output
        wanted and must not be None. Every named output that gets computed is stored.
    keys : sequence of str
        One content key per input (:func:`input_keys`).
    run_stages : callable
        ``run_stages(start, stop, rows, indices)`` runs stages ``start`` to ``stop - 1``
        (``trunk[start:stop]``) for the inputs at positions ``indices`` (an int64
        ndarray) and returns their output, one row per index, in order (as
        :func:`cached_rows`'s ``compute``). ``rows`` is the output of the first ``start``
        stages for those inputs; it is None when ``start`` is 0 (run from the inputs).
    shared : bool, default=True
        Use the in-process store (see :func:`cached_rows`).
    memory : str, path-like, joblib.Memory or None, default=None
        A folder that keeps the rows across processes.

    Returns
    -------
    rows : torch.Tensor or dict of torch.Tensor
        The output of the first ``len(stage_namespaces)`` stages, one row per key.

    Notes
    -----
    Each input starts from the deepest named stage whose output for it is cached, in
    memory or on disk; inputs cached nowhere run from the start, through every named
    stage (whose outputs are then stored too). So a search that asks for a deep prefix
    first leaves the shallower named outputs behind for the candidates that freeze less.
    """
    namespaces = list(stage_namespaces)
    if not namespaces or namespaces[-1] is None:
        raise ValueError("The last stage namespace names the output wanted: it cannot be None.")
    keys = list(keys)
    checkpoints = [i + 1 for i, ns in enumerate(namespaces) if ns is not None]  # stage counts
    if not (shared and _STORE.max_bytes) and memory is None:
        return run_stages(0, len(namespaces), None, np.arange(len(keys), dtype=np.int64))

    def rows(level, indices):
        """Output of the first ``checkpoints[level]`` stages for the inputs at ``indices``."""
        stop = checkpoints[level]

        def compute(missing):
            wanted = indices[missing]
            if level == 0:
                return run_stages(0, stop, None, wanted)
            start = checkpoints[level - 1]
            return run_stages(start, stop, rows(level - 1, wanted), wanted)

        subset = [keys[i] for i in indices]
        return cached_rows(namespaces[stop - 1], subset, compute, shared=shared, memory=memory)

    return rows(len(checkpoints) - 1, np.arange(len(keys), dtype=np.int64))
