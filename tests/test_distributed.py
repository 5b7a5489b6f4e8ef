"""Extraction on a Dask cluster and searches on its workers, on a real local cluster.

One ``LocalCluster`` of two worker processes with one thread each serves the whole module.
The claims: the Parquet dataset (or Dask DataFrame) equals an extraction in this process;
each worker builds the network once; a worker killed mid-job, a re-run and a corrupt image
leave a complete dataset without a row twice; searches on the workers score as the
sequential search does.
"""

import json
import os
import pickle
import signal
import sys
import time

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import dask  # noqa: E402
import dask.dataframe as dd  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from distributed.diagnostics.plugin import WorkerPlugin  # noqa: E402

from sktransfer import (  # noqa: E402
    FineTunedClassifier,
    PretrainedFeatureExtractor,
    config_context,
    load_image_folder,
)
from sktransfer.cli import main  # noqa: E402
from sktransfer.distributed import extract_features  # noqa: E402

# The functions this module runs on the workers (spies, plugins) travel by value: the
# workers need not import the test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SIZE = 32


def extractor(**params):
    return PretrainedFeatureExtractor(image_size=SIZE, batch_size=4, **params)


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def photos(image_folder):
    """24 JPEG paths with their class labels, and their features extracted in this process."""
    paths, labels = load_image_folder(image_folder)
    return paths, labels, extractor().fit_transform(paths)


def read_dataset(folder):
    """The Parquet folder as one frame, in file order (as pandas reads it)."""
    return pd.read_parquet(folder)


def features_of(frame):
    return frame[[c for c in frame.columns if c.startswith("f")]].to_numpy()


def assert_same_features(frame, paths, expected):
    assert frame["path"].tolist() == list(paths)  # each image once, in the order given
    got = features_of(frame)
    assert got.dtype == np.float32 and got.shape == expected.shape
    # workers run torch with 1 thread, this process with 2: the same up to float rounding
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# --- what runs on the workers ------------------------------------------------------------
def _count_backbone_loads():
    """Install (or reset) a counter of backbone loads in a worker process."""
    from sktransfer import PretrainedFeatureExtractor as Extractor

    if "_spy_original" not in vars(Extractor):
        Extractor._spy_original = Extractor._load_backbone

        def counting(self):
            Extractor._spy_loads += 1
            return Extractor._spy_original(self)

        Extractor._load_backbone = counting
    Extractor._spy_loads = 0


def _forget_networks():
    from sktransfer.distributed._worker import MODEL_CACHE

    MODEL_CACHE.clear()


def _backbone_loads():
    from sktransfer import PretrainedFeatureExtractor as Extractor

    return vars(Extractor).get("_spy_loads", 0)


def _page_faults_of_one_and_four_batches():
    """Minor page faults of a partition of 1 batch and of 4 batches, 224 px, on this worker."""
    import resource

    from sktransfer.distributed._worker import allocator_keeps_memory

    images = np.random.default_rng(0).integers(0, 256, (16, 224, 224, 3), dtype=np.uint8)
    faults = []
    with config_context(shared_cache_size=0):  # every transform computes its rows
        model = PretrainedFeatureExtractor(batch_size=4).fit(images[:1])
        model.transform(images[:4])
        for n in (4, 16):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            with allocator_keeps_memory():
                model.transform(images[:n])
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), faults


class KillOnce(WorkerPlugin):
    """Kill the worker process (SIGKILL) as it starts a given partition, the first time only."""

    name = "kill-once"

    def __init__(self, partition, marker):
        self.partition = partition
        self.marker = marker

    def transition(self, key, start, finish, **kwargs):
        if (
            finish == "executing"
            and str(key).startswith("sktransfer-extract-")
            and str(key).endswith(f"-{self.partition:05d}")
            and not os.path.exists(self.marker)
        ):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)


