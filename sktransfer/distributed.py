"""Feature extraction on a Dask cluster: many images, many machines, one Parquet dataset.

:func:`extract_features` splits a list of image paths into partitions and extracts each
partition on a worker of a :class:`dask.distributed.Client`. The extractor travels by its
parameters (kilobytes for a named backbone); each worker process builds the network once and
reuses it for every partition it runs. The result is a folder of Parquet files, one per
partition, written whole or not at all, so that a job that stops (a killed worker, Ctrl-C, a
corrupt image) resumes where it stopped; or, without a folder, a Dask DataFrame.

Dask is an optional dependency (``pip install 'sktransfer[dask]'``); it is imported when a
function of this module runs, not when the module is imported.

Searches need no helper: ``GridSearchCV(...).fit`` under
``joblib.parallel_config(backend="dask")`` runs its fits on the cluster's workers (see the
"Scaling out" page of the documentation).
"""

import contextlib
import functools
import glob
import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from numbers import Integral

from ._config import config_context, environment_value

__all__ = ["ExtractionSummary", "extract_features"]

INSTALL_HINT = "pip install 'sktransfer[dask]'"
MANIFEST = "_sktransfer.json"  # leading "_": Parquet readers skip it when reading the folder
ERRORS_FOLDER = "_errors"
_FORMAT = "sktransfer-features"
_SCATTER_BYTES = 1 << 20  # a larger extractor (weights of its own) is sent to each worker once


def _require_dask():
    """Import dask.distributed, or fail with the install hint."""
    try:
        import dask.dataframe  # noqa: F401
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"sktransfer.distributed needs Dask and its distributed scheduler: {INSTALL_HINT}"
        ) from exc
    return distributed


@dataclass(frozen=True)
class ExtractionSummary:
    """What :func:`extract_features` wrote into its output folder.

    Attributes
    ----------
    output : str
        The folder (absolute path): ``part-*.parquet`` files, one per partition, with the
        columns ``path``, ``label`` (when labels were given) and ``f0`` ... ``fN``; read it
        with :func:`pandas.read_parquet` or :func:`dask.dataframe.read_parquet`.
    n_images : int
        Rows in the dataset (images whose features it holds).
    n_features : int
        Feature columns.
    n_partitions : int
        Partition files.
    n_skipped : int
        Partitions found complete from an earlier run, and not extracted again.
    errors : pandas.DataFrame
        ``path`` and ``error`` of each image that could not be read (with
        ``errors="record"``; also stored under ``_errors/`` in the folder). Empty when none.
    """

    output: str
    n_images: int
    n_features: int
    n_partitions: int
    n_skipped: int
    errors: object = field(repr=False)

    def __str__(self):
        """One line: what was written where."""
        errors = f", {len(self.errors)} unreadable images" if len(self.errors) else ""
        return (
            f"{self.n_images} images x {self.n_features} features -> {self.output} "
            f"({self.n_partitions} Parquet partitions, {self.n_skipped} already there{errors})"
        )


