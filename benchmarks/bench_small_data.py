"""Few labelled inputs: fine-tuning's defaults against frozen features + logistic regression.

SetFit's few-shot protocol (Tunstall et al., 2022): N inputs per class drawn from the
training pool with seeds 0..4, scored on held-out inputs; mean and standard deviation
over the draws. The sets are the shared development copies (``../shared/datasets``):

- text, with the bundled all-MiniLM-L6-v2, N = 8 and 64: SUBJ (2 classes), TREC (6
  coarse question types; trained from ``train_5500``, scored on ``TREC_10``), CR (2) and
  MPQA (2). SUBJ, CR and MPQA are scored on 1,000 held-out sentences drawn once (seed
  1234) and never trained on; TREC on its 500 test questions;
- photos, with the bundled EfficientNet-Lite0 at 224 px: Office-Caltech10's ``amazon``
  domain (10 classes, N = 10, scored on 300 held-out photos drawn once) and flowers3
  (3 classes, N = 5, scored on the other 15).

Each draw fits, on the same inputs:

- ``make_pipeline(PretrainedFeatureExtractor(), LogisticRegression(max_iter=1000))``:
  frozen features + LR, the feature-transfer baseline (scikit-learn's default ``C=1``,
  to convergence);
- ``FineTunedClassifier(head_init="zeros", max_epochs=10)``: the defaults before the
  probe and the training budget (a zero head, 10 epochs);
- ``FineTunedClassifier(head_init="zeros")``: the training budget alone
  (``max_epochs="auto"``: at least 100 optimiser steps);
- ``FineTunedClassifier()``: the defaults the probe and the budget made
  (``head_init="probe"``, ``max_epochs="auto"``).

All three fine-tuned ones train the head alone (``n_frozen="all"``, the default until
``n_frozen="auto"`` replaced it: ``bench_recipes.py`` measures that one).

Nothing here chose a default: the probe's regularisation is scikit-learn's (``C=1``) and
the step count a round number (see the user guide, "What about small data?"). Run:
``python benchmarks/bench_small_data.py`` (about 15 minutes on 2 CPU cores).
"""

import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor, load_image_folder

import _text_data
from _results import machine_line, write_section

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SEEDS = range(5)
TEXT_TEST = 1000
IMAGE_TEST = 300
METHODS = {
    "frozen features + LR": None,
    "before: zeros, 10 epochs": {"n_frozen": "all", "head_init": "zeros", "max_epochs": 10},
    "budget alone: zeros, auto": {"n_frozen": "all", "head_init": "zeros"},
    "now: defaults (n_frozen='all')": {"n_frozen": "all"},
}


def _lines(path):
    text = path.read_text(encoding="latin-1")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _two_files(folder, negative, positive):
    neg, pos = _lines(folder / negative), _lines(folder / positive)
    return neg + pos, np.array(["negative"] * len(neg) + ["positive"] * len(pos))


def _held_out(X, y, n_test):
    """Split ``(X, y)`` once (seed 1234) into a training pool and ``n_test`` test rows."""
    order = np.random.default_rng(1234).permutation(len(y))
    test, pool = order[:n_test], order[n_test:]
    take = (lambda rows: [X[i] for i in rows]) if isinstance(X, list) else (lambda r: X[r])
    return take(pool), y[pool], take(test), y[test]


def text_sets():
    """``{name: (pool X, pool y, test X, test y)}`` for the four sentence tasks."""
    text = DATASETS / "text_subj_trec"
    cr_mpqa = DATASETS / "text_cr_mpqa"
    return {
        "SUBJ": _held_out(*_text_data.subj(), TEXT_TEST),
        "TREC": (*_text_data.trec("train_5500.label"), *_text_data.trec("TREC_10.label")),
        "CR": _held_out(*_two_files(cr_mpqa, "custrev.neg", "custrev.pos"), TEXT_TEST),
        "MPQA": _held_out(*_two_files(cr_mpqa, "mpqa.neg", "mpqa.pos"), TEXT_TEST),
    } if (text / "subj.objective").is_file() else {}  # fmt: skip


def image_sets():
    """``{name: (pool, pool labels, test, test labels)}`` for the two photo sets."""
    amazon = load_image_folder(DATASETS / "office_caltech10" / "amazon")
    flowers = load_image_folder(DATASETS / "flowers3")
    amazon = tuple(np.asarray(a) for a in amazon)
    flowers = tuple(np.asarray(a) for a in flowers)
    return {
        "Office-Caltech10 amazon": _held_out(*amazon, IMAGE_TEST),
        "flowers3": (*flowers, None, None),  # the photos not drawn are the test set
    }