# --- extraction --------------------------------------------------------------------------
def test_dataset_equals_in_process_extraction_with_one_network_per_worker(
    client, photos, tmp_path
):
    paths, labels, expected = photos
    client.run(_forget_networks)
    client.run(_count_backbone_loads)
    out = tmp_path / "features"
    summary = extract_features(
        paths, extractor(), client=client, output=out, labels=labels, partition_size=2
    )
    assert (summary.n_images, summary.n_partitions, summary.n_skipped) == (24, 12, 0)
    assert summary.n_features == expected.shape[1] and summary.errors.empty
    assert sorted(p.name for p in out.glob("*.parquet")) == [
        f"part-{k:05d}.parquet" for k in range(12)
    ]
    frame = read_dataset(out)
    assert_same_features(frame, paths, expected)
    assert frame["label"].tolist() == list(labels)
    manifest = json.loads((out / "_sktransfer.json").read_text())
    assert manifest["complete"] and manifest["n_images"] == 24
    assert dd.read_parquet(out).npartitions == 12
    loads = client.run(_backbone_loads)
    assert set(loads.values()) <= {0, 1} and sum(loads.values()) >= 1, loads  # 12 tasks

    # Without a folder: a Dask DataFrame. A fitted extractor also travels by its parameters:
    # the workers reuse the networks they hold.
    fitted = extractor().fit(paths[:1])
    frame = extract_features(paths, fitted, client=client, partition_size=7)
    assert isinstance(frame, dd.DataFrame) and frame.npartitions == 4
    computed = frame.compute()
    assert computed.index.tolist() == list(range(24))
    assert_same_features(computed, paths, expected)
    assert client.run(_backbone_loads) == loads


def test_workers_keep_the_memory_of_one_batch_for_the_next(client):
    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536: freed memory went back to the
    # system after every batch and came back as fresh pages (30% slower than a plain process)
    for trim, (one, four) in client.run(_page_faults_of_one_and_four_batches).values():
        assert trim is not None  # the setting is there: the test would prove nothing else
        assert four < 2 * one, (one, four)  # not a page fault per activation of every batch


def test_a_dask_series_of_paths_keeps_its_partitions(client, photos, tmp_path):
    paths, labels, expected = photos
    series = dd.from_pandas(pd.Series(paths, dtype=object), npartitions=3)
    summary = extract_features(series, extractor(), client=client, output=tmp_path / "f")
    assert summary.n_partitions == 3 and summary.n_images == 24
    assert_same_features(read_dataset(tmp_path / "f"), paths, expected)

    # a Dask DataFrame brings its labels along
    table = dd.from_pandas(pd.DataFrame({"path": paths, "label": labels}), npartitions=2)
    frame = extract_features(table, extractor(), client=client).compute()
    assert frame["label"].tolist() == list(labels)
    assert_same_features(frame, paths, expected)


def test_a_rerun_skips_the_partitions_already_written(client, photos, tmp_path):
    paths, labels, expected = photos
    out = tmp_path / "features"
    extract_features(paths, extractor(), client=client, output=out, partition_size=6)
    files = sorted(out.glob("part-*.parquet"))
    before = {f.name: os.stat(f).st_mtime_ns for f in files}
    files[2].unlink()  # as if the job had stopped before this partition
    time.sleep(0.01)

    # a memory folder changes where features are kept, not which: the same job
    rerun = extractor(memory=str(tmp_path / "activations"))
    summary = extract_features(paths, rerun, client=client, output=out, partition_size=6)
    assert (summary.n_partitions, summary.n_skipped, summary.n_images) == (4, 3, 24)
    after = {f.name: os.stat(f).st_mtime_ns for f in sorted(out.glob("part-*.parquet"))}
    assert {k for k in before if before[k] != after[k]} == {files[2].name}
    assert_same_features(read_dataset(out), paths, expected)

    # another job in the same folder would mix its rows with these: refused, nothing written
    for other in [
        {"extractor": extractor(pooling="max")},
        {"partition_size": 5},
        {"labels": labels},
    ]:
        kwargs = {"extractor": extractor(), "partition_size": 6} | other
        with pytest.raises(ValueError, match="holds the partitions of another extraction"):
            extract_features(paths, client=client, output=out, **kwargs)
    assert after == {f.name: os.stat(f).st_mtime_ns for f in sorted(out.glob("part-*.parquet"))}


