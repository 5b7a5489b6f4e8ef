"""Every candidate ``n_frozen="auto"`` considers, set by hand, against the automatic choice.

On each draw of N inputs per class (seeds 0, 1, ...), fitted on the same inputs and scored
on the same held-out ones:

- ``make_pipeline(PretrainedFeatureExtractor(), LogisticRegression(max_iter=1000))``;
- ``FineTunedClassifier(n_frozen=c)`` for each candidate ``c`` of the search (``"all"``,
  the default, and ``-1``, ``-2``, ``-3``), otherwise with the defaults;
- ``FineTunedClassifier(n_frozen="auto")``: the climb from the head alone on held-out
  rows, then the refit.

The table gives accuracy (mean ± standard deviation over the draws) and median seconds of
fit + scoring; below it, what ``"auto"`` chose on each draw and its cost as a ratio to the
fit of the candidate it chose, timed in the same draw. The process's stores of frozen
features and of converted networks are emptied before every fit, so that each starts
cold (the search shares them between its own candidates, as it does for a user). The
sets are the shared development copies (``../shared/datasets``): three Office-Caltech10
domains with EfficientNet-Lite0 at 224 px, and TREC with all-MiniLM-L6-v2. Nothing here
chose a default.

Run: ``python benchmarks/bench_recipes.py [--sets amazon,caltech,webcam,TREC] [--seeds 2]``.
Each finished set is written to ``RESULTS.md`` at once.
"""

import argparse
import statistics
import time
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor, load_image_folder
from sktransfer._core.activations import clear_cache
from sktransfer._core.engine import COMPILED

import _text_data
from _results import machine_line, write_section
from bench_small_data import DATASETS, _held_out, draw

CANDIDATES = ("all", -1, -2, -3)
METHODS = ["frozen features + LR"] + [f"n_frozen={c!r}" for c in CANDIDATES]
METHODS += ["n_frozen='auto'"]
IMAGES = "efficientnet_lite0"
# N per class and held-out inputs for each set (webcam has 295 photos in all)
PLAN = {
    "amazon": (10, 300),
    "caltech": (10, 300),
    "webcam": (10, 150),
    "TREC": (64, None),  # scored on its 500 official test questions
}


def load(name):
    """Return ``(pool X, pool y, test X, test y, backbone)`` of one set."""
    if name == "TREC":
        return (*_text_data.trec("train_5500.label"), *_text_data.trec("TREC_10.label")), (
            _text_data.MODEL
        )
    X, y = (np.asarray(a) for a in load_image_folder(DATASETS / "office_caltech10" / name))
    return _held_out(X, y, PLAN[name][1]), IMAGES


def make(method, backbone, seed):
    if method == "frozen features + LR":
        return make_pipeline(
            PretrainedFeatureExtractor(backbone), LogisticRegression(max_iter=1000)
        )
    n_frozen = method.split("=", 1)[1].strip("'")
    n_frozen = n_frozen if n_frozen in ("all", "auto") else int(n_frozen)
    return FineTunedClassifier(backbone, n_frozen=n_frozen, random_state=seed)


def run_set(name, seeds):
    (pool_X, pool_y, X_test, y_test), backbone = load(name)
    n = PLAN[name][0]
    scores = {m: [] for m in METHODS}
    seconds = {m: [] for m in METHODS}
    choices = []
    for seed in seeds:
        rows = draw(pool_y, n, seed)
        X = [pool_X[i] for i in rows] if isinstance(pool_X, list) else pool_X[rows]
        y = pool_y[rows]
        for method in METHODS:
            clear_cache()  # every fit computes its own frozen features
            COMPILED.clear()  # and converts its own networks (a user's single fit does)
            start = time.perf_counter()
            model = make(method, backbone, seed).fit(X, y)
            scores[method].append(100 * model.score(X_test, y_test))
            seconds[method].append(time.perf_counter() - start)
        chosen = model.best_recipe_["n_frozen"]  # the last model fitted is the "auto" one
        ratio = seconds[METHODS[-1]][-1] / seconds[f"n_frozen={chosen!r}"][-1]
        searched = len(model.recipe_results_["candidate"]) > 1  # else: too few rows, "all"
        choices.append((seed, chosen if searched else f"{chosen!r}, without a search", ratio))
        print(name, seed, {m: round(s[-1], 1) for m, s in scores.items()}, chosen, flush=True)
    label = f"{name}, N={n} ({len(y)} train, {len(y_test)} test)"
    cells = [f"{np.mean(s):.1f} ± {np.std(s):.1f}" for s in scores.values()]
    times = [f"{statistics.median(s):.0f}" for s in seconds.values()]
    return label, cells, times, choices


def table(done):
    head = "| data | " + " | ".join(METHODS) + " |"
    rule = "|---" * (len(METHODS) + 1) + "|"
    lines = [head, rule] + [f"| {r[0]} | " + " | ".join(r[1]) + " |" for r in done]
    lines += ["", "Median seconds per draw (fit + scoring the held-out inputs):", "", head, rule]
    lines += [f"| {r[0]} | " + " | ".join(r[2]) + " |" for r in done]
    lines += ["", "What `n_frozen='auto'` chose, and its cost against one fit of its choice:", ""]
    lines += ["| data | seed | chose | seconds, auto / its choice |", "|---|---|---|---|"]
    lines += [
        f"| {r[0].split(',')[0]} | {seed} | {choice} | {ratio:.1f}x |"
        for r in done
        for seed, choice, ratio in r[3]
    ]
    ratios = [ratio for r in done for *_, ratio in r[3]]
    lines += ["", f"Median cost ratio {statistics.median(ratios):.1f}x over {len(ratios)} draws."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(PLAN))
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    if not (DATASETS / "office_caltech10").is_dir():
        raise SystemExit("The shared data sets are not here (../shared/datasets).")
    warnings.filterwarnings("ignore", message=".*truncated.*")
    done = []
    for name in args.sets.split(","):
        done.append(run_set(name, range(args.seeds)))
        write_section(
            "recipes",
            f"""## The candidates of `n_frozen="auto"` by hand, and its choice (`bench_recipes.py`)

`python benchmarks/bench_recipes.py --sets {args.sets} --seeds {args.seeds}`, {machine_line()};
{_text_data.load_line()}. Accuracy (%) on held-out inputs, mean ± standard deviation
over draws of N inputs per class (seeds 0-{args.seeds - 1}); every method fits the same draw
with the defaults, except the `n_frozen` named. Photos: EfficientNet-Lite0 at 224 px.
TREC: all-MiniLM-L6-v2, scored on its official test questions.

{table(done)}
""",
        )


if __name__ == "__main__":
    main()
