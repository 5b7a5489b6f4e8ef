"""Grid searches with and without the shared activation cache.

Two searches a user runs to choose settings, each timed with the cache turned off
(``sktransfer.config_context(shared_cache_size=0)``: every fold, candidate and refit runs
the pretrained network again) and on (the default), in the same run, against one fit of
the same model:

- feature transfer: ``GridSearchCV(Pipeline([PretrainedFeatureExtractor(),
  LogisticRegression()]), C in 4 values, cv=5)``: 21 fits, 20 scorings;
- fine-tuning: ``GridSearchCV(FineTunedClassifier(max_epochs=5), n_frozen in {"all", -1,
  -2} x lr in {1e-3, 3e-4}, cv=3)``: 19 fits, 18 scorings.

The shared store is emptied before each single fit and before each search with the cache
off or on ("cold"); the cached search then runs once more on the filled store ("warm"):
what is left when no image goes through the frozen network, the floor of the cached
search (the classifier's fits, the training of unfrozen groups, the bookkeeping). The
best parameters and the cross-validated scores of the two arms are compared too (the
cached arm reuses rows computed in other batches, which may differ in the last bits).

Images: ``../shared/datasets/flowers3`` (30 photos, 3 classes) with 7 augmented copies
of each (a horizontal flip and random crops, some flipped), written as JPEG files, when
present; else crops of scikit-learn's sample photos. EfficientNet-Lite0 (bundled
weights), 224 px. Run: ``python benchmarks/bench_search.py [--repeats N] [--threads N]``.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sktransfer import (
    FineTunedClassifier,
    PretrainedFeatureExtractor,
    config_context,
    load_image_folder,
)
from sktransfer._core.activations import cache_info, clear_cache

from _results import machine_line, write_section

FLOWERS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "flowers3"
COPIES = 7  # augmented copies of each photo


def augmented_photos(folder):
    """Each photo, a flipped copy and random crops (some flipped), as JPEG files in ``folder``."""
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for path, label in zip(*load_image_folder(FLOWERS), strict=True):
        photo = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        w, h = photo.size
        copies = [photo, ImageOps.mirror(photo)]
        while len(copies) < COPIES + 1:
            scale = rng.uniform(0.6, 0.9)
            cw, ch = int(w * scale), int(h * scale)
            left, top = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            crop = photo.crop((left, top, left + cw, top + ch))
            copies.append(ImageOps.mirror(crop) if rng.random() < 0.5 else crop)
        for i, image in enumerate(copies):
            target = folder / f"{Path(path).stem}_{label}_{i}.jpg"
            image.save(target, quality=90)
            paths.append(str(target))
            labels.append(label)
    return paths, np.array(labels)


def dataset(folder):
    if FLOWERS.is_dir():
        paths, labels = augmented_photos(folder)
        source = f"flowers3 with {COPIES} augmented copies of each photo ({len(paths)} JPEG files)"
        return paths, labels, source
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    images, labels = [], []
    for label, photo in zip(["temple", "flower"], load_sample_images().images, strict=True):
        for _ in range(120):
            side = int(rng.integers(200, 400))
            top = rng.integers(0, photo.shape[0] - side)
            left = rng.integers(0, photo.shape[1] - side)
            crop = Image.fromarray(photo[top : top + side, left : left + side])
            images.append(np.asarray(crop.resize((256, 256))))
            labels.append(label)
    return np.stack(images), np.array(labels), "240 crops of scikit-learn's two sample photos"


def classifier():
    return LogisticRegression(max_iter=2000)


def pipeline():
    return Pipeline([("features", PretrainedFeatureExtractor()), ("clf", classifier())])


def fine_tuning():
    return FineTunedClassifier(max_epochs=5, random_state=0)


SEARCHES = {
    "feature transfer": (pipeline, {"clf__C": [0.01, 0.1, 1.0, 10.0]}, 5),
    "fine-tuning": (fine_tuning, {"n_frozen": ["all", -1, -2], "lr": [1e-3, 3e-4]}, 3),
}
DEFAULT = 1024  # MiB: the default of sktransfer.set_config(shared_cache_size=...)


def timed(fn, shared=DEFAULT, cold=True):
    """Time ``fn()`` with the shared store of ``shared`` MiB (emptied first when ``cold``)."""
    if cold:
        clear_cache()
    with config_context(shared_cache_size=shared):
        start = time.perf_counter()
        result = fn()
        return time.perf_counter() - start, result


ARMS = ("one fit", "off", "on", "warm")
AIMS = {"feature transfer": 1.3, "fine-tuning": 4.0}  # cache on, in one fits
HEADER = (
    "| search | fits | one fit, s | cache off, s (x one fit) | cache on, s (x one fit) "
    "| aim | warm store, s (x one fit) | on less warm: the network, s (x one fit) "
    "| off / on |\n|---|---|---|---|---|---|---|---|---|"
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_search_") as folder:
        run(args, *dataset(Path(folder)))


def run(args, X, y, source):
    times = {(name, arm): [] for name in SEARCHES for arm in ARMS}
    found, kept, load, classifier_alone = {}, {}, [], []
    for _ in range(args.repeats):  # interleaved, so drift hits every arm alike
        for name, (make, grid, cv) in SEARCHES.items():
            seconds, _ = timed(lambda make=make: make().fit(X, y), shared=0)
            times[name, "one fit"].append(seconds)
            for arm, shared, cold in (
                ("off", 0, True),
                ("on", DEFAULT, True),
                ("warm", DEFAULT, False),
            ):
                search = GridSearchCV(make(), grid, cv=cv)
                seconds, search = timed(lambda search=search: search.fit(X, y), shared, cold)
                times[name, arm].append(seconds)
                found[name, arm] = search
                kept[name] = cache_info()
                load.append(os.getloadavg()[0])
                print(
                    f"{name}, {arm}: {seconds:.1f} s (one fit {times[name, 'one fit'][-1]:.1f} s)"
                )
            if name == "feature transfer":  # the classifier's own search, on the features
                features = search.best_estimator_["features"].transform(X)  # from the store
                alone = GridSearchCV(classifier(), {"C": grid["clf__C"]}, cv=cv)
                seconds, _ = timed(lambda a=alone, f=features: a.fit(f, y), cold=False)
                classifier_alone.append(seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows, checks = [], []
    for name, (_, grid, cv) in SEARCHES.items():
        n_fits = int(np.prod([len(v) for v in grid.values()])) * cv + 1
        one = med[name, "one fit"]
        network = med[name, "on"] - med[name, "warm"]
        met = "met" if med[name, "on"] / one <= AIMS[name] else "not met"
        rows.append(
            f"| {name} | {n_fits} | {one:.1f} | {med[name, 'off']:.1f} "
            f"({med[name, 'off'] / one:.1f}x) | **{med[name, 'on']:.1f} "
            f"({med[name, 'on'] / one:.1f}x)** | ≤ {AIMS[name]}x: {met} "
            f"| {med[name, 'warm']:.1f} ({med[name, 'warm'] / one:.1f}x) "
            f"| {network:.1f} ({network / one:.1f}x) "
            f"| {med[name, 'off'] / med[name, 'on']:.1f}x |"
        )
        off, on = found[name, "off"], found[name, "on"]
        diff = np.abs(off.cv_results_["mean_test_score"] - on.cv_results_["mean_test_score"]).max()
        same = "the same" if off.best_params_ == on.best_params_ else "DIFFERENT"
        if name == "feature transfer":
            floor = (
                f" `LogisticRegression`'s own search on the same features (no network) takes "
                f"{statistics.median(classifier_alone):.1f} s of the warm search's "
                f"{med[name, 'warm']:.1f} s."
            )
        else:  # what a fit costs when the frozen output comes from the store: training
            warm = found[name, "warm"].cv_results_
            by_frozen = {}
            for params, seconds in zip(warm["params"], warm["mean_fit_time"], strict=True):
                by_frozen.setdefault(params["n_frozen"], []).append(seconds)
            floor = (
                " In the warm search a fit took "
                + ", ".join(
                    f"{statistics.mean(v):.1f} s with `n_frozen={k!r}`"
                    for k, v in by_frozen.items()
                )
                + f" (on two thirds of the images), against {one:.1f} s for one cold fit."
            )
        checks.append(
            f"- {name}: best parameters {same} (`{on.best_params_}` with the cache, "
            f"`{off.best_params_}` without); mean cross-validated accuracies differ by at "
            f"most {diff:.4f} (best {on.best_score_:.3f} with, {off.best_score_:.3f} "
            f"without). The store held {kept[name]['rows']} rows, "
            f"{kept[name]['nbytes'] / 2**20:.0f} MB, after the search.{floor}"
        )
    rows, checks = "\n".join(rows), "\n".join(checks)
    write_section(
        "search",
        f"""## Grid searches and the shared activation cache (`bench_search.py`)

