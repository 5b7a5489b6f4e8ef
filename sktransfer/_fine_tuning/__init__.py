"""Fine-tuning: the estimator, its network, the skorch glue and the frozen-prefix cache."""

from ._auto import Recipe
from ._estimator import FineTunedClassifier, FineTunedRegressor
from ._network import TransferNet, make_head, to_device
from ._skorch import build_net, release_training_state
from ._tasks import MultiLabel, Regression, SingleLabel

__all__ = ["FineTunedClassifier", "FineTunedRegressor"]

# For the safe format's codec (not public): how a fitted model's network is rebuilt.
_internal = (
    MultiLabel, Recipe, Regression, SingleLabel, TransferNet, build_net, make_head,
    release_training_state, to_device,
)  # fmt: skip
