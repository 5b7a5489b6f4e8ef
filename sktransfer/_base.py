"""What every transfer estimator shares: the backbone parameters, loading, inputs, cloning.

An estimator built on :class:`TransferEstimator` never asks which modality it works on:
the backbone's input pipeline (``backbone_.preprocessing``) checks the raw input, makes
the batches and knows the blank input used to probe shapes.
"""

from numbers import Integral

from sklearn.base import BaseEstimator

from ._parameters import constraints
from .backbones import Backbone, load_backbone


class TransferEstimator(BaseEstimator):
    """Base of the estimators that run a pretrained backbone (private).

    Subclasses merge :attr:`_parameter_constraints` into their own and call
    :meth:`_load_backbone` in ``fit``.
    """

    _parameter_constraints: dict = constraints(
        "backbone", "weights", "image_size", "max_length", "batch_size", "device", "num_workers"
    )
    # the parameters that configure a modality's input pipeline (each modality refuses
    # those of another that are set)
    _input_options = ("image_size", "max_length", "num_workers", "augment")

    def _load_backbone(self):
        """Load the backbone named by the parameters, its input pipeline configured.

        Random initialisation (``weights=None``) is seeded by ``random_state`` where the
        estimator has an integer one (else 0). An estimator without a ``weights``
        parameter loads the pretrained weights.
        """
        seed = getattr(self, "random_state", None)
        seed = int(seed) if isinstance(seed, Integral) and not isinstance(seed, bool) else 0
        weights = getattr(self, "weights", "DEFAULT")
        backbone = load_backbone(self.backbone, weights, random_state=seed)
        options = {name: getattr(self, name, None) for name in self._input_options}
        backbone.preprocessing = backbone.preprocessing.with_options(**options)
        return backbone

    def _batches(
        self, inputs, preprocessing, *, augment=None, progress=False, desc=None, one_shape=False
    ):
        return preprocessing.batches(
            inputs,
            self.batch_size,
            augment=augment,
            num_workers=self.num_workers,
            progress=progress,
            desc=desc,
            one_shape=one_shape,
        )

    def __sklearn_clone__(self):
        new = super().__sklearn_clone__()
        if isinstance(getattr(self.backbone, "backbone_", None), Backbone):
            # A fitted source model is a parameter through its weights: cloning it (which
            # unfits it) would lose them, so the clone shares it (fit only reads it).
            new.backbone = self.backbone
        return new

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
