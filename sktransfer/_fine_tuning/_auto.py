"""Choose how many layer groups stay frozen (``n_frozen="auto"``) by climbing a ladder.

The candidates are the head alone (``"all"``) and unfreezing the last 1, 2 and 3 layer
groups (``-1``, ``-2``, ``-3``), as many as the backbone has, in order of cost. Each is a
clone of the estimator with that ``n_frozen``, fitted on a training part of the data and
scored on a held-out part, stratified by class for one label per input: a classifier by
minus the log-loss of its probabilities (see :func:`held_out_score`), a regressor by R².
The climb starts from the head alone and unfreezes one more group while that raises the
held-out score; the first candidate that does not ends it, and the last one that did is
chosen (a tie goes to the more frozen). Every candidate trains the epochs ``max_epochs``
gives the training part (for ``"auto"``, enough epochs for its minimum of optimiser
steps). The frozen stages' outputs are shared between the clones by the process's store.

Climbing, rather than training every candidate, keeps the cost near that of the choice:
unfreezing a group costs more than the one before, and where the head alone is best
(data close to the backbone's pretraining) only the two cheapest candidates train. The
price is that a deeper candidate behind one that did not help is not tried.

Why the log-loss: the held-out part of a few-shot set is a handful of rows (two per
class), on which the accuracies of two candidates often tie or differ by one row, and a
climb on accuracy stopped at the head alone where deeper candidates were better by 15
points and more on the test inputs (``benchmarks/RESULTS.md``, "Which held-out score").
The log-loss, a proper scoring rule, also counts how sure each answer is, and tells them
apart on the same rows.

The held-out part is ``validation_fraction`` of the data, but at least
:data:`MIN_VALID_PER_CLASS` rows per class for one label per input (else at least
:data:`MIN_VALID_UNSTRATIFIED` rows), and never more than half of it. With too little
data for that (fewer than :data:`MIN_ROWS` inputs, or a held-out part that would need
more than half of them), the head alone (``"all"``) is chosen without a search, and the
note of ``recipe_results_`` says why (not a warning: ``"auto"`` is the default, and a
few inputs are a use it serves, not a mistake).
"""

import math
from dataclasses import dataclass
from time import perf_counter

import numpy as np
from sklearn.base import clone
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.utils import _safe_indexing

from ._schedule import training_epochs
from ._tasks import MultiLabel, check_sample_weight

__all__ = [
    "CANDIDATES", "MIN_ROWS", "MIN_VALID_PER_CLASS", "MIN_VALID_UNSTRATIFIED", "Recipe",
    "choose_n_frozen",
    "held_out_score", "is_auto", "search_split",
]  # fmt: skip

CANDIDATES = ("all", -1, -2, -3)
MIN_ROWS = 10
MIN_VALID_PER_CLASS = 2
# held-out rows for a regressor or a multi-label y, whose rows are not drawn by class: an
# R² over the two or three rows a tenth of a small set gives is noise
MIN_VALID_UNSTRATIFIED = 10
COLUMNS = ("candidate", "rung", "epochs", "validation_score", "seconds", "note")


@dataclass(frozen=True)
class Recipe:
    """The ``n_frozen`` chosen (as a user would write it) and the search's table."""

    n_frozen: object
    results: dict

    @classmethod
    def given(cls, n_frozen, note="given"):
        """Return the recipe of an explicit ``n_frozen``: one row, not scored."""
        return cls(n_frozen, _table([(n_frozen, 0, None, math.nan, math.nan, note)]))

    @property
    def best(self):
        """``best_recipe_``: the parameters to set to fit the chosen recipe directly."""
        return {"n_frozen": self.n_frozen}

    def to_json(self):
        """``best_recipe_`` and ``recipe_results_`` as JSON values (a missing number: null)."""
        table = {
            name: [None if isinstance(v, float) and math.isnan(v) else v for v in column]
            for name, column in self.results.items()
        }
        return {"best_recipe_": self.best, "recipe_results_": table}

    @classmethod
    def from_json(cls, best, table):
        """Return the recipe :meth:`to_json` wrote, refusing a table of another shape."""
        columns = table.values() if isinstance(table, dict) else []
        if (
            not isinstance(best, dict)
            or set(best) != {"n_frozen"}
            or not isinstance(table, dict)
            or tuple(table) != COLUMNS
            or not all(isinstance(column, list) for column in columns)
            or len({len(column) for column in columns}) != 1
        ):
            raise ValueError(
                f"best_recipe_ must be {{'n_frozen': ...}} and recipe_results_ the columns "
                f"{COLUMNS}, lists of one length."
            )
        numbers = ("validation_score", "seconds")
        results = {
            name: [math.nan if v is None and name in numbers else v for v in column]
            for name, column in table.items()
        }
        return cls(best["n_frozen"], results)


def _table(rows):
    """Return ``rows`` (tuples in :data:`COLUMNS` order) as a dict of lists, as cv_results_."""
    return {name: [row[i] for row in rows] for i, name in enumerate(COLUMNS)}


def is_auto(n_frozen):
    """Whether ``n_frozen`` asks for the search (``"auto"``) rather than a given count."""
    return isinstance(n_frozen, str) and n_frozen == "auto"