def extract_features(
    paths,
    extractor,
    *,
    client,
    output=None,
    labels=None,
    partition_size=256,
    errors="raise",
    progress=False,
):
    """Extract the features of many images on a Dask cluster.

    The paths are cut into partitions of ``partition_size`` images; each partition is
    extracted by one task on one worker. Every worker process builds the extractor's network
    once, from its parameters, and keeps it for the partitions it runs (the network is
    never sent over the network). On a CPU the partition runs with as many torch threads as
    the worker has threads, one partition at a time per worker; on a GPU worker
    (``device="auto"``) it runs on the worker's GPU, and there should be one worker per GPU.

    With ``output``, each partition is written to its own Parquet file as soon as it is done,
    under its final name only once complete. Running the same call again skips the
    partitions already written, so a job that stopped resumes where it stopped; a worker that
    dies mid-job has its partitions run again elsewhere by Dask. The folder never holds a
    partial partition nor a row twice.

    Parameters
    ----------
    paths : list, array or pandas Series of str, or a Dask Series
        Image file paths, as the workers see them (on storage every worker reads: a shared
        file system or the same files on each machine). Relative paths are taken from the
        client's working folder, and stored as given. A Dask Series (or a Dask DataFrame
        with a ``path`` and an optional ``label`` column) is extracted partition by
        partition as it is partitioned, and its paths are used as they are.
    extractor : PretrainedFeatureExtractor
        Fitted or not: only its parameters are used (fitting learns nothing from images),
        so both give the same features.
    client : dask.distributed.Client
        The cluster to run on.
    output : str or path, default=None
        A folder to write the Parquet dataset into (created if missing; its parent must
        exist). Every worker must be able to write to it. None returns a Dask DataFrame
        instead.
    labels : array-like of shape (n_images,), default=None
        Written as a ``label`` column next to ``path``.
    partition_size : int, default=256
        Images per partition (per task and per file). Larger partitions lower the
        per-task overhead; smaller ones spread a short job over more workers and lose less
        work when a worker dies. Ignored for a Dask collection, whose partitions are kept.
    errors : {"raise", "record"}, default="raise"
        What an unreadable image (missing, corrupt, too large) does: ``"raise"`` stops the
        job with an error that names the file (the partitions already written stay, for a
        re-run to skip); ``"record"`` leaves it out of the features and lists it, with the
        reason, in the ``_errors`` folder of ``output`` and in the returned summary. Needs
        ``output``.
    progress : bool, default=False
        Show a progress bar of the images done. The cluster's dashboard shows the tasks
        too (``sktransfer-extract``).

    Returns
    -------
    summary : ExtractionSummary
        With ``output``: what the folder holds, and the unreadable images.
    features : dask.dataframe.DataFrame
        Without ``output``: the columns ``path``, ``label`` (when given) and ``f0`` ...
        ``fN``, one row per image in the order of ``paths``. The extraction starts at once;
        the frame is backed by results held in the workers' memory (like ``persist``), and
        ``distributed.progress(features)`` follows it.

    Raises
    ------
    ValueError
        Bad arguments; an unreadable image with ``errors="raise"`` (named); an output folder
        that holds other files, or another job's partitions (a different extractor, other
        paths or another ``partition_size``).
    FileNotFoundError
        A missing image with ``errors="raise"``; a missing parent folder of ``output``.
    ImportError
        Dask is not installed.

    See Also
    --------
    sktransfer.PretrainedFeatureExtractor : The same features, in this process.

    Notes
    -----
    The files are named ``part-00000.parquet``, ``part-00001.parquet``... in the order of
    the paths; a file ``_sktransfer.json`` records which job the folder holds and whether it
    is complete. Parquet readers skip names that start with ``_`` or ``.``, so
    ``pandas.read_parquet(output)`` reads the features only, in order.

    Examples
    --------
    >>> from dask.distributed import Client  # doctest: +SKIP
    >>> from sktransfer import PretrainedFeatureExtractor, load_image_folder
    >>> from sktransfer.distributed import extract_features
    >>> client = Client("tcp://scheduler:8786")  # doctest: +SKIP
    >>> paths, labels = load_image_folder("/shared/photos")  # doctest: +SKIP
    >>> extract_features(  # doctest: +SKIP
    ...     paths, PretrainedFeatureExtractor(), client=client, labels=labels,
    ...     output="/shared/features",
    ... )
    """
    distributed = _require_dask()
    job = _plan(paths, extractor, client, labels, partition_size, errors, output, distributed)
    if output is not None:
        _check_folder(job)
    payload = job.payload
    if len(payload) > _SCATTER_BYTES:  # weights of its own: once to each worker, not per task
        payload = client.scatter(payload, broadcast=True, hash=False)
    # One worker builds the network first: a backbone it cannot load fails here, once.
    n_features = client.submit(
        _probe, payload, job.model_key, key=f"sktransfer-probe-{_run_id()}", pure=False
    ).result()
    if output is None:
        import dask.dataframe as dd

        futures = _submit(client, job, range(job.n_partitions), payload, n_features)
        if progress:
            _follow(distributed, futures, job, set(), client)
        meta = _empty_frame(n_features, job.label_type)
        return dd.from_delayed(futures, meta=meta, verify_meta=False)
    done = _open_folder(job, n_features)
    todo = [k for k in range(job.n_partitions) if k not in done]
    futures = _submit(client, job, todo, payload, n_features)
    counts = _follow(distributed, futures, job, done, client, show=progress)
    return _finish(job, n_features, done, counts)


