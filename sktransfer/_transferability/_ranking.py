"""Score candidate backbones and layers on labelled inputs: one forward pass per backbone.

The machinery under :mod:`sktransfer.selection` and ``layer="auto"``: it works on
backbones alone (the estimators sit above it). A candidate is a backbone (its final
features), a ``(backbone, layer)`` pair or an extractor's settings. Candidates that
share a network (same backbone, weights and input size) are scored from one pass over
the inputs: a tap on each wanted layer keeps its pooled output, and the pass stops after
the deepest one. The scores then come from these matrices alone, on the full set and on random
half-samples that are the same for every candidate, so that their spread says how far a
ranking can be trusted.
"""

import time
import warnings
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import pandas as pd
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.multiclass import type_of_target
from threadpoolctl import threadpool_limits

from .._core.device import resolve_device
from .._core.digests import module_digest
from .._core.engine import frozen_forward
from .._core.inference import run_batches
from .._parameters import constraints
from ..backbones import FINAL_INPUT, Backbone, LayerTaps, load_backbone
from ._scores import _class_indicators, h_score, leep, logme

SCORES = {"logme": logme, "hscore": h_score, "leep": leep}

# Below these sizes a ranking is warned about whatever the resamples say: with fewer
# images per class the scores of close candidates swap from one sample to the next.
MIN_PER_CLASS = 10
MIN_REGRESSION_SAMPLES = 30
# A ranking is also warned about when its first candidate comes first in fewer than
# this share of the resamples.
MIN_P_BEST = 0.5

AUTO = "auto"

# The settings rank_candidates, best_layer and BackboneSelector share.
SETTINGS_CONSTRAINTS = {
    "scoring": [StrOptions(set(SCORES)), callable],
    **constraints("pooling", "batch_size", "device", "num_workers"),
    "n_resamples": [Interval(Integral, 0, None, closed="left")],
    **constraints("random_state", "verbose"),
}


class UnstableRankingWarning(UserWarning):
    """The ranking of candidates could change with another sample of the same size.

    Raised when there are too few labelled inputs, or when the first candidate is first
    in fewer than half of the resamples. The ``score_std`` and ``p_best``
    columns of the ranking say by how much.
    """


@dataclass
class Candidate:
    """One (network, layer, pooling) to score; ``position`` is its index in the user's list."""

    position: int
    spec: object
    weights: object
    layer: object
    pooling: object
    image_size: object
    extractor: object = None  # the PretrainedFeatureExtractor it came from, if any
    as_loaded: bool = False  # spec is a loaded Backbone to use as it is (best_layer)

    def group_key(self):
        """Candidates with the same key share one forward pass."""
        spec = self.spec if isinstance(self.spec, str) else id(self.spec)
        weights = self.weights if self.weights is None else str(self.weights)
        return spec, weights, self.image_size

    def with_layer(self, layer):
        return Candidate(
            self.position,
            self.spec,
            self.weights,
            layer,
            self.pooling,
            self.image_size,
            self.extractor,
            self.as_loaded,
        )


def default_layers(backbone):
    """Return the layers :func:`best_layer` compares by default: each layer group, the end.

    The last layer group is replaced by the final features (``None``), which pool it.

    Parameters
    ----------
    backbone : Backbone
        A loaded backbone.

    Returns
    -------
    list of str or None
        Layer names from the input to the output, then None.

    Examples
    --------
    >>> from sktransfer import load_backbone
    >>> from sktransfer.selection import default_layers
    >>> default_layers(load_backbone())
    ['stem', 'blocks0', 'blocks1', 'blocks2', 'blocks3', 'blocks4', 'blocks5', 'blocks6', None]
    """
    names = [name for name, _ in backbone.layer_groups]
    return [*names[:-1], None]


def _resolve_scoring(scoring):
    """Return ``(score function, whether it reads the source head)``."""
    if callable(scoring):
        return scoring, False
    return SCORES[scoring], scoring == "leep"


def _check_target(y, n, scoring):
    """Check ``y`` against ``n`` inputs before any forward pass; return it and its kind."""
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != n:
        got = "a scalar" if y.ndim == 0 else f"{len(y)} labels"
        raise ValueError(f"X has {n} inputs but y has {got}: give one label per input.")
    kind = type_of_target(y, input_name="y")
    classification = kind in ("binary", "multiclass")
    if scoring in ("hscore", "leep") or (scoring == "logme" and not kind.startswith("cont")):
        _class_indicators(y, n)  # at least 2 classes, labels not continuous
    return y, classification


