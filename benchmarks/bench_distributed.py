"""Extraction on a Dask cluster against extraction in this process, on the same photos.

The cluster is a ``LocalCluster`` of 2 worker processes with 1 thread each; the baseline is
``PretrainedFeatureExtractor.transform`` in this process with 2 torch threads: the same two
cores either way. The cluster writes a fresh Parquet folder each time (nothing skipped), and
also returns a Dask DataFrame (``output=None``, computed). Runs are interleaved, after a
warm-up that builds the network on every worker; the script checks that the features agree,
then writes medians and ratios to RESULTS.md.

On a busy machine the cluster's processes and the single process meet different loads, so
one worker is also compared with a plain single-thread process extracting the same images at
the same moment.

The per-partition overhead is measured apart: the same 48 tiny images (48 px files, 32 px
crops) as 48 partitions of one image and as 2 partitions of 24; the difference, in
worker-seconds, per extra partition.

Images: ``../shared/datasets/flowers3`` (real photos) when present, else crops of
scikit-learn's sample photos saved as JPEG. Run: ``python benchmarks/bench_distributed.py``.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from distributed import Client, LocalCluster
from PIL import Image

from sktransfer import PretrainedFeatureExtractor, load_image_folder, set_config
from sktransfer.distributed import extract_features

from _results import machine_line, write_section

FLOWERS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "flowers3"
# As this process started: a local cluster's nannies add Dask's worker settings to it
# (MALLOC_TRIM_THRESHOLD_, OMP_NUM_THREADS), which a plain process must not inherit.
START_ENVIRONMENT = dict(os.environ)


def photos(folder):
    if FLOWERS.is_dir():
        paths, _ = load_image_folder(FLOWERS)
        return list(paths), "flowers3 (30 real photos, 320-500 px)"
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    paths = []
    for k in range(30):
        photo = load_sample_images().images[k % 2]
        top, left = rng.integers(0, 100, 2)
        name = folder / f"{k}.jpg"
        Image.fromarray(photo[top : top + 320, left : left + 480]).save(name)
        paths.append(str(name))
    return paths, "crops of scikit-learn's sample photos (480x320 JPEG)"


def tiny_images(paths, folder, n):
    """``n`` small JPEG files (48 px): a partition of one of them is almost all overhead."""
    out = []
    for k in range(n):
        name = folder / f"tiny{k}.jpg"
        with Image.open(paths[k % len(paths)]) as image:
            image.convert("RGB").resize((48, 48)).save(name)
        out.append(str(name))
    return out


PLAIN = """
import sys, time, torch
from sktransfer import PretrainedFeatureExtractor, set_config
torch.set_num_threads(1)
set_config(shared_cache_size=0)
paths, start = sys.argv[1].split("|"), float(sys.argv[2])
model = PretrainedFeatureExtractor(batch_size=int(sys.argv[3]))
model.fit(paths[:1]).transform(paths[: int(sys.argv[3])])
time.sleep(max(0.0, start - time.time()))
t = time.perf_counter()
model.transform(paths)
print(len(paths) / (time.perf_counter() - t))
"""


def paired(paths, batch_size, repeats):
    """Images/s of one worker and of a plain 1-thread process, run at the same moment.

    Both meet whatever else the machine runs at that moment, so their ratio holds on a
    busy machine too.
    """
    import subprocess
    import sys

    rates = {"worker": [], "plain": []}
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, dashboard_address=None, silence_logs=40
        ) as cluster,
        Client(cluster) as client,
    ):
        model = PretrainedFeatureExtractor(batch_size=batch_size)
        out = Path(tempfile.mkdtemp())
        extract_features(paths[:batch_size], model, client=client, output=out / "warm")
        for k in range(repeats):
            start = time.time() + 20  # the plain process loads its network meanwhile
            plain = subprocess.Popen(
                [sys.executable, "-c", PLAIN, "|".join(paths), str(start), str(batch_size)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=START_ENVIRONMENT,
            )
            time.sleep(max(0.0, start - time.time()))
            t, _ = timed(
                lambda k=k: extract_features(paths, model, client=client, output=out / str(k))
            )
            rates["worker"].append(len(paths) / t)
            rates["plain"].append(float(plain.communicate()[0]))
    return {k: statistics.median(v) for k, v in rates.items()}


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=192)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--partition-size", type=int, default=48)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp())
    unique, source = photos(work)
    paths = [unique[i % len(unique)] for i in range(args.n_images)]
    torch.set_num_threads(2)
    set_config(shared_cache_size=0)  # every transform computes its images (workers do too)
    local = PretrainedFeatureExtractor(batch_size=args.batch_size).fit(paths[:1])
    local.transform(paths[: args.batch_size])  # warm-up

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        remote = PretrainedFeatureExtractor(batch_size=args.batch_size)
        run = iter(range(10**6))

        def to_folder(images, model, partition_size):
            out = work / f"run{next(run)}"
            return extract_features(
                images, model, client=client, output=out, partition_size=partition_size
            )

        def to_frame():
            frame = extract_features(
                paths, remote, client=client, partition_size=args.partition_size
            )
            return frame.compute()

        # warm-up: both workers build the network and run full batches
        to_folder(paths[: 4 * args.batch_size], remote, args.batch_size)
        times = {"in-process": [], "cluster, Parquet folder": [], "cluster, Dask DataFrame": []}
        for _ in range(args.repeats):  # interleaved, so drift hits every way alike
            t, ref = timed(lambda: local.transform(paths))
            times["in-process"].append(t)
            t, summary = timed(lambda: to_folder(paths, remote, args.partition_size))
            times["cluster, Parquet folder"].append(t)
            t, frame = timed(to_frame)
            times["cluster, Dask DataFrame"].append(t)
        written = pd.read_parquet(summary.output)
        columns = [f"f{i}" for i in range(ref.shape[1])]
        max_diff = max(
            float(np.abs(written[columns].to_numpy() - ref).max()),
            float(np.abs(frame[columns].to_numpy() - ref).max()),
        )
        assert max_diff < 1e-4, f"features disagree: max abs difference {max_diff:.2e}"

        # per-partition overhead: the same tiny images in many or few partitions
        tiny = tiny_images(unique, work, 48)
        small = PretrainedFeatureExtractor(image_size=32, batch_size=args.batch_size)
        to_folder(tiny[:4], small, 1)  # warm-up
        many, few = [], []
        for _ in range(args.repeats):
            many.append(timed(lambda: to_folder(tiny, small, 1))[0])
            few.append(timed(lambda: to_folder(tiny, small, 24))[0])
        n_workers = len(client.scheduler_info()["workers"])
    overhead = (statistics.median(many) - statistics.median(few)) * n_workers / (48 - 2)
    pair = paired(paths[:96], args.batch_size, args.repeats)

    rate = {k: args.n_images / statistics.median(v) for k, v in times.items()}
    base = rate["in-process"]
    rows = "\n".join(
        f"| {way} | {r:.1f} | {'1.00x' if way == 'in-process' else f'**{r / base:.2f}x**'} |"
        for way, r in rate.items()
    )
    n_parts = -(-args.n_images // args.partition_size)
    partition_cost = 256 * 2 / base  # one core's seconds for 256 images, from 2 threads' rate
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    write_section(
        "distributed",
        f"""## Extraction on a Dask cluster (`bench_distributed.py`)

