"""Codecs for scikit-learn: ``Pipeline`` and the steps a feature-transfer pipeline uses.

A step's fitted state is arrays and numbers: numeric arrays become tensors, arrays of
strings and scalars go into the JSON. Which classes get these codecs is decided by the
table in :mod:`._dispatch`.
"""

import keyword

import numpy as np
import torch

from ._codec import Codec


class StepCodec(Codec):
    """A scikit-learn estimator whose fitted attributes are arrays and numbers."""

    def encode(self, estimator, child):
        params = estimator.get_params(deep=False)
        state, tensors = {}, {}
        for attr, value in vars(estimator).items():
            if attr in params:
                continue
            if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
                tensors[attr] = torch.from_numpy(np.ascontiguousarray(value))
                state[attr] = {"tensor": attr}
            elif (
                isinstance(value, np.ndarray)
                and value.ndim == 1
                and value.dtype.kind in "OU"
                and all(isinstance(v, str) for v in value)
            ):
                state[attr] = {"strings": value.tolist(), "dtype": value.dtype.str}
            elif isinstance(value, np.generic) and value.dtype.kind in "biuf":
                state[attr] = {"numpy": value.dtype.str, "value": value.item()}
            elif value is None or isinstance(value, (str, int, float, bool)):
                state[attr] = {"value": value}
            else:
                raise TypeError(
                    f"Cannot save {type(estimator).__name__} in the safe format: its "
                    f"attribute {attr} holds a {type(value).__name__}. Use joblib.dump instead."
                )
        return params, state, tensors

    def decode(self, cls, params, state, tensors, child, sources):
        name = cls.__name__
        estimator = cls(**params)
        used = set()
        for attr, spec in state.items():
            if (
                not attr.isidentifier()
                or keyword.iskeyword(attr)
                or attr.startswith("__")
                or attr in params
                or hasattr(cls, attr)
            ):
                raise ValueError(f"{name} cannot have the fitted attribute {attr!r}")
            if "tensor" in spec:
                value = tensors[spec["tensor"]].numpy()
                used.add(spec["tensor"])
            elif "strings" in spec:
                dtype = np.dtype(spec["dtype"])
                if dtype.kind not in "OU" or not all(isinstance(s, str) for s in spec["strings"]):
                    raise ValueError(f"{name}.{attr} is not an array of strings")
                value = np.asarray(spec["strings"], dtype=dtype)
            elif "numpy" in spec:
                dtype = np.dtype(spec["numpy"])
                if dtype.kind not in "biuf" or isinstance(spec["value"], (list, dict)):
                    raise ValueError(f"{name}.{attr} is not a number")
                value = dtype.type(spec["value"])
            else:
                value = spec["value"]
                if isinstance(value, (list, dict)):
                    raise ValueError(f"{name}.{attr} is not a scalar")
            setattr(estimator, attr, value)
        if used != set(tensors):
            raise ValueError(f"{name} has tensors it does not use: {set(tensors) - used}")
        return estimator


class PipelineCodec(Codec):
    """A ``Pipeline``: its own parameters, and each step stored as a part of its own.

    ``memory`` (a cache folder of this machine, whose cached steps are pickles) is not
    stored: the loaded pipeline has ``memory=None``.
    """

    validate_before = False  # a Pipeline cannot be built without its steps

    def encode(self, pipe, child):
        params = pipe.get_params(deep=False)
        del params["steps"]
        params["memory"] = None
        steps = []
        for i, (name, step) in enumerate(pipe.steps):
            if step is None or (isinstance(step, str) and step == "passthrough"):
                steps.append([name, None])
            else:
                steps.append([name, child(i, step)])
        return params, {"steps": steps}, {}

    def decode(self, cls, params, state, tensors, child, sources):
        if "steps" in params or params.get("memory") is not None:
            raise ValueError("a Pipeline's steps are stored as parts and its memory is None")
        steps = []
        for name, key in state["steps"]:
            if not isinstance(name, str):
                raise ValueError(f"the step name {name!r} is not a string")
            steps.append((name, "passthrough" if key is None else child(key)))
        pipe = cls(steps, **params)
        pipe._validate_steps()  # names unique and without "__"; intermediate transformers
        return pipe
