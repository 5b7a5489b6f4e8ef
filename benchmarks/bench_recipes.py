"""Every candidate ``n_frozen="auto"`` considers, set by hand, against the automatic choice.

On each draw of N inputs per class (seeds 0, 1, ...), fitted on the same inputs and scored
on the same held-out ones:

- ``make_pipeline(PretrainedFeatureExtractor(), LogisticRegression(max_iter=1000))``;
- ``FineTunedClassifier(n_frozen=c)`` for each candidate ``c`` of the search (``"all"``,
  ``-1``, ``-2``, ``-3``), otherwise with the defaults;
- ``FineTunedClassifier(n_frozen="auto")``, the default: the climb from the head alone
  on held-out rows (on held-out log-loss), then the refit.

The table gives accuracy (mean ± standard deviation over the draws) and median seconds of
a fit; below it, what ``"auto"`` chose on each draw (and which candidates it tried) and
its fit's seconds as a ratio to the fit of the candidate it chose, timed in the same
draw. The process's stores of frozen features and of converted networks are emptied
before every fit, so that each starts cold (the search shares them between its own
candidates, as it does for a user). The sets are the shared development copies
(``../shared/datasets``), as ``set:N`` (N per class): flowers3 and the four
Office-Caltech10 domains with EfficientNet-Lite0 at 224 px, scored on the photos not
drawn (at most 300); SUBJ, TREC, CR and MPQA with all-MiniLM-L6-v2, scored on the
held-out sentences of ``bench_small_data.py`` (TREC: its official test questions).
Nothing here chose a default.

Run: ``python benchmarks/bench_recipes.py [--sets webcam:10,TREC:64] [--seeds 2]``.
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
from bench_small_data import DATASETS, split, text_sets

CANDIDATES = ("all", -1, -2, -3)
METHODS = ["frozen features + LR"] + [f"n_frozen={c!r}" for c in CANDIDATES]
METHODS += ["n_frozen='auto'"]
IMAGES = "efficientnet_lite0"
OFFICE = ("amazon", "caltech10", "dslr", "webcam")
TEXTS = ("SUBJ", "TREC", "CR", "MPQA")
# set:N per class, in the order they run; the photos not drawn are the test set (at most
# IMAGE_TEST of them), the sentences are scored on bench_small_data's held-out ones
PLAN = "flowers3:5,webcam:10,dslr:5,amazon:10,caltech10:10,TREC:8,SUBJ:8,CR:8,MPQA:8,TREC:64"
IMAGE_TEST = 300


def load(name):
    """Return ``(pool X, pool y, test X or None, test y or None, backbone)`` of one set."""
    if name in TEXTS:
        return (*text_sets()[name], _text_data.MODEL)
    folder = DATASETS / ("flowers3" if name == "flowers3" else f"office_caltech10/{name}")
    X, y = (np.asarray(a) for a in load_image_folder(folder))
    return X, y, None, None, IMAGES


def make(method, backbone, seed):
    if method == "frozen features + LR":
        return make_pipeline(
            PretrainedFeatureExtractor(backbone), LogisticRegression(max_iter=1000)
        )
    n_frozen = method.split("=", 1)[1].strip("'")
    n_frozen = n_frozen if n_frozen in ("all", "auto") else int(n_frozen)
    return FineTunedClassifier(backbone, n_frozen=n_frozen, random_state=seed)


def run_set(name, n, seeds, draw=None, backbone=None, make=make, methods=METHODS):
    """Fit every method on every draw of ``name``; return its rows of the tables.

    ``draw(seed)`` returns ``(X, y, X_test, y_test)`` and ``backbone`` names the network
    (by default, N per class of the set :func:`load` returns, and its backbone);
    ``make(method, backbone, seed)`` returns the unfitted model; the last of ``methods``
    is ``n_frozen='auto'``.
    """
    if draw is None:
        *data, backbone = load(name)
        draw = lambda seed: split(*data, n, seed, max_test=IMAGE_TEST)  # noqa: E731
    scores = {m: [] for m in methods}
    seconds = {m: [] for m in methods}
    choices = []
    for seed in seeds:
        X, y, X_test, y_test = draw(seed)
        for method in methods:
            clear_cache()  # every fit computes its own frozen features
            COMPILED.clear()  # and converts its own networks (a user's single fit does)
            start = time.perf_counter()
            model = make(method, backbone, seed).fit(X, y)
            seconds[method].append(time.perf_counter() - start)
            scores[method].append(100 * model.score(X_test, y_test))
        chosen = model.best_recipe_["n_frozen"]  # the last model fitted is the "auto" one
        ratio = seconds[methods[-1]][-1] / seconds[f"n_frozen={chosen!r}"][-1]
        tried = model.recipe_results_["candidate"]
        how = f"tried {', '.join(map(repr, tried))}" if len(tried) > 1 else "without a search"
        choices.append((seed, f"{chosen!r} ({how})", ratio))
        print(name, n, seed, {m: round(s[-1], 1) for m, s in scores.items()}, chosen, flush=True)
    label = f"{name}, N={n} ({len(y)} train, {len(y_test)} test, {len(seeds)} draws)"
    cells = [f"{np.mean(s):.1f} ± {np.std(s):.1f}" for s in scores.values()]
    times = [f"{statistics.median(s):.0f}" for s in seconds.values()]
    return label, cells, times, choices


def table(done, methods=METHODS):
    head = "| data | " + " | ".join(methods) + " |"
    rule = "|---" * (len(methods) + 1) + "|"
    lines = [head, rule] + [f"| {r[0]} | " + " | ".join(r[1]) + " |" for r in done]
    lines += ["", "Median seconds of a fit:", "", head, rule]
    lines += [f"| {r[0]} | " + " | ".join(r[2]) + " |" for r in done]
    lines += [
        "",
        "What `n_frozen='auto'` chose, and its fit's seconds against a fit of its choice:",
    ]
    lines += ["", "| data | seed | chose | seconds, auto / its choice |", "|---|---|---|---|"]
    lines += [
        f"| {r[0].split(' (')[0]} | {seed} | {choice} | {ratio:.1f}x |"
        for r in done
        for seed, choice, ratio in r[3]
    ]
    ratios = [ratio for r in done for *_, ratio in r[3]]
    lines += ["", f"Median cost ratio {statistics.median(ratios):.1f}x over {len(ratios)} draws."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sets", default=PLAN, help="set:N per class (or set:N:draws), comma-separated"
    )
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    if not (DATASETS / "office_caltech10").is_dir():
        raise SystemExit("The shared data sets are not here (../shared/datasets).")
    warnings.filterwarnings("ignore", message=".*truncated.*")
    done = []
    for item in args.sets.split(","):
        name, n, *seeds = item.split(":")  # set:N, or set:N:seeds for fewer or more draws
        done.append(run_set(name, int(n), range(int(seeds[0]) if seeds else args.seeds)))
        write_section(
            "recipes",
            f"""## The candidates of `n_frozen="auto"` by hand, and its choice (`bench_recipes.py`)

`python benchmarks/bench_recipes.py --sets {args.sets} --seeds {args.seeds}`, {machine_line()};
{_text_data.load_line()}. Accuracy (%) on held-out inputs, mean ± standard deviation
over draws of N inputs per class (seeds 0, 1, ...; each row says how many); every
method fits the same draw with the defaults, except the `n_frozen` named. Photos:
EfficientNet-Lite0 at 224 px, scored on the photos not drawn (at most 300). Sentences:
all-MiniLM-L6-v2, scored on held-out sentences (TREC: its official test questions). The
stores of frozen features and converted networks are emptied before every fit.

{table(done)}
""",
        )


if __name__ == "__main__":
    main()
