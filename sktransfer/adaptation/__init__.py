r"""Instance-based and feature-based transfer (domain adaptation) for scikit-learn.

Source and target rows are stacked in one ``X``; unlabelled target rows have ``y = -1``;
an optional ``sample_domain`` (positive: source, negative: target) says which row is which
(skada's convention, see :func:`split_domains`). Each method wraps any scikit-learn
classifier and goes after a :class:`~sktransfer.PretrainedFeatureExtractor` in a
pipeline::

    pipe = make_pipeline(PretrainedFeatureExtractor(), CORAL(LogisticRegression()))
    pipe.fit(X, y, coral__sample_domain=domains)   # y = -1 on the target rows
    pipe.predict(X_target)                         # new rows are target rows

Without ``sample_domain``, ``y = -1`` alone marks the target rows, with a warning that
says so (no rule on ``y`` tells a class called -1 from the placeholder).

To route ``sample_domain`` through a pipeline, pass it under the step's name
(``pipe.fit(X, y, coral__sample_domain=domains)``), or with metadata routing enabled
(``sklearn.set_config(enable_metadata_routing=True)``) request it:
``CORAL().set_fit_request(sample_domain=True)`` and ``pipe.fit(X, y, sample_domain=domains)``.

When ``y`` has no ``-1`` and no ``sample_domain`` is given there is nothing to adapt to:
every row is then used as source and as target, so that the method fits like its
estimator alone, with a warning. A ``sample_domain`` without negative entries is an
error ("No target rows").

Feature-based: :class:`CORAL`, :class:`SubspaceAlignment`,
:class:`TransferComponentAnalysis`, :class:`JointDistributionAdaptation` and
:class:`OTMapping` (each also ``transform``\s rows into the shared space; OTMapping needs
POT). Instance-based: :class:`KMM`, :class:`KLIEP`, :class:`DiscriminatorReweight` (each
keeps its source weights in ``weights_``; ``fit_weights`` computes them without fitting an
estimator), and :class:`TrAdaBoost` for a few labelled target rows.

Without target labels, choose and tune a method with the unsupervised scorers
(:class:`CircularValidation`, :class:`ImportanceWeightedScorer`,
:class:`DeepEmbeddedValidation`, :class:`PredictionEntropyScorer`) and the splitters that
keep the target rows unlabelled in every fold (:class:`SourceKFold`,
:class:`SourceTargetShuffleSplit`), in :class:`~sklearn.model_selection.GridSearchCV`, or
let :class:`AdaptationSelector` choose among the methods and :class:`SourceOnly` (no
adaptation).
"""

from ._domains import split_domains
from ._jda import JointDistributionAdaptation
from ._ot import OTMapping
from ._reweight import KLIEP, KMM, DiscriminatorReweight
from ._scoring import (
    CircularValidation,
    DeepEmbeddedValidation,
    ImportanceWeightedScorer,
    PredictionEntropyScorer,
)
from ._selector import AdaptationSelector, SourceOnly
from ._splitters import SourceKFold, SourceTargetShuffleSplit
from ._subspace import CORAL, SubspaceAlignment, TransferComponentAnalysis
from ._tradaboost import TrAdaBoost

__all__ = [
    "CORAL",
    "KLIEP",
    "KMM",
    "AdaptationSelector",
    "CircularValidation",
    "DeepEmbeddedValidation",
    "DiscriminatorReweight",
    "ImportanceWeightedScorer",
    "JointDistributionAdaptation",
    "OTMapping",
    "PredictionEntropyScorer",
    "SourceKFold",
    "SourceOnly",
    "SourceTargetShuffleSplit",
    "SubspaceAlignment",
    "TrAdaBoost",
    "TransferComponentAnalysis",
    "split_domains",
]
