"""The codecs of the text classifiers built on an encoder: zero-shot and few-shot."""

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from .._extractor import PretrainedFeatureExtractor
from ._codec import Codec


class ZeroShotCodec(Codec):
    """The fitted encoder (a part of its own), the classes, prototypes and temperature."""

    training_only = ("memory",)

    def encode(self, estimator, child):
        params = estimator.get_params(deep=False) | {"memory": None}
        classes = estimator.classes_
        if classes.dtype.kind not in "Uiu":
            raise TypeError(
                "The safe format stores class names that are strings or integers; these are "
                f"{classes.dtype}. Use joblib.dump instead."
            )
        state = {
            "embedder_": child("embedder", estimator.embedder_),
            "classes_": {"values": classes.tolist(), "dtype": classes.dtype.str},
            "temperature_": float(estimator.temperature_),
            "n_examples_": [int(n) for n in estimator.n_examples_],
        }
        prototypes = torch.from_numpy(np.ascontiguousarray(estimator.prototypes_))
        return params, state, {"prototypes_": prototypes}

    def decode(self, cls, params, state, tensors, child, sources):
        if params.get("memory") is not None:
            raise ValueError(f"a {cls.__name__}'s memory folder is not stored")
        estimator = cls(**params)
        embedder = child(state["embedder_"])
        if not isinstance(embedder, PretrainedFeatureExtractor):
            raise ValueError(f"{cls.__name__}.embedder_ must be a PretrainedFeatureExtractor")
        dtype = np.dtype(state["classes_"]["dtype"])
        if dtype.kind not in "Uiu":
            raise ValueError(f"{cls.__name__}.classes_ must hold strings or integers")
        classes = np.asarray(state["classes_"]["values"], dtype=dtype)
        prototypes = tensors["prototypes_"].numpy()
        if prototypes.shape != (len(classes), embedder.n_features_out_):
            raise ValueError(
                f"{cls.__name__}.prototypes_ has shape {prototypes.shape}; expected "
                f"({len(classes)}, {embedder.n_features_out_})"
            )
        temperature = state["temperature_"]
        if not (isinstance(temperature, float) and temperature > 0):
            raise ValueError(f"{cls.__name__}.temperature_ must be a positive number")
        estimator.embedder_ = embedder
        estimator.classes_ = classes
        estimator.prototypes_ = prototypes
        estimator.temperature_ = temperature
        estimator.n_examples_ = np.asarray(state["n_examples_"], dtype=int)
        return estimator


class FewShotCodec(Codec):
    """The tuned encoder (an extractor holding its weights) and the fitted head, as parts."""

    def encode(self, estimator, child):
        params = estimator.get_params(deep=False)
        if params["head"] is not None or not isinstance(params["backbone"], str):
            raise TypeError(
                "The safe format stores a FewShotTextClassifier with the default head and a "
                "named backbone; use joblib.dump for this one."
            )
        if not isinstance(estimator.head_, LogisticRegression):
            raise TypeError(
                "The safe format stores a FewShotTextClassifier fitted on one label per text; "
                f"this one's head is a {type(estimator.head_).__name__} (a multi-label y). "
                "Use joblib.dump for it."
            )
        state = {
            "embedder_": child("embedder", estimator.embedder_),
            "head_": child("head", estimator.head_),
            "n_pairs_seen_": int(estimator.n_pairs_seen_),
            "loss_curve_": [float(v) for v in estimator.loss_curve_],
        }
        return params, state, {}

    def decode(self, cls, params, state, tensors, child, sources):
        estimator = cls(**params)
        embedder, head = child(state["embedder_"]), child(state["head_"])
        if not isinstance(embedder, PretrainedFeatureExtractor):
            raise ValueError(f"{cls.__name__}.embedder_ must be a PretrainedFeatureExtractor")
        if not isinstance(head, LogisticRegression):
            raise ValueError(f"{cls.__name__}.head_ must be a LogisticRegression")
        if head.coef_.shape[1] != embedder.n_features_out_:
            raise ValueError(f"{cls.__name__}.head_ does not take the encoder's embeddings")
        estimator.embedder_, estimator.head_ = embedder, head
        estimator.classes_ = head.classes_
        estimator.n_pairs_seen_ = int(state["n_pairs_seen_"])
        estimator.loss_curve_ = [float(v) for v in state["loss_curve_"]]
        return estimator
