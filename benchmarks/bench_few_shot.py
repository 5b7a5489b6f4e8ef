"""Few-shot and zero-shot text classification on SUBJ, TREC, CR and MPQA (SetFit's protocol).

N sentences per class are drawn from the training part with seeds 0, 1, ...; every method
is scored on the same held-out sentences (up to ``--n-test`` of the rest, or TREC's
official test set). Methods: frozen MiniLM embeddings + logistic regression;
``FineTunedClassifier()`` with its defaults; ``FewShotTextClassifier()`` (contrastive
tuning, SetFit's method); ``ZeroShotTextClassifier`` from the class names alone (N = 0)
and with the N labelled sentences; and SetFit itself (the ``setfit`` package, with the same
bundled model and its default training arguments) when it can be imported, as the anchor.
Accuracy mean ± standard deviation over the draws, and the median wall time of a fit and a
prediction. A second table times ``FewShotTextClassifier().fit`` at N = 8, 64 and 512 per
class on SUBJ: its cost should grow linearly with N.

``setfit`` is not a dependency of sktransfer; to include it, run the benchmark with a Python
that has both installed.

Needs ``../shared/datasets/text_subj_trec`` and ``text_cr_mpqa``.
Run: ``python benchmarks/bench_few_shot.py``.
"""

import argparse
import statistics
import tempfile
import time
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sktransfer import (
    FewShotTextClassifier,
    FineTunedClassifier,
    PretrainedFeatureExtractor,
    ZeroShotTextClassifier,
)

from _results import machine_line, write_section
from _text_data import MODEL, available, load_line, polarity, subj, trec

# what the class codes mean (TREC's documentation), for the zero-shot descriptions
TREC_NAMES = {
    "ABBR": "abbreviation",
    "DESC": "description",
    "ENTY": "entity",
    "HUM": "person",
    "LOC": "location",
    "NUM": "number",
}


def sets(n_test, rng):
    """Return ``{name: (X_train, y_train, X_test, y_test, label names)}``."""
    out = {}
    for name, (X, y) in {
        "SUBJ": subj(),
        "CR": polarity("custrev"),
        "MPQA": polarity("mpqa"),
    }.items():
        X = np.asarray(X, dtype=object)
        test = rng.choice(len(X), min(n_test, len(X) // 2), replace=False)
        train = np.setdiff1d(np.arange(len(X)), test)
        out[name] = (X[train], y[train], X[test], y[test], None)
    X_train, y_train = trec("train_5500.label")
    X_test, y_test = trec("TREC_10.label")
    out["TREC"] = (
        np.asarray(X_train, dtype=object),
        y_train,
        np.asarray(X_test, dtype=object),
        y_test,
        TREC_NAMES,
    )
    return out


def draw(y, n, seed):
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.choice(np.flatnonzero(y == c), n, replace=False) for c in np.unique(y)]
    )


def methods(seed, names, n, setfit_max_n):
    labels = None if names is None else names
    anchor = SETFIT and n <= setfit_max_n
    return {
        "frozen MiniLM + LR": lambda: make_pipeline(
            PretrainedFeatureExtractor(MODEL), LogisticRegression(max_iter=1000)
        ),
        "`FineTunedClassifier()`": lambda: FineTunedClassifier(MODEL, random_state=seed),
        "`FewShotTextClassifier()`": lambda: FewShotTextClassifier(MODEL, random_state=seed),
        "`ZeroShotTextClassifier` + the N texts": lambda: ZeroShotTextClassifier(labels),
        **({"SetFit 1.x (`setfit` package)": lambda: SetFitAnchor(seed)} if anchor else {}),
    }


class SetFitAnchor:
    """SetFit (``setfit`` package) with the bundled model, its default training arguments."""

    def __init__(self, seed):
        self.seed = seed

    def fit(self, X, y):
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments

        from sktransfer.backbones._text_models import model_folder

        self.classes_, codes = np.unique(y, return_inverse=True)
        self.model_ = SetFitModel.from_pretrained(str(model_folder(MODEL)), device="cpu")
        args = TrainingArguments(
            output_dir=tempfile.mkdtemp(),
            seed=self.seed,
            report_to="none",
            save_strategy="no",
            show_progress_bar=False,
        )
        data = Dataset.from_dict({"text": list(X), "label": codes.tolist()})
        Trainer(model=self.model_, args=args, train_dataset=data).train()
        return self

    def predict(self, X):
        return self.classes_[np.asarray(self.model_.predict(list(X)))]


def setfit_available():
    try:
        import setfit  # noqa: F401
    except ImportError:
        return False
    return True


SETFIT = setfit_available()