def test_a_rerun_redoes_a_damaged_partition_instead_of_skipping_it(client, photos, tmp_path):
    paths, labels, expected = photos
    out = tmp_path / "features"
    job = {"extractor": extractor(), "client": client, "output": out, "partition_size": 6}
    extract_features(paths, labels=labels, **job)
    files = sorted(out.glob("part-*.parquet"))
    whole = files[1].read_bytes()
    files[1].write_bytes(b"")  # a disk that filled up
    files[2].write_bytes(files[2].read_bytes()[: len(whole) // 2])  # a copy cut short
    # a readable file, but not this partition: too few rows, then other columns
    pd.read_parquet(files[3]).iloc[:2].to_parquet(files[3], index=False)
    unchanged = os.stat(files[0]).st_mtime_ns

    summary = extract_features(paths, labels=labels, **job)
    assert (summary.n_partitions, summary.n_skipped, summary.n_redone) == (4, 1, 3)
    assert summary.n_images == 24 and "3 damaged and redone" in str(summary)
    assert os.stat(files[0]).st_mtime_ns == unchanged
    frame = read_dataset(out)
    assert frame["label"].tolist() == list(labels)
    assert_same_features(frame, paths, expected)
    assert json.loads((out / "_sktransfer.json").read_text())["n_images"] == 24

    pd.read_parquet(files[1]).drop(columns="label").to_parquet(files[1], index=False)
    summary = extract_features(paths, labels=labels, **job)
    assert (summary.n_skipped, summary.n_redone) == (3, 1)
    assert_same_features(read_dataset(out), paths, expected)


def test_an_unreadable_image_is_named_or_recorded(client, photos, tmp_path):
    paths, labels, expected = photos
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a JPEG")
    missing = tmp_path / "gone.jpg"
    with_bad = [*paths[:10], str(bad), *paths[10:], str(missing)]
    labels = [*labels[:10], "x", *labels[10:], "y"]

    with pytest.raises(ValueError, match=r"Cannot read image .*broken\.jpg"):
        extract_features(with_bad[:12], extractor(), client=client, output=tmp_path / "a")

    out = tmp_path / "b"
    summary = extract_features(
        with_bad, extractor(), client=client, output=out, labels=labels, errors="record",
        partition_size=4,
    )  # fmt: skip
    assert summary.n_images == 24
    assert summary.errors["path"].tolist() == [str(bad), str(missing)]
    assert "corrupt" in summary.errors["error"][0] and "not found" in summary.errors["error"][1]
    frame = read_dataset(out)  # the errors table is beside the features, not among them
    assert_same_features(frame, paths, expected)
    assert pd.read_parquet(out / "_errors")["path"].tolist() == [str(bad), str(missing)]
    with pytest.raises(ValueError, match="give output"):
        extract_features(with_bad, extractor(), client=client, errors="record")


def test_bad_arguments_fail_before_any_work(client, photos, tmp_path):
    paths, labels, _ = photos
    cases = [
        ({"extractor": FineTunedClassifier()}, TypeError, "PretrainedFeatureExtractor"),
        ({"client": "tcp://127.0.0.1:8786"}, TypeError, "dask.distributed.Client"),
        ({"partition_size": 0}, ValueError, "partition_size must be at least 1"),
        ({"errors": "ignore"}, ValueError, "errors must be 'raise' or 'record'"),
        ({"labels": labels[:3]}, ValueError, "one label per path: 24 paths"),
        ({"paths": []}, ValueError, "paths is empty"),
        ({"paths": [paths[0], 3]}, TypeError, r"paths\[1\] is not a file path"),
        ({"extractor": PretrainedFeatureExtractor(batch_size=0)}, ValueError, "batch_size"),
        ({"output": tmp_path / "no" / "such"}, FileNotFoundError, "parent does not exist"),
        # found by the first worker to build the network, before any partition
        ({"extractor": extractor(num_workers=1)}, ValueError, "distributed.worker.daemon"),
        (
            {"extractor": PretrainedFeatureExtractor("all-MiniLM-L6-v2")},
            ValueError,
            r"takes image paths only.*takes text inputs.*fit_transform\(texts\)",
        ),
    ]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    cases.append(({"output": tmp_path / "notes"}, ValueError, "is not empty"))
    for change, error, message in cases:
        kwargs = {"paths": paths, "extractor": extractor(), "client": client} | change
        with pytest.raises(error, match=message):
            extract_features(output=kwargs.pop("output", tmp_path / "out"), **kwargs)
    assert not (tmp_path / "out").exists()
    assert os.listdir(tmp_path / "notes") == ["todo.txt"]


def test_without_dask_the_error_says_what_to_install(monkeypatch, photos):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'sktransfer\[dask\]'"):
        extract_features(photos[0], extractor(), client=None)


# --- the command line --------------------------------------------------------------------
def test_command_line_extracts_on_a_scheduler(client, photos, image_folder, tmp_path, capsys):
    paths, labels, expected = photos
    out = tmp_path / "features"
    address = client.scheduler.address
    status = main(
        ["extract", str(image_folder), "-o", str(out), "--scheduler", address, "--image-size",
         str(SIZE), "--batch-size", "4"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert f"24 images x {expected.shape[1]} features -> {out}" in captured.out
    frame = read_dataset(out)
    assert frame["label"].tolist() == list(labels)
    assert_same_features(frame, [os.path.abspath(p) for p in paths], expected)

    # mistakes: one line, status 2, nothing written
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        status = main(["extract", str(image_folder), "-o", str(tmp_path / "x"),
                       "--scheduler", "tcp://127.0.0.1:9"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.count("\n") == 0 and "tcp://127.0.0.1:9" in err, err
    assert "Traceback" not in err
    status = main(["extract", str(image_folder), "-o", str(tmp_path / "f.csv"), "--scheduler",
                   address])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert status == 2 and "folder of Parquet partitions" in err, err
    assert not (tmp_path / "x").exists() and not (tmp_path / "f.csv").exists()


# --- searches on the cluster -------------------------------------------------------------
def searches():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    # log loss, not accuracy: a difference in any probability shows
    return {
        "pipeline": GridSearchCV(
            make_pipeline(extractor(), LogisticRegression()),
            {"logisticregression__C": [0.1, 10.0]},
            cv=2,
            scoring="neg_log_loss",
            refit=False,
        ),
        "fine-tuning": GridSearchCV(
            FineTunedClassifier(image_size=SIZE, max_epochs=2, batch_size=8, random_state=0),
            {"lr": [1e-3, 1e-2]},
            cv=2,
            scoring="neg_log_loss",
            refit=False,
        ),
    }


def assert_same_scores(results, sequential):
    for key in ("split0_test_score", "split1_test_score"):
        np.testing.assert_allclose(results[key], sequential[key], rtol=1e-4)
        assert len(set(sequential[key])) == 2  # the grid points differ


def test_searches_on_the_dask_workers_score_as_the_sequential_search(client, crops):
    import joblib
    from sklearn.base import clone

    X, y = crops
    for search in searches().values():
        # what joblib sends for each fit: parameters, no weights
        assert len(pickle.dumps(clone(search.estimator))) < 20_000
        sequential = clone(search).fit(X, y).cv_results_
        with joblib.parallel_config(backend="dask"):
            on_dask = clone(search).fit(X, y).cv_results_
        assert_same_scores(on_dask, sequential)


def test_a_search_with_n_jobs_scores_as_the_sequential_search(crops):
    from sklearn.base import clone

    X, y = crops
    search = searches()["fine-tuning"]  # loky's processes start bare: one search is enough
    sequential = clone(search).fit(X, y).cv_results_
    assert_same_scores(clone(search).set_params(n_jobs=2).fit(X, y).cv_results_, sequential)


# --- last: a worker is killed (its restart is not waited for) --------------------------
def test_a_worker_killed_mid_job_leaves_a_complete_dataset(client, photos, tmp_path):
    paths, labels, expected = photos
    out = tmp_path / "features"
    out.mkdir()
    stale = out / ".part-00001.parquet.0badc0de.partial.parquet"  # a write cut short earlier
    stale.write_bytes(b"PAR1 half a file")
    (out / "_sktransfer.json").write_text("{}")  # not a record of ours: refused, untouched
    with pytest.raises(ValueError, match="not an sktransfer extraction record"):
        extract_features(paths, extractor(), client=client, output=out)
    (out / "_sktransfer.json").unlink()

    marker = tmp_path / "killed"
    plugin = KillOnce(partition=3, marker=str(marker))
    client.register_plugin(plugin)
    try:
        summary = extract_features(
            paths, extractor(), client=client, output=out, labels=labels, partition_size=2
        )
    finally:
        client.unregister_worker_plugin(plugin.name)
    assert marker.exists(), "no worker was killed: the test proved nothing"
    assert summary.n_images == 24 and summary.n_skipped == 0
    frame = read_dataset(out)
    assert not frame["path"].duplicated().any()
    assert_same_features(frame, paths, expected)
    assert not stale.exists()  # leftovers of cut writes are removed once the job is done


@pytest.mark.gpu
def test_gpu_workers_use_their_gpu_and_the_client_never_initialises_cuda(photos, tmp_path):
    """In a fresh process (this one may have used CUDA): the client stays CUDA-free."""
    import subprocess
    import textwrap

    script = textwrap.dedent(
        f"""
        import torch
        from distributed import Client, LocalCluster
        from sktransfer import PretrainedFeatureExtractor
        from sktransfer.distributed import extract_features

        if __name__ == "__main__":
            paths = {list(photos[0])!r}
            with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as c:
                with Client(c) as client:
                    extract_features(paths, PretrainedFeatureExtractor(image_size={SIZE}),
                                     client=client, output={str(tmp_path / "f")!r})
                    used = client.run(torch.cuda.is_initialized)
            print(torch.cuda.is_initialized(), all(used.values()))
        """
    )
    (tmp_path / "run.py").write_text(script)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "run.py")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["False", "True"]
