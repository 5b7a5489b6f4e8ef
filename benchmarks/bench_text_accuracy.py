"""Text classification accuracy: TF-IDF, frozen MiniLM embeddings and fine-tuned MiniLM.

Two classic sentence tasks (the SentEval releases in ``../shared/datasets/text_subj_trec``):
SUBJ (subjective or objective movie-review sentences, scored by cross-validation) and TREC
(6 coarse question types, ``train_5500`` -> ``TREC_10``). Three ways, each timed:

- TF-IDF (words and word pairs) + logistic regression;
- ``make_pipeline(PretrainedFeatureExtractor("all-MiniLM-L6-v2"), LogisticRegression)``;
- ``FineTunedClassifier("all-MiniLM-L6-v2")`` with ``n_frozen`` searched by
  ``GridSearchCV`` (head only, or the last two layers too); and the head alone, trained
  longer than the search's candidate.

Both logistic regressions choose their ``C`` by inner cross-validation
(``LogisticRegressionCV``). Fine-tuning costs far more on a CPU, so it trains on a
subsample (``--finetune-n``), and the two other ways are scored on the same subsample
as well, so that each comparison is like with like. The published numbers (frozen
sentence embeddings + logistic regression, SentEval protocol) are those quoted in the
datasets' README. Run: ``python benchmarks/bench_text_accuracy.py`` (about 12 minutes on
2 CPU cores shared with other jobs; ``--finetune-n`` and ``--subj-n`` shorten it).
"""

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    cross_val_score,
    train_test_split,
)
from sklearn.pipeline import make_pipeline

from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor
from sktransfer._core.activations import clear_cache

import _text_data
from _results import machine_line, write_section

PUBLISHED = {
    "SUBJ": "InferSent 92.4-92.7, SkipThought 93.7, fastText-BoV 91.8 (10-fold CV, 10,000)",
    "TREC": "InferSent 88.2-90.8, SkipThought 88.4, fastText-BoV 83.4 (5,452 -> 500)",
}


def _logistic(Cs):
    # C chosen by inner 3-fold CV on accuracy (plain L2 penalty)
    return LogisticRegressionCV(
        Cs=Cs,
        cv=3,
        l1_ratios=(0.0,),
        scoring="accuracy",
        use_legacy_attributes=False,
        max_iter=2000,
    )


HEAD_NOTE = '`FineTunedClassifier(n_frozen="all")`, 5x the epochs, lr 5e-2'


def tfidf():
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), _logistic([1, 10, 100])
    )


def frozen():
    return make_pipeline(
        PretrainedFeatureExtractor(_text_data.MODEL), _logistic([0.1, 1, 10, 100])
    )


def fine_tuned(args):
    return GridSearchCV(
        FineTunedClassifier(
            _text_data.MODEL,
            max_epochs=args.epochs,
            lr=1e-2,
            backbone_lr=2e-5,
            max_length=args.max_length,
            random_state=0,
        ),
        {"n_frozen": ["all", -2]},
        cv=3,
    )


def head_only(args):
    """The head alone, trained longer and faster than the search's candidate."""
    return FineTunedClassifier(
        _text_data.MODEL,
        n_frozen="all",
        max_epochs=5 * args.epochs,
        lr=5e-2,
        max_length=args.max_length,
        random_state=0,
    )


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _split_score(make, X, y, X_test, y_test):
    """Fit on (X, y), score on the test set; the fitted model is returned too."""
    clear_cache()  # each row computes its own features
    model, seconds = _timed(lambda: make().fit(X, y))
    score, predict_seconds = _timed(lambda: model.score(X_test, y_test))
    return score, seconds + predict_seconds, model


def _cv_score(make, X, y, folds):
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    clear_cache()
    scores, seconds = _timed(lambda: cross_val_score(make(), X, y, cv=cv))
    return scores.mean(), seconds


def _subsample(X, y, n, seed=0):
    if n >= len(X):
        return X, y
    keep, _ = train_test_split(np.arange(len(X)), train_size=n, stratify=y, random_state=seed)
    return [X[i] for i in keep], y[keep]


def _row(task, way, data, protocol, score, seconds, note=""):
    return f"| {task} | {way} | {data} | {protocol} | {100 * score:.1f} | {seconds:.0f} | {note} |"


def trec_rows(args):
    X, y = _text_data.trec("train_5500.label")
    X_test, y_test = _text_data.trec("TREC_10.label")
    X_small, y_small = _subsample(X, y, args.finetune_n)
    proto = f"-> TREC_10 ({len(X_test)})"
    rows = []
    for data, X_fit, y_fit in (
        (f"{len(X):,}", X, y),
        (f"{len(X_small):,} (subsample)", X_small, y_small),
    ):
        score, seconds, _ = _split_score(tfidf, X_fit, y_fit, X_test, y_test)
        rows.append(_row("TREC", "TF-IDF + LR", data, proto, score, seconds))
        score, seconds, _ = _split_score(frozen, X_fit, y_fit, X_test, y_test)
        rows.append(_row("TREC", "frozen MiniLM + LR", data, proto, score, seconds))
    score, seconds, search = _split_score(
        lambda: fine_tuned(args), X_small, y_small, X_test, y_test
    )
    note = _search_note(search)
    data = f"{len(X_small):,} (subsample)"
    rows.append(_row("TREC", "fine-tuned MiniLM", data, proto, score, seconds, note))
    score, seconds, _ = _split_score(lambda: head_only(args), X_small, y_small, X_test, y_test)
    rows.append(_row("TREC", "MiniLM + head only", data, proto, score, seconds, HEAD_NOTE))
    return rows