def score(model, X_train, y_train, X_test, y_test):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # truncation reports
        model.fit(list(X_train), y_train)
        accuracy = float((model.predict(list(X_test)) == y_test).mean())
    return accuracy, time.perf_counter() - start


def zero_shot(X_test, y_test, names):
    labels = sorted(set(y_test)) if names is None else names
    start = time.perf_counter()
    model = ZeroShotTextClassifier(labels).fit()
    accuracy = float((model.predict(list(X_test)) == y_test).mean())
    return accuracy, time.perf_counter() - start


def scaling(data, sizes):
    """Seconds of ``FewShotTextClassifier().fit`` at each N per class (seed 0)."""
    X_train, y_train, *_ = data
    lines = ["| N per class | texts | fit seconds | seconds per text |", "|---|---|---|---|"]
    for n in sizes:
        idx = draw(y_train, n, 0)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            FewShotTextClassifier(MODEL, random_state=0).fit(list(X_train[idx]), y_train[idx])
        seconds = time.perf_counter() - start
        lines.append(f"| {n} | {len(idx)} | {seconds:.1f} | {seconds / len(idx):.3f} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def run_set(data, shots, seeds, setfit_max_n):
    X_train, y_train, X_test, y_test, names = data
    rows = {}
    for n in shots:
        for seed in seeds[n]:
            idx = draw(y_train, n, seed)
            for method, make in methods(seed, names, n, setfit_max_n).items():
                result = score(make(), X_train[idx], y_train[idx], X_test, y_test)
                rows.setdefault((n, method), []).append(result)
                print(n, seed, method, f"{100 * result[0]:.1f}% {result[1]:.0f} s", flush=True)
    rows[(0, "`ZeroShotTextClassifier` (class names only)")] = [zero_shot(X_test, y_test, names)]
    rows.update(guesses(y_test))
    return rows


def guesses(y_test):
    """The zero-shot rows' yardsticks: a uniform guess, and the best constant guess."""
    _, counts = np.unique(y_test, return_counts=True)
    return {
        (0, "chance (a uniform guess)"): [(1 / len(counts), 0.0)],
        (0, "majority (the test set's most frequent class)"): [(counts.max() / counts.sum(), 0.0)],
    }


def table(results):
    header = "| set | N per class | method | accuracy % (mean ± std) | draws | seconds |"
    lines = [header]
    lines.append("|---|---|---|---|---|---|")
    for name, rows in results.items():
        for (n, method), values in sorted(rows.items(), key=lambda kv: kv[0][0]):
            acc = 100 * np.array([v[0] for v in values])
            seconds = statistics.median(v[1] for v in values)
            spread = f"{acc.mean():.1f} ± {acc.std():.1f}" if len(acc) > 1 else f"{acc.mean():.1f}"
            lines.append(f"| {name} | {n} | {method} | {spread} | {len(acc)} | {seconds:.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--seeds-8", type=int, default=5)
    parser.add_argument("--seeds-64", type=int, default=2)
    parser.add_argument("--sets", default="SUBJ,TREC,CR,MPQA")
    parser.add_argument("--scaling", default="8,64,512", help="N per class to time on SUBJ")
    parser.add_argument(
        "--setfit-max-n", type=int, default=64, help="run SetFit for N up to this (its cost)"
    )
    args = parser.parse_args()
    if not available():
        raise SystemExit(
            "The SentEval sets are not here (../shared/datasets): nothing to measure."
        )
    data = sets(args.n_test, np.random.default_rng(0))
    seeds = {8: range(args.seeds_8), 64: range(args.seeds_64)}
    results = {
        name: run_set(data[name], (8, 64), seeds, args.setfit_max_n)
        for name in args.sets.split(",")
    }
    sizes = [int(n) for n in args.scaling.split(",") if n]
    cost = scaling(data["SUBJ"], sizes) if sizes else "(not run)"
    draws = ", ".join(
        f"seeds 0..{count - 1} for N = {n}"
        for n, count in ((8, args.seeds_8), (64, args.seeds_64))
        if count
    )
    anchor = (
        f"SetFit ran as the anchor for N up to {args.setfit_max_n}"
        if SETFIT
        else "the `setfit` package was not importable"
    )
    write_section(
        "few_shot",
        f"""## Few-shot and zero-shot text (`bench_few_shot.py`)

SetFit's protocol with the bundled all-MiniLM-L6-v2: N sentences per class drawn from the
training part ({draws}), scored on
{args.n_test} held-out sentences of each set (TREC: its official 500-question test set). Every
method sees the same draws; {anchor}. {machine_line()}; {load_line()}.

{table(results)}

**Cost against N** (`FewShotTextClassifier()` fit on SUBJ, seed 0; pairs per text are
bounded, so the time per text should stay flat):

{cost}
""",
    )


if __name__ == "__main__":
    main()
