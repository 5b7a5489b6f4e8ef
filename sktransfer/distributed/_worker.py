"""What runs on a Dask worker: the cache of built extractors, and one partition's extraction.

Each worker process builds an extractor's network once, from its pickled parameters, and
keeps it in :data:`MODEL_CACHE` for every partition it runs. A partition runs with all the
worker's threads (one partition at a time) and with an allocator that keeps the memory of
one batch for the next.
"""

import contextlib
import ctypes
import ctypes.util
import functools
import multiprocessing
import os
import pickle
import threading
from collections import OrderedDict

import numpy as np
import torch

from .._config import config_context, environment_value
from .._modalities import ImagePipeline, decode_file
from ..backbones import load_backbone
from . import _parquet


class WorkerModelCache:
    """The extractors built in this worker process, by the digest of their parameters.

    ``loads`` counts the networks built; ``run_lock`` lets one partition at a time run the
    network, with all the worker's threads.
    """

    def __init__(self, maxsize=2):
        self.maxsize = maxsize
        self.loads = 0
        self._models = OrderedDict()
        self._lock = threading.Lock()
        self.run_lock = threading.Lock()

    def get(self, key, payload):
        """Return the extractor of ``key``, built from ``payload`` (pickled) if not kept."""
        with self._lock:  # tasks in several threads: build once
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            extractor = pickle.loads(payload)
            _check_decoding_processes(extractor.num_workers)
            _fit_for_images(extractor)
            self.loads += 1
            self._models[key] = extractor
            while len(self._models) > self.maxsize:
                self._models.popitem(last=False)
            return extractor

    def clear(self):
        """Forget every extractor kept."""
        with self._lock:
            self._models.clear()


MODEL_CACHE = WorkerModelCache()


def _fit_for_images(extractor):
    """Fit ``extractor`` on a blank image; refuse, by its modality, one that takes no images.

    fit learns nothing from X (it is only validated): a blank image will do, and no file of
    the partition is read twice.
    """
    try:
        extractor.fit(np.zeros((1, 32, 32, 3), dtype=np.uint8))
    except ValueError:
        try:  # the failure's cause: the modality, or something else that fit named
            pipeline = load_backbone(extractor.backbone, extractor.weights).preprocessing
        except Exception:  # fit's own error says more
            pipeline = None
        if pipeline is not None and not isinstance(pipeline, ImagePipeline):
            raise ValueError(
                "sktransfer.distributed.extract_features takes image paths only; this "
                f"extractor's backbone ({_name(extractor.backbone)}) takes "
                f"{pipeline.modality} inputs. Extract those features in one process with "
                f"extractor.fit_transform({pipeline.modality}s), or give an image backbone."
            ) from None
        raise


def _name(backbone):
    return repr(backbone) if isinstance(backbone, str) else type(backbone).__name__


def _check_decoding_processes(num_workers):
    """Refuse ``num_workers > 0`` in a daemonic worker process, which cannot have children."""
    if num_workers > 0 and multiprocessing.current_process().daemon:
        raise ValueError(
            f"The extractor's num_workers={num_workers} decodes images in child processes, "
            "which a Dask worker process started as a daemon (the default) cannot have. "
            "Start the workers with the Dask setting distributed.worker.daemon=False "
            "(DASK_DISTRIBUTED__WORKER__DAEMON=False), or use num_workers=0."
        )


def _worker_threads():
    """Return the number of threads of the Dask worker running this task (None outside one)."""
    try:
        from distributed import get_worker

        return get_worker().state.nthreads
    except (ImportError, ValueError):
        return None


@contextlib.contextmanager
def _threads(device):
    """Run torch on a CPU worker with the worker's threads, no more (restored afterwards)."""
    wanted = _worker_threads() if device.type == "cpu" else None
    previous = torch.get_num_threads()
    if wanted and wanted != previous:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if wanted and wanted != previous:
            torch.set_num_threads(previous)


# glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_MMAP_THRESHOLD = 128 * 1024  # its fixed value once a trim threshold is set