def subj_rows(args):
    X, y = _text_data.subj()
    X_cv, y_cv = _subsample(X, y, args.subj_n)
    rows = []
    score, seconds = _cv_score(tfidf, X, y, 10)
    rows.append(_row("SUBJ", "TF-IDF + LR", f"{len(X):,}", "10-fold CV", score, seconds))
    cv_data = f"{len(X_cv):,} (subsample)"
    score, seconds = _cv_score(tfidf, X_cv, y_cv, args.folds)
    rows.append(_row("SUBJ", "TF-IDF + LR", cv_data, f"{args.folds}-fold CV", score, seconds))
    score, seconds = _cv_score(frozen, X_cv, y_cv, args.folds)
    rows.append(
        _row("SUBJ", "frozen MiniLM + LR", cv_data, f"{args.folds}-fold CV", score, seconds)
    )
    # fine-tuning: one split, a subsample to train on and a held-out set to score
    rest = np.setdiff1d(np.arange(len(X)), np.flatnonzero(np.isin(X, X_cv)))
    X_pool, y_pool = [X[i] for i in rest], y[rest]
    X_small, y_small = _subsample(X_pool, y_pool, args.finetune_n, seed=1)
    held = np.setdiff1d(np.arange(len(X_pool)), np.flatnonzero(np.isin(X_pool, X_small)))
    X_test, y_test = _subsample([X_pool[i] for i in held], y_pool[held], args.subj_test, seed=2)
    data, proto = f"{len(X_small):,} (subsample)", f"-> {len(X_test):,} held out"
    for way, make in (("TF-IDF + LR", tfidf), ("frozen MiniLM + LR", frozen)):
        score, seconds, _ = _split_score(make, X_small, y_small, X_test, y_test)
        rows.append(_row("SUBJ", way, data, proto, score, seconds))
    score, seconds, search = _split_score(
        lambda: fine_tuned(args), X_small, y_small, X_test, y_test
    )
    note = _search_note(search)
    rows.append(_row("SUBJ", "fine-tuned MiniLM", data, proto, score, seconds, note))
    score, seconds, _ = _split_score(lambda: head_only(args), X_small, y_small, X_test, y_test)
    rows.append(_row("SUBJ", "MiniLM + head only", data, proto, score, seconds, HEAD_NOTE))
    return rows


def _search_note(search):
    scores = search.cv_results_["mean_test_score"]
    tried = ", ".join(
        f"{p['n_frozen']!r}: {100 * s:.1f}"
        for p, s in zip(search.cv_results_["params"], scores, strict=True)
    )
    return f"best n_frozen={search.best_params_['n_frozen']!r} (3-fold CV {tried})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subj-n", type=int, default=2000, help="SUBJ sentences for the CV")
    parser.add_argument("--folds", type=int, default=5, help="CV folds on the SUBJ subsample")
    parser.add_argument("--finetune-n", type=int, default=400, help="fine-tuning subsample")
    parser.add_argument("--subj-test", type=int, default=500, help="SUBJ held-out sentences")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not _text_data.available():
        raise SystemExit(f"This benchmark needs the SUBJ and TREC files in {_text_data.TEXT_DATA}")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*texts are longer than max_length.*")
    FineTunedClassifier(_text_data.MODEL, max_epochs=1).fit(["warm", "up"], [0, 1])
    start = time.perf_counter()
    rows = trec_rows(args) + subj_rows(args)
    total = time.perf_counter() - start
    table = "\n".join(rows)
    write_section(
        "text",
        f"""## Text classification accuracy (`bench_text_accuracy.py`)

SUBJ and TREC (the SentEval releases). TF-IDF: words and word pairs, sublinear tf.
Logistic regression: `LogisticRegressionCV` (C chosen by inner 3-fold CV). Fine-tuned:
`GridSearchCV(FineTunedClassifier("all-MiniLM-L6-v2", max_epochs={args.epochs}, lr=1e-2,
backbone_lr=2e-5, max_length={args.max_length}), {{"n_frozen": ["all", -2]}}, cv=3)`, refit
on the whole subsample. Fine-tuning trains on a subsample of {args.finetune_n} sentences
(stratified); the other ways are scored on the same subsample too. The SUBJ
cross-validation of the embeddings uses a stratified subsample of {args.subj_n:,}
sentences ({args.folds} folds) to keep the run short. Time: fit and score (for CV, all
folds) in seconds, features included. Every row starts with an empty activation cache;
within a row, the folds, candidates and refit share it as they do for a user, so each
sentence's features (or frozen layers' output) are computed once per row. The whole
table took {total / 60:.1f} min.
{machine_line()}; {_text_data.load_line()}.

| task | way | training sentences | protocol | accuracy, % | time, s | notes |
|---|---|---|---|---|---|---|
{table}

Published, frozen sentence embeddings + logistic regression (SentEval): SUBJ
{PUBLISHED["SUBJ"]}; TREC {PUBLISHED["TREC"]}.""",
    )


if __name__ == "__main__":
    main()
