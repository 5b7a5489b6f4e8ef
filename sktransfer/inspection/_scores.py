"""What an explanation explains: the model's score of a target, for any fitted estimator.

The occlusion methods read only these scores, so they work for every model that predicts:
the probability of the target class where the model gives probabilities, else its
decision value, else (a regressor) the predicted output.
"""

import warnings

import numpy as np
import torch

from .._core.progress import progress_bar

__all__ = ["score_table", "scored", "target_index", "target_label", "unit"]


def unit(maps):
    """Scale each map to [0, 1] by its maximum (an all-zero map stays zero)."""
    top = maps.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    return (maps / top).clamp(0, 1)


def target_index(model, scores, target):
    """Column of ``scores`` to explain for each row: ``target``'s, or the top one.

    ``scores`` is a tensor or an array of shape ``(n, n_outputs)``; returns a tensor of
    ``n`` column indices.
    """
    scores = torch.as_tensor(scores)
    if target is None:
        return scores.argmax(1)
    classes = getattr(model, "classes_", None)
    if isinstance(classes, np.ndarray) and classes.ndim == 1:
        where = np.flatnonzero(classes == target)
        if not len(where):
            raise ValueError(f"target {target!r} is not one of the classes {classes.tolist()}.")
        return torch.full((len(scores),), int(where[0]))
    if not (isinstance(target, (int, np.integer)) and 0 <= target < scores.shape[1]):
        raise ValueError(
            f"target must be an output index from 0 to {scores.shape[1] - 1} for this "
            f"model; got {target!r}."
        )
    return torch.full((len(scores),), int(target))


def target_label(model, index):
    """Return column ``index``'s class label where the model has classes, else ``index``."""
    classes = getattr(model, "classes_", None)
    if isinstance(classes, np.ndarray) and classes.ndim == 1 and index < len(classes):
        return classes[index].item() if hasattr(classes[index], "item") else classes[index]
    return int(index)


def score_table(model, X):
    """Return the model's scores of ``X``: ``(n, n_outputs)`` float64.

    ``predict_proba`` where the model has it (a list of per-label probabilities becomes
    one column per label, the probability of its positive class), else
    ``decision_function`` (a binary model's one column becomes two, negated and as it
    is), else ``predict`` (one column per output).
    """
    for name in ("predict_proba", "decision_function", "predict"):
        method = getattr(model, name, None)
        if method is None:
            continue
        out = method(X)
        if isinstance(out, list):
            out = np.stack([np.asarray(p)[:, -1] for p in out], axis=1)
        out = np.asarray(out, dtype=np.float64)
        if out.ndim == 1:
            out = np.stack([-out, out], axis=1) if name == "decision_function" else out[:, None]
        return out
    raise TypeError(f"{type(model).__name__} has no predict_proba, decision_function or predict.")


def scored(model, n, make, chunk, *, verbose=0, desc="explain", unit="text"):
    """Score ``n`` inputs made by ``make(start, stop)``, ``chunk`` at a time.

    A warning the model gives (a text truncated to ``max_length``, say) is given once,
    not once per call.
    """
    bar = progress_bar(verbose > 0, n, desc, unit=unit)
    rows = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for start in range(0, n, chunk):
                stop = min(start + chunk, n)
                rows.append(score_table(model, make(start, stop)))
                bar.update(stop - start)
        finally:
            bar.close()
    _warn_once(caught, len(rows))
    return np.concatenate(rows)


def _warn_once(caught, n_calls):
    """Give the first of the warnings ``caught`` from each place, with how often it came."""
    seen = {}
    for item in caught:
        seen.setdefault((item.category, item.filename, item.lineno), []).append(item)
    for (category, _, _), items in seen.items():
        again = (
            f" (given in {len(items)} of the {n_calls} calls of the model)"
            if len(items) > 1
            else ""
        )
        warnings.warn(f"{items[0].message}{again}", category, stacklevel=5)
