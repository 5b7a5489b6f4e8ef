"""Choose a backbone and a layer before training, from one forward pass.

Which pretrained network, and which of its layers, will transfer best to your labelled
images? Training each candidate to find out costs a fine-tuning or a cross-validation
per candidate. A *transferability score* answers from the features alone: each
candidate's features are computed once and scored against the labels, and the scores
rank the candidates. The ranking is a shortlist, not a verdict: on the small sets of
``benchmarks/RESULTS.md`` LogME's ranking agreed with cross-validated accuracy by Kendall
tau +0.15 to +0.61; cross-validate the first few before settling.

* :func:`rank_candidates` -- score backbones, ``(backbone, layer)`` pairs or extractors
  on ``(X, y)``: a :class:`pandas.DataFrame`, best first, with each score's spread over
  random half-samples;
* :func:`best_layer` -- the best layer of one backbone;
* :class:`BackboneSelector` -- the best candidate as the first step of a pipeline;
* the scores themselves, on any feature matrix: :func:`logme`, :func:`h_score`,
  :func:`leep`.
"""

from .._transferability import (
    UnstableRankingWarning,
    best_layer,
    default_layers,
    h_score,
    leep,
    logme,
)
from ._candidates import rank_candidates
from ._selector import BackboneSelector

__all__ = [
    "BackboneSelector",
    "UnstableRankingWarning",
    "best_layer",
    "default_layers",
    "h_score",
    "leep",
    "logme",
    "rank_candidates",
]