{source}; EfficientNet-Lite0 (bundled weights), 224 px, batch 32. Each search is timed
with the shared cache off (`sktransfer.set_config(shared_cache_size=0)`) and on (the
default, {DEFAULT} MB),
against one fit of the same model (cache off), each from an empty store; "warm store"
runs the cached search again on the store it filled: what remains when no image goes
through the frozen network (the classifier's fits, the training of unfrozen groups, the
bookkeeping), and "on less warm" is then what the network itself cost the cached
search. The aims are those the search cache was built for. Median of {args.repeats}
interleaved runs. {machine_line()};
the machine was shared (load average {statistics.median(load):.1f} on its
{os.cpu_count()} cores during the searches).

{HEADER}
{rows}

Feature transfer: `GridSearchCV(Pipeline([PretrainedFeatureExtractor(),
LogisticRegression()]), {{"clf__C": [0.01, 0.1, 1, 10]}}, cv=5)`. Fine-tuning:
`GridSearchCV(FineTunedClassifier(max_epochs=5, random_state=0), {{"n_frozen": ["all", -1,
-2], "lr": [1e-3, 3e-4]}}, cv=3)`. With the cache on, each image goes through the
network once per search: the folds, the candidates and the refit take its features (or
the output of the frozen stages, from which a candidate that freezes fewer groups
continues) from the store, and so does scoring.

{checks}""",
    )


if __name__ == "__main__":
    main()
