"""The client's side of :func:`extract_features`: plan, probe, submit, follow, summarise."""

import os
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from . import _parquet
from ._plan import check_folder, mark_complete, open_folder, plan
from ._worker import extract_partition, probe

INSTALL_HINT = "pip install 'sktransfer[dask]'"
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
    n_redone : int
        Partitions an earlier run left damaged (unreadable, cut short, other columns or
        another number of rows than planned), extracted again.
    """

    output: str
    n_images: int
    n_features: int
    n_partitions: int
    n_skipped: int
    errors: object = field(repr=False)
    n_redone: int = 0

    def __str__(self):
        """One line: what was written where."""
        redone = f", {self.n_redone} damaged and redone" if self.n_redone else ""
        errors = f", {len(self.errors)} unreadable images" if len(self.errors) else ""
        return (
            f"{self.n_images} images x {self.n_features} features -> {self.output} "
            f"({self.n_partitions} Parquet partitions, {self.n_skipped} already there"
            f"{redone}{errors})"
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
    partial partition nor a row twice. Before a partition is skipped, its file is checked:
    a readable Parquet footer, this extraction's columns, and as many rows as the partition
    has paths (less its unreadable images); a file that fails (emptied by a full disk, cut
    short by a copy, edited) is extracted again, and the summary counts it in
    ``n_redone``. A partition of a Dask collection, whose size is known only once
    computed, has its footer and columns checked.

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
        so both give the same features. Its backbone must take images: distributed
        extraction reads image paths only, and refuses a text backbone (extract texts in
        one process, with ``extractor.fit_transform(texts)``).
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
        Bad arguments; an extractor whose backbone takes no images (texts); an unreadable
        image with ``errors="raise"`` (named); an output folder that holds other files, or
        another job's partitions (a different extractor, other paths or another
        ``partition_size``).
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
    job = plan(paths, extractor, client, labels, partition_size, errors, output, distributed)
    if output is not None:
        check_folder(job)
    payload = job.payload
    if len(payload) > _SCATTER_BYTES:  # weights of its own: once to each worker, not per task
        payload = client.scatter(payload, broadcast=True, hash=False)
    # One worker builds the network first: a backbone it cannot load fails here, once.
    n_features = client.submit(
        probe, payload, job.model_key, key=f"sktransfer-probe-{_run_id()}", pure=False
    ).result()
    if output is None:
        import dask.dataframe as dd

        futures = _submit(client, job, range(job.n_partitions), payload, n_features)
        if progress:
            _follow(distributed, futures, job, set(), client)
        meta = _parquet.empty_frame(n_features, job.label_type)
        return dd.from_delayed(futures, meta=meta, verify_meta=False)
    done, redone = open_folder(job, n_features)
    todo = [k for k in range(job.n_partitions) if k not in done]
    futures = _submit(client, job, todo, payload, n_features)
    counts = _follow(distributed, futures, job, done, client, show=progress)
    return _finish(job, n_features, done, counts, len(redone))


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
            extract_partition,
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


def _finish(job, n_features, done, counts, n_redone):
    """Count what the folder holds, mark the job complete, remove leftover temporary files."""
    folder = job.output
    errors = _parquet.read_errors(folder)
    n_images = sum(n for n, _ in counts.values())
    for k in done:  # written by an earlier run
        name = _parquet.part_name(k, job.n_partitions)
        if job.n_images is None:
            n_images += _parquet.rows_in(os.path.join(folder, name))
        else:  # every path of the partition, but those that could not be read
            n_images += len(job.parts[k][0]) - (len(errors[name]) if name in errors else 0)
    errors = _parquet.errors_frame(errors.values())
    _parquet.remove_partial_files(folder)
    mark_complete(folder, n_images, len(errors))
    return ExtractionSummary(
        output=folder,
        n_images=n_images,
        n_features=n_features,
        n_partitions=job.n_partitions,
        n_skipped=len(done),
        errors=errors,
        n_redone=n_redone,
    )
