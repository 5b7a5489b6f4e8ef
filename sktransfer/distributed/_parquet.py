"""The Parquet files of an extraction: their columns, their tables, written whole.

One file per partition (``part-00000.parquet``...), and beside them, under ``_errors/``,
the images of a partition that could not be read. A file appears under its final name
only once complete; a killed writer leaves a hidden ``.part-*.partial.parquet`` that
Parquet readers skip and :func:`remove_partial_files` removes.
"""

import contextlib
import functools
import glob
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._core.files import atomic_path

ERRORS_FOLDER = "_errors"  # leading "_": Parquet readers skip it when reading the folder


@functools.lru_cache(maxsize=8)
def schema(n_features, label_type):
    """Return the columns of a partition: ``path``, ``label`` (if given), ``f0`` ... ``fN``."""
    columns = [("path", pa.string())]
    if label_type is not None:
        columns.append(("label", label_type))
    return pa.schema(columns + [(f"f{i}", pa.float32()) for i in range(n_features)])


def empty_frame(n_features, label_type):
    """Return the pandas frame of no rows that a partition's frame looks like."""
    frame = schema(n_features, label_type).empty_table().to_pandas()
    return frame.astype({f"f{i}": np.float32 for i in range(n_features)})


def table(columns, paths, labels, features):
    """Return a partition as an Arrow table of the ``columns`` given to :func:`schema`."""
    columns = schema(*columns)
    arrays = [pa.array(paths, pa.string())]
    if labels is not None:
        arrays.append(pa.array(labels, columns.field("label").type))
    by_column = np.ascontiguousarray(features.T)  # each feature's values side by side
    arrays += [pa.array(values) for values in by_column]
    return pa.Table.from_arrays(arrays, schema=columns)


def part_name(index, n_partitions):
    """Return the file name of a partition: its index, padded so that names sort in order."""
    return f"part-{index:0{max(5, len(str(n_partitions - 1)))}d}.parquet"


def label_type_of(values):
    """Return the Arrow type of a column of labels."""
    return pa.array(values).type


def label_type_of_dtype(dtype):
    """Return the Arrow type of a column of labels of a NumPy ``dtype``."""
    return pa.string() if dtype.kind in "OSU" else pa.from_numpy_dtype(dtype)


def write_partition(folder, name, features_table, failed):
    """Write a partition's features, and first its unreadable images (``(path, message)``).

    The features file comes last: its presence marks the partition done.
    """
    if failed:
        bad = pa.table({"path": [p for p, _ in failed], "error": [m for _, m in failed]})
        with atomic_path(os.path.join(folder, ERRORS_FOLDER, name)) as tmp:
            pq.write_table(bad, tmp)
    with atomic_path(os.path.join(folder, name)) as tmp:
        # Dictionaries and statistics of a thousand float columns cost time and space and
        # help no reader; the path and label columns keep them.
        named = [n for n in features_table.column_names if not n.startswith("f")]
        pq.write_table(features_table, tmp, use_dictionary=named, write_statistics=named)


def rows_in(path):
    """Return the number of rows of a Parquet file, from its footer."""
    return pq.read_metadata(path).num_rows


def partition_problem(folder, name, columns, n_paths=None):
    """Return why a partition written earlier cannot be kept, or None when it can.

    The partition's footer must be readable, its columns those of :func:`schema` (given
    ``columns``), and, when ``n_paths`` (the paths the plan gave it) is known, its rows
    those paths less the unreadable images recorded for it under ``_errors/``.
    """
    errors = os.path.join(folder, ERRORS_FOLDER, name)
    try:
        footer = pq.read_metadata(os.path.join(folder, name))
        found = footer.schema.to_arrow_schema()
        n_failed = rows_in(errors) if os.path.exists(errors) else 0
    except (OSError, pa.ArrowException) as exc:
        return f"unreadable: {' '.join(str(exc).split())}"
    if not found.equals(schema(*columns), check_metadata=False):
        return "not the columns of this extraction"
    if n_paths is not None and footer.num_rows != n_paths - n_failed:
        return f"{footer.num_rows} rows instead of {n_paths - n_failed}"
    return None


def remove_partition(folder, name):
    """Remove what a partition wrote (its features and its errors), to write it again."""
    for path in (os.path.join(folder, name), os.path.join(folder, ERRORS_FOLDER, name)):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def read_errors(folder):
    """Return ``{partition file name: frame of path and error}`` of the folder's errors."""
    errors = {}
    for name in sorted(os.listdir(os.path.join(folder, ERRORS_FOLDER))):
        if name.startswith("part-") and name.endswith(".parquet"):
            errors[name] = pd.read_parquet(os.path.join(folder, ERRORS_FOLDER, name))
    return errors


def errors_frame(frames):
    """Return the frames of :func:`read_errors` as one frame (``path``, ``error``)."""
    empty = pd.DataFrame({"path": pd.Series(dtype=object), "error": pd.Series(dtype=object)})
    return pd.concat([empty, *frames], ignore_index=True)


def remove_partial_files(folder):
    """Remove the files a killed worker was writing (hidden, ignored by readers)."""
    for pattern in (".part-*.partial.parquet", f"{ERRORS_FOLDER}/.part-*.partial.parquet"):
        for leftover in glob.glob(os.path.join(folder, pattern)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)
