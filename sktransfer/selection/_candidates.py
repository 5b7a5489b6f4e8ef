"""The user's candidates: backbones, ``(backbone, layer)`` pairs and extractors, ranked.

:func:`rank_candidates` parses what the user lists, scores it with the ranking machinery
(:mod:`sktransfer._transferability`) and returns the table; :func:`make_extractor` turns
a ranked candidate back into the extractor that computes its features.
"""

from sklearn.base import clone
from sklearn.utils._param_validation import validate_params

from .._extractor import PretrainedFeatureExtractor
from .._parameters import constraints
from .._transferability import AUTO, SETTINGS_CONSTRAINTS, Candidate, rank
from ..backbones import DEFAULT_BACKBONE

__all__ = ["make_extractor", "parse_candidates", "rank_candidates"]


def make_extractor(candidate, **settings):
    """Return an unfitted extractor that computes a ranked candidate's features."""
    if candidate.extractor is not None:
        return clone(candidate.extractor).set_params(layer=candidate.layer)
    return PretrainedFeatureExtractor(
        candidate.spec,
        weights=candidate.weights,
        layer=candidate.layer,
        pooling=candidate.pooling,
        image_size=candidate.image_size,
        **settings,
    )


def parse_candidates(candidates, pooling, image_size):
    """Turn the user's candidates into :class:`Candidate` records (layers may be "auto")."""
    if candidates is None:
        return [Candidate(0, DEFAULT_BACKBONE, "DEFAULT", AUTO, pooling, image_size)]
    if not isinstance(candidates, list):
        raise TypeError(
            "candidates must be a list of backbones, (backbone, layer) pairs or "
            f"PretrainedFeatureExtractor instances (one candidate goes in a list too); got "
            f"{type(candidates).__name__}."
        )
    if not candidates:
        raise ValueError("candidates is empty: give at least one backbone to score.")
    parsed = []
    for i, item in enumerate(candidates):
        if isinstance(item, PretrainedFeatureExtractor):
            params = item.get_params(deep=False)
            parsed.append(
                Candidate(
                    i,
                    params["backbone"],
                    params["weights"],
                    params["layer"],
                    params["pooling"],
                    params["image_size"],
                    item,
                )
            )
            continue
        if isinstance(item, tuple):
            if len(item) != 2:
                raise ValueError(
                    f"Candidate {i} must be a (backbone, layer) pair; got a tuple of "
                    f"{len(item)} items."
                )
            spec, layers = item
        else:
            spec, layers = item, None
        if not isinstance(layers, list):
            layers = [layers]
        for layer in layers:
            if layer is not None and not isinstance(layer, str):
                raise TypeError(f"Candidate {i}: a layer is a name (str) or None; got {layer!r}.")
            parsed.append(Candidate(i, spec, "DEFAULT", layer, pooling, image_size))
    return parsed


@validate_params(
    {
        "X": "no_validation",
        "y": "no_validation",
        "candidates": [list, None],
        **constraints("image_size"),
        **SETTINGS_CONSTRAINTS,
    },
    prefer_skip_nested_validation=True,
)
def rank_candidates(
    X,
    y,
    candidates=None,
    *,
    scoring="logme",
    pooling="avg",
    image_size=None,
    batch_size=32,
    device="auto",
    num_workers=0,
    n_resamples=10,
    random_state=None,
    verbose=0,
):
    """Score candidate backbones and layers on labelled inputs, best first.

    Each candidate's features are computed once (one forward pass per backbone, however
    many of its layers are candidates) and scored by a transferability score, which
    predicts how well the candidate will do after training without training anything.

    Parameters
    ----------
    X : images or texts
        The labelled inputs (file paths, image arrays or PIL images; or texts), as
        :class:`~sktransfer.PretrainedFeatureExtractor` takes them.
    y : array-like of shape (n_samples,)
        Their labels (real-valued targets are accepted by ``scoring="logme"``).
    candidates : list, default=None
        What to compare. Each item is a backbone spec as :func:`~sktransfer.load_backbone`
        takes it (its final features), a ``(spec, layer)`` pair (``layer`` a name from
        ``backbone.layer_names``, None for the final features, a list of these, or
        ``"auto"`` for every layer group), or a :class:`~sktransfer.PretrainedFeatureExtractor`
        (its backbone, weights, layer, pooling and image size). None compares the layer
        groups of the default backbone.
    scoring : {"logme", "hscore", "leep"} or callable, default="logme"
        The score: :func:`logme`, :func:`h_score` (with shrinkage) or :func:`leep`
        (backbones with a source head only, final features only), or a function
        ``score(features, y) -> float``, higher being better. No score is best on every
        task; see the user guide.
    pooling : {"avg", "max", "avgmax", "token"} or None, default="avg"
        How a layer's output becomes a vector, for the candidates that are not extractors.
    image_size : int, default=None
        Input size for the candidates that are not extractors (None: each backbone's own).
    batch_size : int, default=32
        Inputs per forward pass.
    device : str, default="auto"
        Where the networks run (``"auto"``: CUDA when present).
    num_workers : int, default=0
        Worker processes that decode the inputs.
    n_resamples : int, default=10
        Random halves of the inputs (drawn within each class without replacement, the
        same for every candidate) on which each score is computed again, for
        ``score_std`` and ``p_best``. 0 skips them.
    random_state : int, RandomState instance or None, default=None
        Seeds the resamples.
    verbose : int, default=0
        1 shows a progress bar for each forward pass.

    Returns
    -------
    pandas.DataFrame
        One row per candidate (a layer list expands to one row per layer), best first,
        with the columns ``backbone`` (its name), ``weights``, ``layer`` (None: final
        features), ``pooling``, ``score``, ``score_std`` (its standard deviation over the
        half-samples, which for a score that averages over inputs estimates that of the
        full-sample score), ``p_best`` (the share of half-samples in which it scores
        best),
        ``n_features``, ``seconds`` (its share of its backbone's forward pass plus its
        scoring; the column sums to the time spent) and ``candidate`` (its index in
        ``candidates``).

    Warns
    -----
    UnstableRankingWarning
        With fewer than 10 inputs in a class (30 for real-valued targets), or when the
        first candidate is first in fewer than half of the half-samples.

    See Also
    --------
    best_layer : The best layer of one backbone.
    BackboneSelector : The best candidate as a pipeline step.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.selection import rank_candidates
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    >>> y = np.repeat([0, 1], 10)
    >>> frame = rank_candidates(X, y, [("efficientnet_lite0", ["blocks3", None])],
    ...                         image_size=32, n_resamples=0)
    >>> frame.columns.to_list()[:5]
    ['backbone', 'weights', 'layer', 'pooling', 'score']
    >>> len(frame)
    2
    """
    frame, _ = rank(X, y, parse_candidates(candidates, pooling, image_size), locals())
    return frame