def _resamples(y, classification, n_resamples, random_state):
    """Half-samples drawn without replacement (within each class for class labels).

    Half of the inputs, never one twice: a bootstrap resample repeats about a third of
    them, and repeated inputs raise LogME's evidence, the more so the more features a
    candidate has, which biases the comparison. For a score that averages over inputs,
    the spread over half-samples matches the spread of the full-sample score.
    """
    rng = check_random_state(random_state)
    if classification:
        groups = [np.flatnonzero(y == label) for label in np.unique(y)]
    else:
        groups = [np.arange(len(y))]
    return [
        np.sort(
            np.concatenate(
                [rng.choice(g, max(1, (len(g) + 1) // 2), replace=False) for g in groups]
            )
        )
        for _ in range(n_resamples)
    ]


def _collect(backbone, inputs, requests, *, head, batch_size, device, num_workers, verbose):
    """Features for every ``(layer, pooling)`` in ``requests``, from one pass over ``inputs``.

    ``layer=None`` is the backbone's final features, as :class:`PretrainedFeatureExtractor`
    gives them; ``head=True`` adds the source head's probabilities (key ``"head"``).
    Returns ``({request: float32 array}, seconds)``.
    """
    net = backbone.net.eval().requires_grad_(False)
    net = net.to(device, memory_format=torch.channels_last)
    source_head = backbone.head.eval().to(device) if head else None
    tapped = [layer for layer, _ in requests if layer is not None]
    if any(layer is None and pooling != "avg" for layer, pooling in requests):
        tapped.append(FINAL_INPUT)  # the final feature map, pooled otherwise
    run_to_end = head or any(layer is None for layer, _ in requests)
    taps = LayerTaps(net, tapped, run_to_end=run_to_end)
    pool = backbone.preprocessing.pool

    def forward(x):  # one output per request (a dict: the engine keeps its structure)
        final, outputs = taps(x)
        parts = {}
        for i, (layer, pooling) in enumerate(requests):
            if layer is None and pooling == "avg":
                parts[str(i)] = final.flatten(1).float()
            else:
                tapped = outputs[FINAL_INPUT if layer is None else layer]
                parts[str(i)] = pool(tapped, pooling).flatten(1).float()
        if head:
            parts["head"] = torch.softmax(source_head(final).float(), dim=1)
        return parts

    start = time.perf_counter()
    batches = backbone.preprocessing.batches(
        inputs, batch_size, num_workers=num_workers, progress=verbose > 0, desc="scoring"
    )
    key = ("scores", module_digest(net), repr(backbone.preprocessing), tuple(requests), head)
    example = backbone.preprocessing.example_input(2, random=True)
    forward = frozen_forward(forward, key=key, example=example, device=device, n_rows=len(inputs))
    out = run_batches(forward, batches, len(inputs), device)
    seconds = time.perf_counter() - start
    features = {request: out[str(i)].numpy() for i, request in enumerate(requests)}
    if head:
        features["head"] = out["head"].numpy()
    return features, seconds


def _score(scorer, features, y, resamples):
    # The matrices are small (min(n, d) on a side): one BLAS thread is as fast, and on a
    # busy machine threads waiting for each other made LogME 35 times slower (4 s, not 0.1).
    start = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):
        score = float(scorer(features, y))
        spread = np.array([scorer(features[idx], y[idx]) for idx in resamples], dtype=float)
    return score, spread, time.perf_counter() - start


def _score_backbone(backbone, name, inputs, y, members, *, scorer, head, resamples, settings):
    """Rows of the ranking for the candidates ``members``, which all use ``backbone``."""
    for member in members:
        backbone.check_layer(member.layer)
        if head and member.layer is not None:
            raise ValueError(
                f"scoring='leep' scores a backbone through its source head, so it compares "
                f"backbones, not layers; candidate {member.position} asks for layer "
                f"{member.layer!r}. Use scoring='logme' or 'hscore' to compare layers."
            )
    if head and backbone.head is None:
        raise ValueError(
            f"scoring='leep' needs the classifier head of the backbone's source task, and "
            f"{name!r} has none (a module of your own or a fine-tuned trunk). Use "
            "scoring='logme' or 'hscore'."
        )
    requests = list(dict.fromkeys((m.layer, m.pooling) for m in members))
    features, forward_seconds = _collect(backbone, inputs, requests, head=head, **settings)
    rows = []
    for member in members:
        scored = features["head"] if head else features[(member.layer, member.pooling)]
        score, spread, seconds = _score(scorer, scored, y, resamples)
        rows.append(
            {
                "backbone": name,
                "weights": member.weights if member.weights is None else str(member.weights),
                "layer": member.layer,
                "pooling": member.pooling,
                "score": score,
                "n_features": scored.shape[1],
                "seconds": seconds + forward_seconds / len(members),
                "candidate": member.position,
                "_spread": spread,
                "_candidate": member,
            }
        )
    return rows


def rank(X, y, parsed, settings):
    """Rank the parsed candidates; return the frame and each row's :class:`Candidate`.

    ``settings`` maps (at least) the keys of :data:`SETTINGS_CONSTRAINTS` but pooling to
    their values: a function's ``locals()`` or an estimator's ``get_params()``.
    """
    scorer, head = _resolve_scoring(settings["scoring"])
    n_resamples = settings["n_resamples"]
    forward = {
        "batch_size": settings["batch_size"],
        "device": resolve_device(settings["device"]),
        "num_workers": settings["num_workers"],
        "verbose": settings["verbose"],
    }
    groups = {}
    for candidate in parsed:
        groups.setdefault(candidate.group_key(), []).append(candidate)
    rows, checked = [], None
    for members in groups.values():
        backbone, name = _group_backbone(members[0])
        inputs = backbone.preprocessing.check(X)
        if checked is None:  # y is checked once, before the first forward pass
            checked = _check_target(y, len(inputs), settings["scoring"])
            resamples = _resamples(*checked, n_resamples, settings["random_state"])
        rows += _score_backbone(
            backbone,
            name,
            inputs,
            checked[0],
            _expand_layers(members, backbone),
            scorer=scorer,
            head=head,
            resamples=resamples,
            settings=forward,
        )
        del backbone
    ranked = [row.pop("_candidate") for row in rows]
    frame = _frame(rows, n_resamples)
    _warn_if_unstable(frame, *checked, n_resamples)
    return frame, [ranked[i] for i in frame.pop("_order")]


def _group_backbone(first):
    """Load the backbone a group of candidates shares; return it and its name."""
    if first.as_loaded:
        backbone = first.spec  # a loaded backbone (best_layer): used as it is
    else:
        backbone = load_backbone(first.spec, first.weights)
    backbone.preprocessing = backbone.preprocessing.with_options(image_size=first.image_size)
    return backbone, first.spec if isinstance(first.spec, str) else backbone.name


def _expand_layers(members, backbone):
    """Replace a candidate whose layer is "auto" by one per default layer."""
    expanded = []
    for member in members:
        if member.layer == AUTO:
            expanded += [member.with_layer(layer) for layer in default_layers(backbone)]
        else:
            expanded.append(member)
    return expanded


def _frame(rows, n_resamples):
    spreads = np.array([row.pop("_spread") for row in rows]).reshape(len(rows), n_resamples)
    frame = pd.DataFrame(rows)
    for column in ("weights", "layer", "pooling"):  # None stays None, not NaN
        frame[column] = pd.Series([row[column] for row in rows], dtype=object)
    if n_resamples:
        frame["score_std"] = spreads.std(axis=1, ddof=1) if n_resamples > 1 else 0.0
        winners = np.where(np.isnan(spreads), -np.inf, spreads).argmax(axis=0)
        frame["p_best"] = np.bincount(winners, minlength=len(rows)) / n_resamples
    else:
        frame["score_std"] = frame["p_best"] = np.nan
    frame["_order"] = np.arange(len(frame))
    columns = [
        "backbone",
        "weights",
        "layer",
        "pooling",
        "score",
        "score_std",
        "p_best",
        "n_features",
        "seconds",
        "candidate",
        "_order",
    ]
    frame = frame[columns].sort_values("score", ascending=False, kind="stable")
    return frame.reset_index(drop=True)


def _warn_if_unstable(frame, y, classification, n_resamples):
    if classification:
        labels, counts = np.unique(y, return_counts=True)
        if counts.min() < MIN_PER_CLASS:
            label = labels.tolist()[counts.argmin()]
            warnings.warn(
                f"Class {label!r} has only {counts.min()} labelled inputs "
                f"(fewer than {MIN_PER_CLASS}): scores from so few rank candidates "
                "unreliably. Look at score_std and p_best, or label more.",
                UnstableRankingWarning,
                stacklevel=4,
            )
            return
    elif len(y) < MIN_REGRESSION_SAMPLES:
        warnings.warn(
            f"Only {len(y)} labelled inputs (fewer than {MIN_REGRESSION_SAMPLES}): scores "
            "from so few rank candidates unreliably. Look at score_std and p_best.",
            UnstableRankingWarning,
            stacklevel=4,
        )
        return
    if n_resamples and len(frame) > 1 and frame.p_best.iloc[0] < MIN_P_BEST:
        runner = frame.p_best.iloc[1:].idxmax()
        warnings.warn(
            f"The ranking is not stable: the first candidate ({_describe(frame, 0)}) is "
            f"first in only {frame.p_best.iloc[0]:.0%} of {n_resamples} half-samples, "
            f"{_describe(frame, runner)} in {frame.p_best.iloc[runner]:.0%}. "
            "Their scores differ by less than their spread: label more inputs, or treat "
            "them as equally good.",
            UnstableRankingWarning,
            stacklevel=4,
        )


def _describe(frame, i):
    layer = frame.layer.iloc[i]
    where = "final features" if layer is None else f"layer {layer!r}"
    return f"{frame.backbone.iloc[i]}, {where}"


@validate_params(
    {
        "backbone": "no_validation",
        "X": "no_validation",
        "y": "no_validation",
        "layers": ["array-like", None],
        **SETTINGS_CONSTRAINTS,
    },
    prefer_skip_nested_validation=True,
)
def best_layer(
    backbone, X, y, *, layers=None, scoring="logme", pooling="avg", batch_size=32,
    device="auto", num_workers=0, n_resamples=10, random_state=None, verbose=0,
):  # fmt: skip
    """Find the layer of ``backbone`` whose features score best on ``(X, y)``.

    One forward pass computes every layer's pooled output.

    Parameters
    ----------
    backbone : Backbone or spec
        A loaded :class:`~sktransfer.Backbone` (used as it is, its input pipeline
        included; it is put in eval mode on ``device``), or any spec
        :func:`~sktransfer.load_backbone` takes.
    X : images or texts
        The labelled inputs.
    y : array-like of shape (n_samples,)
        Their labels.
    layers : list of str or None, default=None
        The layers to compare (None in the list: the final features). None compares every
        layer group and the final features.
    scoring, pooling, batch_size, device, num_workers, n_resamples, random_state, verbose
        As in :func:`rank_candidates` (``"leep"`` scores only the final features, so it
        cannot compare layers).

    Returns
    -------
    layer : str or None
        The best layer (None: the final features), as
        :class:`~sktransfer.PretrainedFeatureExtractor`'s ``layer`` takes it.
    scores : pandas.DataFrame
        The ranking, as :func:`rank_candidates` returns it.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import load_backbone
    >>> from sktransfer.selection import best_layer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    >>> y = np.repeat([0, 1], 10)
    >>> layer, scores = best_layer(load_backbone(), X, y, layers=["blocks2", "blocks4"],
    ...                            n_resamples=0)
    >>> layer in ("blocks2", "blocks4")
    True
    """
    if scoring == "leep":
        raise ValueError(
            "scoring='leep' scores only the final features (through the source head), so "
            "it cannot compare layers; use 'logme' or 'hscore'."
        )
    if not isinstance(backbone, Backbone):
        backbone = load_backbone(backbone)
    if layers is not None:
        layers = list(layers)
        if not layers:
            raise ValueError("layers is empty: give at least one layer name (or None).")
    parsed = [
        Candidate(0, backbone, backbone.weights, layer, pooling, None, as_loaded=True)
        for layer in (layers if layers is not None else [AUTO])
    ]
    frame, _ = rank(X, y, parsed, locals())
    return frame.layer.iloc[0], frame
