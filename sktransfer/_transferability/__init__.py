"""Transferability: how well a backbone's or a layer's features will serve a task, untrained.

The scores (LogME, H-score, LEEP) and the one-pass ranking of backbones and layers. It
sits below the estimators, so that ``PretrainedFeatureExtractor(layer="auto")`` and
:mod:`sktransfer.selection` (which re-exports the public names) both use it.
"""

from ._ranking import AUTO as AUTO
from ._ranking import SETTINGS_CONSTRAINTS as SETTINGS_CONSTRAINTS
from ._ranking import Candidate as Candidate
from ._ranking import UnstableRankingWarning as UnstableRankingWarning
from ._ranking import best_layer as best_layer
from ._ranking import default_layers as default_layers
from ._ranking import rank as rank
from ._scores import h_score as h_score
from ._scores import leep as leep
from ._scores import logme as logme