# --- the driver's side -------------------------------------------------------------------
@dataclass
class _Job:
    payload: bytes  # the extractor's parameters, pickled
    model_key: str  # the workers' cache key (a digest of the payload)
    token: str  # the job: extractor, inputs and partitioning
    parts: list  # in-memory: (paths, read_paths, labels, start); Dask: delayed partitions
    n_partitions: int
    n_images: int | None  # None for a Dask collection (not known before the run)
    label_type: object  # a pyarrow type, or None without labels
    partition_size: int | None
    output: str | None
    errors: str


def _plan(paths, extractor, client, labels, partition_size, errors, output, distributed):
    """Check every argument before any work; return the job."""
    import cloudpickle
    from sklearn.base import clone

    from ._extractor import PretrainedFeatureExtractor

    if not isinstance(extractor, PretrainedFeatureExtractor):
        raise TypeError(
            f"extractor must be a PretrainedFeatureExtractor; got {type(extractor).__name__}."
        )
    if not isinstance(client, distributed.Client):
        raise TypeError(
            f"client must be a dask.distributed.Client; got {type(client).__name__}. "
            "Connect with Client('tcp://scheduler:8786'), or Client() for a local cluster."
        )
    if errors not in ("raise", "record"):
        raise ValueError(f"errors must be 'raise' or 'record'; got {errors!r}.")
    if errors == "record" and output is None:
        raise ValueError(
            "errors='record' lists the unreadable images in the output folder: give output "
            "(or use errors='raise')."
        )
    if not isinstance(partition_size, Integral) or isinstance(partition_size, bool):
        raise TypeError(f"partition_size must be an integer; got {partition_size!r}.")
    if partition_size < 1:
        raise ValueError(f"partition_size must be at least 1; got {partition_size}.")
    shipped = _for_workers(clone(extractor))
    shipped._validate_params()  # a bad parameter fails here, not on every worker
    payload = cloudpickle.dumps(shipped)
    model_key = hashlib.sha256(payload).hexdigest()
    output = None if output is None else os.path.abspath(os.fspath(output))

    import dask

    if dask.is_dask_collection(paths):
        parts, label_type, inputs = _dask_parts(paths, labels)
        n_images, partition_size = None, None
    else:
        parts, label_type, inputs = _memory_parts(paths, labels, int(partition_size))
        n_images = sum(len(p[0]) for p in parts)
    features_key = model_key
    if shipped.get_params(deep=False).get("memory") is not None:
        # where computed features are kept changes no feature: not another job
        unkept = cloudpickle.dumps(clone(shipped).set_params(memory=None))
        features_key = hashlib.sha256(unkept).hexdigest()
    token = hashlib.sha256(f"{features_key} {inputs} {partition_size}".encode()).hexdigest()
    return _Job(
        payload=payload,
        model_key=model_key,
        token=token,
        parts=parts,
        n_partitions=len(parts),
        n_images=n_images,
        label_type=label_type,
        partition_size=partition_size,
        output=output,
        errors=errors,
    )


def _for_workers(extractor):
    """Set the extractor up as workers run it: silent, keeping no features for later.

    Each image is extracted once, so the in-process feature cache would only hold memory;
    the progress shown is the job's, not each partition's. These parameters change no
    feature, and so do not make another job.
    """
    import inspect

    params = extractor.get_params(deep=False)
    defaults = inspect.signature(type(extractor)).parameters
    quiet = {"verbose": 0}
    if "progress" in params:  # the deprecated alias of verbose, at its default
        quiet["progress"] = defaults["progress"].default
    return extractor.set_params(**{k: v for k, v in quiet.items() if k in params})