@contextlib.contextmanager
def allocator_keeps_memory():
    """Let the C allocator keep freed memory while a partition runs (restored afterwards).

    Dask starts its worker processes with ``MALLOC_TRIM_THRESHOLD_=65536``, so that they
    give freed memory back to the system at once. For a network's activations, allocated
    and freed again at every batch, that means fresh pages at every batch: the forward pass
    ran about 30% slower than in a plain process. While a partition runs, the allocator
    keeps what it frees (as it does by default); afterwards Dask's setting applies again.
    Only where that setting is in force, and only with glibc.
    """
    trim = environment_value("MALLOC_TRIM_THRESHOLD_")
    mallopt = _mallopt() if trim is not None else None
    if mallopt is None:
        yield
        return
    mallopt(_M_TRIM_THRESHOLD, 256 * 2**20)
    mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
    try:
        yield
    finally:
        mallopt(_M_MMAP_THRESHOLD, _GLIBC_MMAP_THRESHOLD)
        with contextlib.suppress(ValueError):
            mallopt(_M_TRIM_THRESHOLD, int(trim))


@functools.cache
def _mallopt():
    """Return glibc's ``mallopt``, or None elsewhere."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl's mallopt does nothing)
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return mallopt


def probe(payload, model_key):
    """Build (and keep) the extractor on a worker; return its number of features."""
    return MODEL_CACHE.get(model_key, payload).n_features_out_


def _unpack(part):
    """``(paths, read_paths, labels, start)`` of a partition, in memory or from Dask."""
    if isinstance(part, tuple):
        return part
    if hasattr(part, "columns"):  # a pandas DataFrame with path and label
        paths, labels = part["path"].to_numpy(dtype=object), part["label"].to_numpy()
    else:
        paths, labels = part.to_numpy(dtype=object), None
    paths = np.asarray([os.fspath(p) for p in paths], dtype=object)
    return paths, paths, labels, part.index


def extract_partition(payload, model_key, index, n_partitions, part, *, output, columns, errors):
    """Extract one partition; write it (returning counts) or return it as a DataFrame."""
    name = _parquet.part_name(index, n_partitions)
    if output is not None and os.path.exists(os.path.join(output, name)):
        # done by an earlier run, or by a copy of this task
        rows = _parquet.rows_in(os.path.join(output, name))
        return {"index": index, "n_images": rows, "n_errors": 0}
    paths, read_paths, labels, start = _unpack(part)
    extractor = MODEL_CACHE.get(model_key, payload)
    with MODEL_CACHE.run_lock, _threads(extractor.device_), allocator_keeps_memory():
        features, keep, failed = _features(extractor, read_paths, errors)
    table = _parquet.table(
        columns, paths[keep], None if labels is None else labels[keep], features
    )
    if output is None:
        frame = table.to_pandas()
        # the rows keep their place: the position in paths, or the Dask collection's index
        frame.index = start if hasattr(start, "dtype") else range(start, start + len(paths))
        return frame
    failed_paths = [(paths[i], message) for i, message in failed]
    _parquet.write_partition(output, name, table, failed_paths)
    return {"index": index, "n_images": len(features), "n_errors": len(failed)}


def _features(extractor, read_paths, errors):
    """Return ``(features, kept_mask, failed)``; ``failed`` lists ``(position, message)``."""
    keep = np.ones(len(read_paths), dtype=bool)
    with config_context(shared_cache_size=0):  # each row once: nothing to share
        return _transform_partition(extractor, read_paths, keep, errors)


def _transform_partition(extractor, read_paths, keep, errors):
    try:
        return extractor.transform(read_paths), keep, []
    except (ValueError, OSError):
        if errors == "raise":
            raise
        failed = _unreadable(read_paths)
        if not failed:  # not an image's fault
            raise
    keep[[i for i, _ in failed]] = False
    if not keep.any():
        return np.empty((0, extractor.n_features_out_), dtype=np.float32), keep, failed
    return extractor.transform(read_paths[keep]), keep, failed


def _unreadable(read_paths):
    """Decode each file alone; return ``(position, message)`` of those that fail."""
    failed = []
    for i, path in enumerate(read_paths):
        try:
            decode_file(path)
        except (ValueError, OSError) as exc:
            failed.append((i, str(exc)))
    return failed
