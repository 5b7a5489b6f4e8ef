"""Codecs for scikit-learn: ``Pipeline`` and the steps a feature-transfer pipeline uses.

A step's fitted state is arrays and numbers: numeric arrays become tensors, arrays of
strings and scalars go into the JSON. Load imports nothing but the classes listed here.
"""

import keyword

import numpy as np

from ._container import Codec, import_class, register

# scikit-learn steps a pipeline may hold: name -> module.
STEPS = {
    "StandardScaler": "sklearn.preprocessing",
    "Normalizer": "sklearn.preprocessing",
    "PCA": "sklearn.decomposition",
    "LogisticRegression": "sklearn.linear_model",
    "LinearSVC": "sklearn.svm",
}


class StepCodec(Codec):
    """A scikit-learn estimator whose fitted attributes are arrays and numbers."""

    def __init__(self, name, module):
        self.name, self.module = name, module

    def load_class(self):
        return import_class(self.module, self.name)

    def encode(self, estimator, child):
        import torch

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
                    f"Cannot save {self.name} in the safe format: its attribute {attr} holds "
                    f"a {type(value).__name__}. Use joblib.dump instead."
                )
        return params, state, tensors

    def decode(self, cls, params, state, tensors, child):
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
                raise ValueError(f"{self.name} cannot have the fitted attribute {attr!r}")
            if "tensor" in spec:
                value = tensors[spec["tensor"]].numpy()
                used.add(spec["tensor"])
            elif "strings" in spec:
                dtype = np.dtype(spec["dtype"])
                if dtype.kind not in "OU" or not all(isinstance(s, str) for s in spec["strings"]):
                    raise ValueError(f"{self.name}.{attr} is not an array of strings")
                value = np.asarray(spec["strings"], dtype=dtype)
            elif "numpy" in spec:
                dtype = np.dtype(spec["numpy"])
                if dtype.kind not in "biuf" or isinstance(spec["value"], (list, dict)):
                    raise ValueError(f"{self.name}.{attr} is not a number")
                value = dtype.type(spec["value"])
            else:
                value = spec["value"]
                if isinstance(value, (list, dict)):
                    raise ValueError(f"{self.name}.{attr} is not a scalar")
            setattr(estimator, attr, value)
        if used != set(tensors):
            raise ValueError(f"{self.name} has tensors it does not use: {set(tensors) - used}")
        return estimator


class PipelineCodec(Codec):
    """A ``Pipeline``: its own parameters, and each step stored as a part of its own.

    ``memory`` (a cache folder of this machine, whose cached steps are pickles) is not
    stored: the loaded pipeline has ``memory=None``.
    """

    name = "Pipeline"
    validate_before = False  # a Pipeline cannot be built without its steps

    def load_class(self):
        return import_class("sklearn.pipeline", "Pipeline")

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

    def decode(self, cls, params, state, tensors, child):
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


for _name, _module in STEPS.items():
    register(StepCodec(_name, _module))
register(PipelineCodec())
