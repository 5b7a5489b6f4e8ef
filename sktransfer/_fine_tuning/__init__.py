"""Fine-tuning: the estimator, its network, the skorch glue and the frozen-prefix cache."""

from ._estimator import FineTunedClassifier

__all__ = ["FineTunedClassifier"]
