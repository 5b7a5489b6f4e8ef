"""Fine-tuning: the estimator, its network, the skorch glue and the frozen-prefix cache."""

from ._estimator import FineTunedClassifier
from ._network import TransferNet, make_head, to_device
from ._skorch import build_net, release_training_state

__all__ = ["FineTunedClassifier"]

# For the safe format's codec (not public): how a fitted model's network is rebuilt.
_internal = (TransferNet, build_net, make_head, release_training_state, to_device)
