"""The fresh-process half of ``test_persistence_chains.py``: load saved models, use them.

Run as ``python _chain_helpers.py {first|second} FOLDER``. The folder holds ``data.npz``
(the images), ``manifest.json`` (the model names, which have an sktransfer file, the
checkpoint path) and the files the test wrote. Each stage writes ``<stage>.npz`` (outputs
under ``<step>__<name>__<output>``, file sizes under ``size__<file>``) and
``<stage>.errors.json`` (``<step>__<name>`` -> the exception), so that one failing step
fails its own test and nothing else.

* ``first`` (the checkpoint file is as it was when the models were saved): load each
  ``<name>.skt``, save it again as ``<name>.2.skt``, pickle it as ``<name>.safe.joblib``;
  load ``<name>.joblib``; clone and refit what was loaded (an extractor loaded from its
  sktransfer file is also refitted as it is).
* ``second`` (the checkpoint file has been overwritten since): load ``<name>.2.skt`` and
  ``<name>.safe.joblib``, and the checkpoint models' ``.skt`` and ``.joblib`` once more;
  fit a new extractor on the checkpoint path as it is now.
"""

import json
import sys
import traceback
from pathlib import Path

import numpy as np


def outputs(model, X):
    """What a user reads from a fitted model: probabilities and labels, or features."""
    if hasattr(model, "predict_proba"):
        # labels as text: the classes may be Python objects, which .npz files refuse
        return {"proba": model.predict_proba(X), "predict": model.predict(X).astype(str)}
    return {"transform": model.transform(X)}


def refit(model, data):
    """Fit ``model`` again on the data its original was fitted on."""
    if hasattr(model, "predict_proba"):
        return model.fit(data["X_train"], data["y_train"])
    return model.fit(data["X"])


class Recorder:
    """Run the steps of one stage, keeping each step's outputs or its exception."""

    def __init__(self, folder, data):
        self.folder, self.data = folder, data
        self.results, self.errors = {}, {}
        self.n_seeds = 0

    def step(self, step, name, make):
        """Record the outputs of the model ``make()`` returns; None if it raised."""
        import torch

        # A process of its own draws its own random numbers: a model that re-randomises
        # its weights on load cannot match the original by chance.
        self.n_seeds += 1
        torch.manual_seed(1000 + self.n_seeds)
        try:
            model = make()
            for key, value in outputs(model, self.data["X"]).items():
                self.results[f"{step}__{name}__{key}"] = np.asarray(value)
        except Exception as exc:
            self.errors[f"{step}__{name}"] = "".join(
                traceback.format_exception_only(type(exc), exc)
            ).strip()
            return None
        return model

    def size(self, filename):
        self.results[f"size__{filename}"] = np.asarray((self.folder / filename).stat().st_size)

    def write(self, stage):
        np.savez(self.folder / f"{stage}.npz", **self.results)
        (self.folder / f"{stage}.errors.json").write_text(json.dumps(self.errors, indent=1))


def first(rec, manifest):
    import joblib
    from sklearn.base import clone

    import sktransfer

    folder, data = rec.folder, rec.data
    for name in manifest["safe"]:
        loaded = rec.step("safe1", name, lambda n=name: sktransfer.load(folder / f"{n}.skt"))
        if loaded is None:
            continue
        try:
            sktransfer.save(loaded, folder / f"{name}.2.skt")
            rec.size(f"{name}.2.skt")
        except Exception as exc:
            rec.errors[f"save2__{name}"] = f"{type(exc).__name__}: {exc}"
        try:
            joblib.dump(loaded, folder / f"{name}.safe.joblib")
            rec.size(f"{name}.safe.joblib")
        except Exception as exc:
            rec.errors[f"dump__{name}"] = f"{type(exc).__name__}: {exc}"
        if name.startswith("extractor"):
            rec.step("safe-clone", name, lambda m=loaded: refit(clone(m), data))
            rec.step("safe-refit", name, lambda m=loaded: refit(m, data))
    for name in manifest["all"]:
        loaded = rec.step("joblib1", name, lambda n=name: joblib.load(folder / f"{n}.joblib"))
        if loaded is None:
            continue
        rec.step("joblib-clone", name, lambda m=loaded: refit(clone(m), data))


def second(rec, manifest):
    import joblib

    import sktransfer

    folder = rec.folder
    for name in manifest["safe"]:
        rec.step("safe2", name, lambda n=name: sktransfer.load(folder / f"{n}.2.skt"))
        rec.step("safe-joblib", name, lambda n=name: joblib.load(folder / f"{n}.safe.joblib"))
    for name in (n for n in manifest["all"] if n.endswith("checkpoint")):
        # loaded once more, now that the checkpoint file says something else
        rec.step("safe1-again", name, lambda n=name: sktransfer.load(folder / f"{n}.skt"))
        rec.step("joblib2", name, lambda n=name: joblib.load(folder / f"{n}.joblib"))

    def fresh():
        from sktransfer import PretrainedFeatureExtractor

        extractor = PretrainedFeatureExtractor(
            weights=manifest["checkpoint"], image_size=32, device="cpu"
        )
        return extractor.fit(rec.data["X"])

    rec.step("fresh", "extractor-checkpoint", fresh)


def main(stage, folder):
    """Run ``stage`` ("first" or "second") on the files in ``folder``."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    with np.load(folder / "data.npz") as archive:
        data = dict(archive)
    rec = Recorder(folder, data)
    {"first": first, "second": second}[stage](rec, manifest)
    rec.write(stage)


if __name__ == "__main__":
    main(*sys.argv[1:])
