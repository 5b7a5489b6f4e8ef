"""Feature extraction on a Dask cluster: many images, many machines, one Parquet dataset.

:func:`extract_features` splits a list of image paths into partitions and extracts each
partition on a worker of a :class:`dask.distributed.Client`. The extractor travels by its
parameters (kilobytes for a named backbone); each worker process builds the network once and
reuses it for every partition it runs. The result is a folder of Parquet files, one per
partition, written whole or not at all, so that a job that stops (a killed worker, Ctrl-C, a
corrupt image) resumes where it stopped; or, without a folder, a Dask DataFrame. It takes
images only: a text backbone is refused (texts are extracted in one process).

Dask is an optional dependency (``pip install 'sktransfer[dask]'``); it is imported when a
function of this package runs, not when the package is imported.

Searches need no helper: ``GridSearchCV(...).fit`` under
``joblib.parallel_config(backend="dask")`` runs its fits on the cluster's workers (see the
"Scaling out" page of the documentation).

The package, from the bottom up: ``_parquet.py`` (the files: columns, tables, written
whole), ``_worker.py`` (what runs on a worker: the cache of built extractors, threads,
allocator, one partition's extraction), ``_plan.py`` (the job: arguments, partitions, the
folder's record) and ``_driver.py`` (:func:`extract_features` itself).
"""

from ._driver import INSTALL_HINT as INSTALL_HINT  # the command line's hint
from ._driver import ExtractionSummary, extract_features

__all__ = ["ExtractionSummary", "extract_features"]
