"""TEMPORARY: codecs for the sktransfer estimators that do not yet describe themselves.

Remove this module once ``FineTunedClassifier`` and ``PretrainedFeatureExtractor`` have
``_to_safe_state`` / ``_from_safe_state``: the container then calls those and never
imports this. It reaches into the estimators' internals, which is what those methods end.
"""

from dataclasses import asdict


def _preprocessing(state):
    from ..backbones import Preprocessing

    saved = state["preprocessing"]
    return Preprocessing(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})


class _FineTuned:
    _safe_training_only = ("callbacks", "augment")

    @staticmethod
    def to_safe_state(clf):
        if not isinstance(clf.backbone_.spec, str):
            raise TypeError(
                "The safe format rebuilds the network from its name; this backbone is a "
                f"{type(clf.backbone_.spec).__name__} object. Use joblib.dump instead."
            )
        if callable(clf.head):
            raise TypeError("A callable head cannot be saved in the safe format; use joblib.")
        params = clf.get_params(deep=False) | {"backbone": clf.backbone_.spec}
        classes = clf.classes_
        state = {
            "classes": classes.tolist(),
            "classes_dtype": classes.dtype.str if classes.dtype.kind != "O" else "O",
            "n_frozen": int(clf.n_frozen_),
            "preprocessing": asdict(clf.backbone_.preprocessing),
        }
        if classes.dtype.kind not in "OUiubf" or (
            classes.dtype.kind == "O" and not all(isinstance(c, str) for c in classes)
        ):
            raise TypeError(f"classes of dtype {classes.dtype} cannot be saved; use joblib.")
        return params, state, clf.net_.module_.state_dict()

    @staticmethod
    def from_safe_state(cls, params, state, tensors):
        import numpy as np

        from ..backbones import load_backbone

        dtype = np.dtype(state["classes_dtype"])
        if dtype.kind not in "OUiubf":
            raise ValueError(f"classes of dtype {dtype}")
        clf = cls(**params)
        backbone = load_backbone(params["backbone"], weights=None)  # architecture only
        backbone.preprocessing = _preprocessing(state)
        classes = np.asarray(state["classes"], dtype=dtype)
        clf._restore(backbone, classes, int(state["n_frozen"]), tensors)
        return clf


class _Extractor:
    _safe_training_only = ()

    @staticmethod
    def to_safe_state(extractor):
        spec = extractor.backbone_.spec
        if not isinstance(spec, str):
            raise TypeError(
                "The safe format rebuilds the network from its name; this backbone is a "
                f"{type(spec).__name__} object. Use joblib.dump instead."
            )
        params = extractor.get_params(deep=False) | {"backbone": spec}
        state = {"preprocessing": asdict(extractor.backbone_.preprocessing)}
        tensors = {} if extractor._reloadable() else extractor.backbone_.net.state_dict()
        return params, state, tensors

    @staticmethod
    def from_safe_state(cls, params, state, tensors):
        from ..backbones import load_backbone
        from ..backbones._weights import is_checkpoint_path

        extractor = cls(**params)
        preprocessing = _preprocessing(state)
        backbone = None
        if tensors:
            backbone = load_backbone(params["backbone"], weights=None)
            backbone.net.load_state_dict(tensors)
        elif is_checkpoint_path(params.get("weights")):
            raise ValueError("weights name a checkpoint file, but the file stores no weights")
        extractor._restore(backbone, preprocessing)
        return extractor


def codec_for(cls):
    """Return the stand-in codec for ``cls`` (an sktransfer estimator without its own)."""
    return {"FineTunedClassifier": _FineTuned, "PretrainedFeatureExtractor": _Extractor}[
        cls.__name__
    ]