def draw(y, n, seed):
    """Indices of ``n`` rows per class (all of a class that has fewer), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    rows = [
        rng.choice(np.flatnonzero(y == c), min(n, int((y == c).sum())), replace=False)
        for c in np.unique(y)
    ]
    return np.sort(np.concatenate(rows))


def split(pool_X, pool_y, X_test, y_test, n, seed, max_test=None):
    """Return ``(X, y, X_test, y_test)``: ``n`` per class drawn with ``seed``, the test rows.

    Without a test set, the inputs not drawn are one (at most ``max_test`` of them, drawn
    once with seed 1234).
    """
    train = draw(pool_y, n, seed)
    listed = isinstance(pool_X, list)
    take = (lambda r: [pool_X[i] for i in r]) if listed else (lambda r: pool_X[r])
    if X_test is None:
        rest = np.setdiff1d(np.arange(len(pool_y)), train)
        if max_test is not None:
            rest = np.random.default_rng(1234).permutation(rest)[:max_test]
        return take(train), pool_y[train], take(rest), pool_y[rest]
    return take(train), pool_y[train], X_test, y_test


def fit_and_score(method, backbone, X, y, X_test, y_test, seed):
    """Return ``(accuracy, seconds)`` of one method on one draw."""
    start = time.perf_counter()
    settings = METHODS[method]
    if settings is None:
        model = make_pipeline(
            PretrainedFeatureExtractor(backbone), LogisticRegression(max_iter=1000)
        )
    else:
        model = FineTunedClassifier(backbone, random_state=seed, **settings)
    model.fit(X, y)
    return model.score(X_test, y_test), time.perf_counter() - start


def run_set(name, data, backbone, shots):
    """Score every method on every draw; return the table rows of this set."""
    pool_X, pool_y, X_test, y_test = data
    rows = []
    for n in shots:
        scores = {method: [] for method in METHODS}
        seconds = {method: [] for method in METHODS}
        for seed in SEEDS:
            X, y, Xt, yt = split(pool_X, pool_y, X_test, y_test, n, seed)
            for method in METHODS:
                accuracy, spent = fit_and_score(method, backbone, X, y, Xt, yt, seed)
                scores[method].append(100 * accuracy)
                seconds[method].append(spent)
        cells = [f"{np.mean(s):.1f} ± {np.std(s):.1f}" for s in scores.values()]
        times = [f"{np.median(s):.1f}" for s in seconds.values()]
        rows.append((f"{name}, N={n} ({len(y)} train)", cells, times))
        print(rows[-1], flush=True)
    return rows


def table(rows):
    names = list(METHODS)
    lines = [
        "| data (test inputs) | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells, _ in rows]
    lines += ["", "Median seconds per draw (fit + scoring the test inputs):", ""]
    lines += [lines[0], lines[1]]
    lines += [f"| {label} | " + " | ".join(times) + " |" for label, _, times in rows]
    return "\n".join(lines)


def main():
    warnings.filterwarnings("ignore", message=".*truncated.*")
    start = time.perf_counter()
    rows = []
    texts = text_sets()
    for name, data in texts.items():
        rows += run_set(name, data, _text_data.MODEL, (8, 64))
    for name, data in image_sets().items():
        rows += run_set(name, data, "efficientnet_lite0", (10,) if "amazon" in name else (5,))
    minutes = (time.perf_counter() - start) / 60
    text_note = "" if texts else "The sentence sets were not found: photos only. "
    write_section(
        "small_data",
        f"""## Few labelled inputs: fine-tuning's defaults against frozen features + LR

`python benchmarks/bench_small_data.py`, {machine_line()}; {_text_data.load_line()}.
Accuracy (%) on held-out inputs, mean ± standard deviation over 5 draws of N inputs per
class (seeds 0-4, SetFit's protocol). Text: all-MiniLM-L6-v2; SUBJ, CR and MPQA scored on
{TEXT_TEST} held-out sentences, TREC on its 500 test questions. Photos: EfficientNet-Lite0
at 224 px; Office-Caltech10 `amazon` scored on {IMAGE_TEST} held-out photos, flowers3 on
the 15 photos not drawn. "before" is the former defaults (a zero head, 10 epochs);
"budget alone" a zero head with `max_epochs="auto"` (at least 100 optimiser steps);
"now" today's defaults (`n_frozen="all"`, the head started by the linear probe,
`max_epochs="auto"`). {text_note}Whole run: {minutes:.0f} minutes.

{table(rows)}
""",
    )


if __name__ == "__main__":
    main()