def candidates(n_layer_groups):
    """Return the candidates a backbone of ``n_layer_groups`` groups allows."""
    return [c for c in CANDIDATES if c == "all" or -c <= n_layer_groups]


def choose_n_frozen(estimator, X, y, sample_weight=None):
    """Choose ``estimator``'s ``n_frozen`` on a validation split of ``X``, ``y``.

    Parameters
    ----------
    estimator : FineTunedClassifier or FineTunedRegressor
        The estimator, its parameters validated; it is not changed (clones are fitted).
    X, y, sample_weight
        What ``fit`` got.

    Returns
    -------
    Recipe
        The choice and a row per candidate tried: the candidate, its rung (step of the
        climb), its epochs, its validation score, the seconds its fit and score took, and
        a note on the one that ended the climb.
    """
    backbone = estimator._load_backbone()
    parts, epochs, reason = search_split(estimator, backbone, X, y, sample_weight)
    if parts is None:
        return Recipe.given("all", note=reason)
    rows, best, best_score = [], None, -np.inf
    for rung, candidate in enumerate(candidates(backbone.n_layer_groups)):
        score, seconds = _fit_and_score(estimator, candidate, epochs, *parts)
        better = not np.isnan(score) and score > best_score
        note = "" if better else "no held-out score: the climb ends"
        if not better and best is not None:
            note = f"no better than n_frozen={best!r}: the climb ends"
        rows.append((candidate, rung, epochs, score, seconds, note))
        if not better:
            break
        best, best_score = candidate, score
    return Recipe("all" if best is None else best, _table(rows))


def search_split(estimator, backbone, X, y, sample_weight=None):
    """Return the search's ``(train part, held-out part)``, the candidates' epochs, and why not.

    Each part is ``(X, y, sample_weight)``. With too little data the parts are None and
    the last item says why (else it is None). ``backbone`` is the estimator's, loaded.
    """
    n = len(backbone.preprocessing.check(X))
    weights = check_sample_weight(sample_weight, n)
    task = estimator._make_task(y)
    encoded, _ = task.fit(y, n, getattr(estimator, "class_weight", None), weights)
    split, reason = _split(encoded, task, estimator.validation_fraction, estimator.random_state)
    if split is None:
        return None, None, reason
    parts = [_part(X, y, sample_weight, rows) for rows in split]
    epochs = training_epochs(estimator.max_epochs, len(split[0]), estimator.batch_size)
    return parts, epochs, None


def _split(encoded, task, fraction, random_state):
    """Return ``((train, valid), None)``, or ``(None, why)`` when the data is too little."""
    n = len(encoded)
    n_classes = len(np.unique(encoded)) if task.stratified else 1
    least = MIN_VALID_PER_CLASS * n_classes if task.stratified else MIN_VALID_UNSTRATIFIED
    n_valid = max(math.ceil(fraction * n), least)
    if n < MIN_ROWS or n_valid > n // 2:
        need = (
            f"{MIN_VALID_PER_CLASS} held-out rows per class"
            if task.stratified
            else f"{MIN_VALID_UNSTRATIFIED} held-out rows"
        )
        return None, (
            f"{n} inputs are too few to compare candidates on held-out rows (at least "
            f"{MIN_ROWS} inputs are needed, and {need}, at most half of them held out). "
            "Add inputs, or set n_frozen yourself."
        )
    stratify = encoded if task.stratified else None
    try:
        split = train_test_split(
            np.arange(n), test_size=n_valid, stratify=stratify, random_state=random_state
        )
    except ValueError as exc:
        return None, f"no held-out split of {n_valid} of {n} inputs ({exc})."
    return split, None


def _part(X, y, sample_weight, rows):
    """Return ``(X, y, sample_weight)`` restricted to ``rows``."""
    weights = None if sample_weight is None else _safe_indexing(sample_weight, rows)
    return _safe_indexing(X, rows), _safe_indexing(y, rows), weights


def _fit_and_score(estimator, n_frozen, epochs, train, valid):
    """Fit a clone with ``n_frozen`` for ``epochs`` on ``train``; score it on ``valid``."""
    start = perf_counter()
    model = clone(estimator).set_params(n_frozen=n_frozen, max_epochs=epochs)
    model.fit(*train)
    score = held_out_score(model, *valid)
    return score, perf_counter() - start


def held_out_score(model, X, y, sample_weight=None):
    """Return how well a fitted candidate does on held-out rows: the higher, the better.

    A classifier's score is minus its log-loss (sklearn's ``neg_log_loss``): of the true
    class's probability for one label per input, and of each label's (a binary
    cross-entropy, averaged over the labels) for a multi-label indicator ``y``; a row's
    weight is its ``sample_weight``. A regressor's is its ``score`` (R²).
    """
    if not hasattr(model, "predict_proba"):
        return float(model.score(X, y, sample_weight=sample_weight))
    proba = model.predict_proba(X)
    if not isinstance(model._task, MultiLabel):
        return -float(log_loss(y, proba, labels=model.classes_, sample_weight=sample_weight))
    proba = np.clip(proba, 1e-15, 1 - 1e-15)
    y = np.asarray(y, dtype=float)
    rows = -(y * np.log(proba) + (1 - y) * np.log1p(-proba)).mean(axis=1)
    return -float(np.average(rows, weights=sample_weight))