def _memory_parts(paths, labels, partition_size):
    import joblib
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(paths, pd.DataFrame):
        if "path" not in paths.columns:
            raise ValueError(
                f"A DataFrame of images needs a 'path' column; got {list(paths.columns)}."
            )
        if labels is None and "label" in paths.columns:
            labels = paths["label"]
        paths = paths["path"]
    if isinstance(paths, (str, os.PathLike)):
        raise TypeError("paths must be a list of image paths; wrap a single path in a list.")
    try:
        given = list(paths)
    except TypeError:
        raise TypeError(
            f"paths must be a list of image paths; got {type(paths).__name__}."
        ) from None
    if not given:
        raise ValueError("No images: paths is empty.")
    for i, p in enumerate(given):
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"paths[{i}] is not a file path: {p!r} ({type(p).__name__}).")
    given = np.asarray([os.fspath(p) for p in given], dtype=object)
    label_type = None
    if labels is not None:
        labels = np.asarray(labels.to_numpy() if hasattr(labels, "to_numpy") else labels)
        if labels.ndim != 1 or len(labels) != len(given):
            raise ValueError(
                f"labels must hold one label per path: {len(given)} paths, labels of shape "
                f"{labels.shape}."
            )
        label_type = pa.array(labels).type
    read = np.asarray([os.path.abspath(p) for p in given], dtype=object)  # workers' cwd differs
    parts = []
    for start in range(0, len(given), partition_size):
        stop = start + partition_size
        part_labels = None if labels is None else labels[start:stop]
        parts.append((given[start:stop], read[start:stop], part_labels, start))
    inputs = joblib.hash((given, labels))
    return parts, label_type, inputs


def _dask_parts(collection, labels):
    import dask.dataframe as dd
    import pyarrow as pa
    from dask.base import tokenize

    if labels is not None:
        raise ValueError(
            "With a Dask collection of paths, give the labels as its 'label' column "
            "(a Dask DataFrame with 'path' and 'label'), not as labels."
        )
    label_type = None
    if isinstance(collection, dd.DataFrame):
        if "path" not in collection.columns:
            raise ValueError(
                "A Dask DataFrame of images needs a 'path' column; got "
                f"{list(collection.columns)}."
            )
        if "label" in collection.columns:
            dtype = collection["label"].dtype
            label_type = pa.string() if dtype.kind in "OSU" else pa.from_numpy_dtype(dtype)
            collection = collection[["path", "label"]]
        else:
            collection = collection["path"]
    elif not isinstance(collection, dd.Series):
        raise TypeError(
            "A Dask collection of paths must be a Dask Series, or a Dask DataFrame with a "
            f"'path' column; got {type(collection).__name__}."
        )
    return list(collection.to_delayed()), label_type, tokenize(collection)


@functools.lru_cache(maxsize=8)
def _schema(n_features, label_type):
    """Return the columns of a partition: ``path``, ``label`` (if given), ``f0`` ... ``fN``."""
    import pyarrow as pa

    columns = [("path", pa.string())]
    if label_type is not None:
        columns.append(("label", label_type))
    return pa.schema(columns + [(f"f{i}", pa.float32()) for i in range(n_features)])


def _empty_frame(n_features, label_type):
    import numpy as np

    frame = _schema(n_features, label_type).empty_table().to_pandas()
    return frame.astype({f"f{i}": np.float32 for i in range(n_features)})


def _part_name(index, n_partitions):
    return f"part-{index:0{max(5, len(str(n_partitions - 1)))}d}.parquet"


def _check_folder(job):
    """Refuse an output folder that cannot hold this job, before any work; write nothing."""
    folder = job.output
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(f"Output {folder} is a file: give a folder for the partitions.")
    parent = os.path.dirname(folder)
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"Output folder's parent does not exist: {parent} (for {folder})")
    path = os.path.join(folder, MANIFEST)
    if os.path.isfile(path):
        _check_same_job(path, job.token)
    elif os.path.isdir(folder) and [e for e in os.listdir(folder) if not e.startswith(".")]:
        raise ValueError(
            f"Output folder {folder} is not empty and holds no sktransfer extraction: give a "
            "new or empty folder."
        )


def _check_same_job(path, token):
    try:
        with open(path, encoding="utf-8") as f:
            found = json.load(f)
        same_format = found["format"] == _FORMAT and found["version"] == 1
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"Cannot read {path}: not an sktransfer extraction record ({exc})."
        ) from None
    if not same_format:
        raise ValueError(f"{path} records another kind of job; give a new or empty folder.")
    if found.get("job") != token:
        raise ValueError(
            f"Output folder {os.path.dirname(path)} holds the partitions of another "
            "extraction (another extractor, other paths or labels, or another "
            "partition_size): resuming there would mix them. Give a new folder, or delete "
            "this one to start again."
        )


