"""sktransfer: transfer learning as ordinary scikit-learn estimators.

Feature transfer (:class:`PretrainedFeatureExtractor`), parameter transfer
(:class:`FineTunedClassifier`) and domain adaptation (:mod:`sktransfer.adaptation`)
drop into :class:`~sklearn.pipeline.Pipeline`, :class:`~sklearn.model_selection.GridSearchCV`
and :mod:`joblib` like any other scikit-learn estimator.

Public names are imported lazily, so that ``import sktransfer.adaptation`` (pure
NumPy/scikit-learn) does not pay for importing torch.
"""

import importlib

__version__ = "0.1.0"

# public name -> private module that defines it
_LAZY = {
    "PretrainedFeatureExtractor": "._extractor",
    "FineTunedClassifier": "._fine_tuning",
    "FineTunedRegressor": "._fine_tuning",
    "ZeroShotTextClassifier": "._zero_shot",
    "FewShotTextClassifier": "._few_shot",
    "load_image_folder": "._modalities",
    "find_image_files": "._modalities",
    "Backbone": ".backbones",
    "load_backbone": ".backbones",
    "save": ".persistence",
    "load": ".persistence",
    "set_config": "._config",
    "get_config": "._config",
    "config_context": "._config",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sktransfer' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
