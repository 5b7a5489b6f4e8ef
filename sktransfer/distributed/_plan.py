"""The job, planned on the client before any work: arguments, partitions, the folder's record.

:func:`plan` checks every argument and cuts the paths into partitions; the job's token (a
digest of the extractor's parameters, the inputs and the partitioning) is what the record
in the output folder (``_sktransfer.json``) holds, so that a re-run resumes its own job
and never mixes another's rows in.
"""

import hashlib
import inspect
import json
import os
from dataclasses import dataclass
from numbers import Integral

import joblib
import numpy as np
import pandas as pd
from sklearn.base import clone

from .._core.files import atomic_write
from .._extractor import PretrainedFeatureExtractor
from . import _parquet

MANIFEST = "_sktransfer.json"  # leading "_": Parquet readers skip it when reading the folder
_FORMAT = "sktransfer-features"


@dataclass
class Job:
    """An extraction, planned: what the workers get and how the folder records it."""

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


def _check_arguments(extractor, client, partition_size, errors, output, distributed):
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


def plan(paths, extractor, client, labels, partition_size, errors, output, distributed):
    """Check every argument before any work; return the :class:`Job`."""
    import cloudpickle
    import dask

    _check_arguments(extractor, client, partition_size, errors, output, distributed)
    shipped = _for_workers(clone(extractor))
    shipped._validate_params()  # a bad parameter fails here, not on every worker
    payload = cloudpickle.dumps(shipped)
    model_key = hashlib.sha256(payload).hexdigest()
    output = None if output is None else os.path.abspath(os.fspath(output))
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
    return Job(
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
    """Set the extractor up as workers run it: silent.

    The progress shown is the job's, not each partition's. These parameters change no
    feature, and so do not make another job.
    """
    params = extractor.get_params(deep=False)
    defaults = inspect.signature(type(extractor)).parameters
    quiet = {"verbose": 0}
    if "progress" in params:  # the deprecated alias of verbose, at its default
        quiet["progress"] = defaults["progress"].default
    return extractor.set_params(**{k: v for k, v in quiet.items() if k in params})


def _given_paths(paths, labels):
    """Return the paths as an array of str, and the labels (a frame's column if not given)."""
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
    return np.asarray([os.fspath(p) for p in given], dtype=object), labels


def _memory_parts(paths, labels, partition_size):
    given, labels = _given_paths(paths, labels)
    label_type = None
    if labels is not None:
        labels = np.asarray(labels.to_numpy() if hasattr(labels, "to_numpy") else labels)
        if labels.ndim != 1 or len(labels) != len(given):
            raise ValueError(
                f"labels must hold one label per path: {len(given)} paths, labels of shape "
                f"{labels.shape}."
            )
        label_type = _parquet.label_type_of(labels)
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
            label_type = _parquet.label_type_of_dtype(collection["label"].dtype)
            collection = collection[["path", "label"]]
        else:
            collection = collection["path"]
    elif not isinstance(collection, dd.Series):
        raise TypeError(
            "A Dask collection of paths must be a Dask Series, or a Dask DataFrame with a "
            f"'path' column; got {type(collection).__name__}."
        )
    return list(collection.to_delayed()), label_type, tokenize(collection)


# --- the output folder's record of the job ------------------------------------------------
def check_folder(job):
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


def open_folder(job, n_features):
    """Create the folder and its record of the job; return what earlier runs wrote.

    Returns ``(done, redone)``: the partitions found whole, which need not run again, and
    ``{file name: why}`` of those found damaged (unreadable, other columns, a wrong number
    of rows), which were removed to be written again.
    """
    folder = job.output
    os.makedirs(os.path.join(folder, _parquet.ERRORS_FOLDER), exist_ok=True)
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
    return _verified_partitions(job, n_features)


def _verified_partitions(job, n_features):
    """Check each partition an earlier run wrote; remove the others' files, to redo them."""
    folder, present = job.output, set(os.listdir(job.output))
    done, redone = set(), {}
    for k in range(job.n_partitions):
        name = _parquet.part_name(k, job.n_partitions)
        if name in present:
            n_paths = None if job.n_images is None else len(job.parts[k][0])
            problem = _parquet.partition_problem(
                folder, name, (n_features, job.label_type), n_paths
            )
            if problem is None:
                done.add(k)
                continue
            redone[name] = problem
        # a partition to write: nothing of an earlier try stays (a stale errors file)
        _parquet.remove_partition(folder, name)
    return done, redone


def mark_complete(folder, n_images, n_errors):
    """Record in the folder that its job is complete, with the rows and errors it holds."""
    path = os.path.join(folder, MANIFEST)
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    manifest |= {"complete": True, "n_images": n_images, "n_errors": n_errors}
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