EfficientNet-Lite0 (bundled weights), 224 px, batch {args.batch_size}, fp32, {args.n_images}
images from {source}; median of {args.repeats} interleaved runs. In-process: `transform` with
2 torch threads. Cluster: `LocalCluster` of 2 worker processes x 1 thread on the same machine,
{n_parts} partitions of {args.partition_size} images, network built on each worker
beforehand. {machine_line()}; load average at the end {load} (the machine is shared).

| way | images/s (median) | vs in-process |
|---|---|---|
{rows}

Features agree with the in-process extraction to {max_diff:.1e} (max absolute difference).

On a busy machine the two ways above meet different loads. Run at the same moment (so that
they share whatever else runs), one worker and one plain process with one torch thread
extract 96 images at **{pair["worker"]:.1f}** and **{pair["plain"]:.1f}** images/s
(**{pair["worker"] / pair["plain"]:.2f}x**, median of {args.repeats}).

Per-partition overhead: **{overhead * 1000:.0f} ms** of worker time per extra partition
(48 images of 32 px as 48 partitions: {statistics.median(many):.2f} s, as 2 partitions:
{statistics.median(few):.2f} s; scheduling, the task's arguments, the Parquet file and its
rename). A default partition of 256 photos at 224 px takes about {partition_cost:.1f} s of one
core here, so the overhead is {overhead / partition_cost:.1%} of it.""",
    )


if __name__ == "__main__":
    main()