def _open_folder(job, n_features):
    """Create the folder and its record of the job; return the partitions already written."""
    from ._core.files import atomic_write

    folder = job.output
    os.makedirs(os.path.join(folder, ERRORS_FOLDER), exist_ok=True)
    manifest = {
        "format": _FORMAT,
        "version": 1,
        "job": job.token,
        "n_partitions": job.n_partitions,
        "partition_size": job.partition_size,
        "n_features": n_features,
        "complete": False,
    }
    with atomic_write(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    names = {_part_name(k, job.n_partitions): k for k in range(job.n_partitions)}
    return {names[n] for n in os.listdir(folder) if n in names}


def _run_id():
    return os.urandom(4).hex()


def _submit(client, job, todo, payload, n_features):
    """One task per partition to do, named ``sktransfer-extract`` on the dashboard."""
    name = f"sktransfer-extract-{_run_id()}"
    options = {
        "output": job.output,
        "columns": (n_features, job.label_type),
        "errors": job.errors,
    }
    if job.n_images is None:  # a Dask collection: its partitions are computed first
        sources = client.compute([job.parts[k] for k in todo])
    else:
        sources = [job.parts[k] for k in todo]
    return [
        client.submit(
            _extract_partition,
            payload,
            job.model_key,
            k,
            job.n_partitions,
            part,
            key=f"{name}-{k:05d}",
            pure=False,
            **options,
        )
        for k, part in zip(todo, sources, strict=True)
    ]


def _follow(distributed, futures, job, done, client, *, show=True):
    """Wait for the tasks, with a progress bar of the images; on a failure cancel the rest.

    Returns ``{partition: (n_images, n_errors)}`` of the partitions written; a frame's
    partitions stay on the workers (only a failed task's error comes to the client).
    """
    from tqdm.auto import tqdm

    if job.n_images is None:  # a Dask collection: sizes are known afterwards only
        sizes, total, unit = dict.fromkeys(range(job.n_partitions), 1), job.n_partitions, "part"
    else:
        sizes = {k: len(part[0]) for k, part in enumerate(job.parts)}
        total, unit = job.n_images, "img"
    todo = sorted(set(sizes) - done)
    index = {future.key: k for k, future in zip(todo, futures, strict=True)}
    counts = {}
    bar = tqdm(total=total, unit=unit, disable=not show)
    bar.update(sum(sizes[k] for k in done))  # partitions written by an earlier run
    try:
        for future in distributed.as_completed(futures):
            if future.status != "finished" or job.output is not None:
                result = future.result()  # raises the task's error, as the task raised it
                counts[index[future.key]] = (result["n_images"], result["n_errors"])
            bar.update(sizes[index[future.key]])
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        bar.close()
    return counts


def _finish(job, n_features, done, counts):
    """Count what the folder holds, mark the job complete, remove leftover temporary files."""
    import pandas as pd
    import pyarrow.parquet as pq

    from ._core.files import atomic_write

    folder = job.output
    errors = {}
    for name in sorted(os.listdir(os.path.join(folder, ERRORS_FOLDER))):
        if name.startswith("part-") and name.endswith(".parquet"):
            errors[name] = pd.read_parquet(os.path.join(folder, ERRORS_FOLDER, name))
    n_images = sum(n for n, _ in counts.values())
    for k in done:  # written by an earlier run
        name = _part_name(k, job.n_partitions)
        if job.n_images is None:
            n_images += pq.read_metadata(os.path.join(folder, name)).num_rows
        else:  # every path of the partition, but those that could not be read
            n_images += len(job.parts[k][0]) - (len(errors[name]) if name in errors else 0)
    empty = pd.DataFrame({"path": pd.Series(dtype=object), "error": pd.Series(dtype=object)})
    errors = pd.concat([empty, *errors.values()], ignore_index=True)
    # Files a killed worker was writing (hidden, ignored by readers) can go now.
    for pattern in (".part-*.partial.parquet", f"{ERRORS_FOLDER}/.part-*.partial.parquet"):
        for leftover in glob.glob(os.path.join(folder, pattern)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)
    path = os.path.join(folder, MANIFEST)
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    manifest |= {"complete": True, "n_images": n_images, "n_errors": len(errors)}
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    return ExtractionSummary(
        output=folder,
        n_images=n_images,
        n_features=n_features,
        n_partitions=job.n_partitions,
        n_skipped=len(done),
        errors=errors,
    )


# --- the workers' side -------------------------------------------------------------------
class _WorkerModels:
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
        with self._lock:  # tasks in several threads: build once
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            import pickle

            import numpy as np

            extractor = pickle.loads(payload)
            _check_decoding_processes(extractor.num_workers)
            # fit learns nothing from X (it is only validated): a blank image will do, and no
            # file of the partition is read twice.
            extractor.fit(np.zeros((1, 32, 32, 3), dtype=np.uint8))
            self.loads += 1
            self._models[key] = extractor
            while len(self._models) > self.maxsize:
                self._models.popitem(last=False)
            return extractor

    def clear(self):
        with self._lock:
            self._models.clear()


_MODELS = _WorkerModels()


def _check_decoding_processes(num_workers):
    """Refuse ``num_workers > 0`` in a daemonic worker process, which cannot have children."""
    import multiprocessing

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
    import torch

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
def _allocator_keeps_memory():
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
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl's mallopt does nothing)
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return mallopt


def _probe(payload, model_key):
    """Build (and keep) the extractor on a worker; return its number of features."""
    return _MODELS.get(model_key, payload).n_features_out_


def _unpack(part):
    """``(paths, read_paths, labels, start)`` of a partition, in memory or from Dask."""
    if isinstance(part, tuple):
        return part
    import numpy as np

    if hasattr(part, "columns"):  # a pandas DataFrame with path and label
        paths, labels = part["path"].to_numpy(dtype=object), part["label"].to_numpy()
    else:
        paths, labels = part.to_numpy(dtype=object), None
    paths = np.asarray([os.fspath(p) for p in paths], dtype=object)
    return paths, paths, labels, part.index


def _extract_partition(payload, model_key, index, n_partitions, part, *, output, columns, errors):
    """Extract one partition; write it (returning counts) or return it as a DataFrame."""
    import pyarrow.parquet as pq

    final = None
    if output is not None:
        final = os.path.join(output, _part_name(index, n_partitions))
        if os.path.exists(final):  # done by an earlier run, or by a copy of this task
            return {"index": index, "n_images": pq.read_metadata(final).num_rows, "n_errors": 0}
    paths, read_paths, labels, start = _unpack(part)
    extractor = _MODELS.get(model_key, payload)
    with _MODELS.run_lock, _threads(extractor.device_), _allocator_keeps_memory():
        features, keep, failed = _features(extractor, read_paths, errors)
    table = _table(
        _schema(*columns), paths[keep], None if labels is None else labels[keep], features
    )
    if output is None:
        frame = table.to_pandas()
        # the rows keep their place: the position in paths, or the Dask collection's index
        frame.index = start if hasattr(start, "dtype") else range(start, start + len(paths))
        return frame
    from ._core.files import atomic_path

    if failed:  # written first: the features file marks the partition done
        import pyarrow as pa

        bad = pa.table({"path": [paths[i] for i, _ in failed], "error": [m for _, m in failed]})
        with atomic_path(os.path.join(output, ERRORS_FOLDER, os.path.basename(final))) as tmp:
            pq.write_table(bad, tmp)
    with atomic_path(final) as tmp:
        # Dictionaries and statistics of a thousand float columns cost time and space and
        # help no reader; the path and label columns keep them.
        named = [name for name in table.column_names if not name.startswith("f")]
        pq.write_table(table, tmp, use_dictionary=named, write_statistics=named)
    return {"index": index, "n_images": len(features), "n_errors": len(failed)}


def _features(extractor, read_paths, errors):
    """Return ``(features, kept_mask, failed)``; ``failed`` lists ``(position, message)``."""
    import numpy as np

    keep = np.ones(len(read_paths), dtype=bool)
    with config_context(shared_cache_size=0):  # each row once: nothing to share
        return _transform_partition(extractor, read_paths, keep, errors)


def _transform_partition(extractor, read_paths, keep, errors):
    import numpy as np

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
    from ._images import decode_file

    failed = []
    for i, path in enumerate(read_paths):
        try:
            decode_file(path)
        except (ValueError, OSError) as exc:
            failed.append((i, str(exc)))
    return failed


def _table(schema, paths, labels, features):
    import numpy as np
    import pyarrow as pa

    columns = [pa.array(paths, pa.string())]
    if labels is not None:
        columns.append(pa.array(labels, schema.field("label").type))
    by_column = np.ascontiguousarray(features.T)  # each feature's values side by side
    columns += [pa.array(values) for values in by_column]
    return pa.Table.from_arrays(columns, schema=schema)
