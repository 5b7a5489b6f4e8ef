"""Save, load, save again, pickle, clone, refit: the chains a user runs, loads in new processes.

A model's weights may be left out of a file or a pickle only when they can be rebuilt bit for
bit from a named source (the bundled or pretrained weights, unchanged since loading). Weights
that are fine-tuned, random, a module of the user's or read from a checkpoint file (which may
change) travel with the model; once loaded, a model's parameters still say where its weights
came from, so that saving it again, pickling, cloning or refitting it keeps them.

Loading inside the process that saved could hide a lost weight (a build cached in that
process would stand in for it), so the test builds the models here and two fresh Python processes
(``_chain_helpers.py``) load them: the first while the checkpoint file is as it was, the
second after it has been overwritten. All the fresh-process work is done once, in the
``chains`` fixture; each test then reads its own step of it.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from torch import nn

import sktransfer
from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor, load_backbone

from _chain_helpers import outputs

HELPER = Path(__file__).with_name("_chain_helpers.py")

EXTRACTOR = {"image_size": 32, "device": "cpu"}
CLASSIFIER = {"image_size": 32, "max_epochs": 1, "random_state": 0, "device": "cpu"}
KINDS = ("bundled", "fine-tuned", "random", "checkpoint", "module")
SAFE_KINDS = KINDS[:-1]  # the safe format describes no module of the user's
NAMES = [f"{est}-{kind}" for kind in KINDS for est in ("extractor", "classifier")]
SAFE_NAMES = [name for name in NAMES if not name.endswith("module")]


def _checkpoint(path, seed):
    """Write the bundled network's weights, each scaled by 1 + 10% noise, as a timm .pth."""
    import timm

    keys = [
        k
        for k in timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
        if not k.startswith("classifier.")
    ]
    values = load_backbone("efficientnet_lite0").net.state_dict().values()
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in zip(keys, values, strict=True):
        if value.is_floating_point():
            value = value * (1 + 0.1 * torch.randn(value.shape, generator=generator))
        state[key] = value
    torch.save(state, path)


def _own_module():
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def _fresh_process(stage, folder):
    env = os.environ | {"SKTRANSFER_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(HELPER), stage, str(folder)],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"the {stage} process failed:\n{done.stderr[-3000:]}"
    with np.load(folder / f"{stage}.npz") as archive:
        results = dict(archive)
    return results, json.loads((folder / f"{stage}.errors.json").read_text())


@pytest.fixture(scope="module")
def chains(crops, tmp_path_factory):
    """Fit every estimator on every backbone kind, save and pickle it, load it elsewhere."""
    X, y = crops
    X_train, y_train, X_eval = X[::2], y[::2], X[1::3]  # 12 images to fit, 8 to compare
    folder = tmp_path_factory.mktemp("chains")
    np.savez(folder / "data.npz", X=X_eval, X_train=X_train, y_train=y_train)
    checkpoint = folder / "perturbed.pth"
    _checkpoint(checkpoint, seed=1)
    # the source fine-tunes its last group hard enough for its features to be its own
    source = FineTunedClassifier(n_frozen=-1, backbone_lr=0.01, **CLASSIFIER)
    source.fit(X[1::2], y[1::2])
    specs = {
        "bundled": {},
        "fine-tuned": {"backbone": source},
        "random": {"weights": None},
        "checkpoint": {"weights": str(checkpoint)},
        "module": {"backbone": _own_module()},
    }
    torch.manual_seed(0)
    originals, sizes = {}, {}
    for kind, spec in specs.items():
        models = {
            f"extractor-{kind}": PretrainedFeatureExtractor(**spec, **EXTRACTOR).fit(X_eval),
            f"classifier-{kind}": FineTunedClassifier(**spec, **CLASSIFIER).fit(X_train, y_train),
        }
        for name, model in models.items():
            originals[name] = outputs(model, X_eval)
            files = [f"{name}.joblib"]
            joblib.dump(model, folder / files[0])
            if kind in SAFE_KINDS:
                files.append(f"{name}.skt")
                sktransfer.save(model, folder / files[1])
            sizes.update({file: (folder / file).stat().st_size for file in files})
    manifest = {"safe": SAFE_NAMES, "all": NAMES, "checkpoint": str(checkpoint)}
    (folder / "manifest.json").write_text(json.dumps(manifest))

    first, first_errors = _fresh_process("first", folder)
    _checkpoint(checkpoint, seed=2)  # the file a saved model was fitted from changes
    second, second_errors = _fresh_process("second", folder)
    for key, value in first.items():  # the files the first process wrote
        if key.startswith("size__"):
            sizes[key[len("size__") :]] = int(value)
    yield {
        "originals": originals,
        "sizes": sizes,
        "results": first | second,
        "errors": first_errors | second_errors,
    }
    shutil.rmtree(folder)  # some 300 MB of models


def _assert_gives_original(chains, step, name):
    """The outputs of ``step`` on model ``name`` equal the original model's up to float rounding.

    Another process may run torch with another number of threads, which sums in another order:
    outputs then differ by some 1e-5, while a lost or re-randomised weight changes them wholly.
    """
    error = chains["errors"].get(f"{step}__{name}")
    if error is not None:
        pytest.fail(f"{step} of {name} raised {error}")
    for output, expected in chains["originals"][name].items():
        got = chains["results"][f"{step}__{name}__{output}"]
        if output == "predict":
            np.testing.assert_array_equal(got, expected, err_msg=f"{step}: {output}")
        else:
            np.testing.assert_allclose(
                got, expected, rtol=1e-4, atol=1e-4, err_msg=f"{step}: {output}"
            )


# --- (a) sktransfer.save -> load -> save -> load -------------------------------------------
@pytest.mark.parametrize("name", SAFE_NAMES)
def test_save_load_save_load_gives_the_original_outputs(chains, name):
    _assert_gives_original(chains, "safe1", name)  # loaded in a new process
    _assert_gives_original(chains, "safe2", name)  # saved again there, loaded in another
    if name.endswith("checkpoint"):  # the file holds the weights, not the path
        _assert_gives_original(chains, "safe1-again", name)


def _sizes(chains, name, *suffixes):
    """Sizes in bytes of the files ``<name><suffix>``; fails with the error if one is missing."""
    files = [f"{name}{suffix}" for suffix in suffixes]
    missing = [file for file in files if file not in chains["sizes"]]
    if missing:
        errors = {k: v for k, v in chains["errors"].items() if k.endswith(f"__{name}")}
        pytest.fail(f"{missing} not written: {errors}")
    return [chains["sizes"][file] for file in files]


@pytest.mark.parametrize("name", SAFE_NAMES)
def test_saving_a_loaded_model_again_keeps_its_weights(chains, name):
    first, second = _sizes(chains, name, ".skt", ".2.skt")
    assert second >= 0.9 * first, f"{name}: {first} bytes saved, {second} bytes saved again"


@pytest.mark.parametrize("name", SAFE_NAMES)
def test_weights_are_stored_unless_their_name_rebuilds_them(chains, name):
    if name == "extractor-bundled":  # the package's weights, unchanged: parameters only
        assert max(_sizes(chains, name, ".skt", ".2.skt")) < 100_000
    elif name != "classifier-bundled":  # (whose trained head is stored either way)
        # saved, saved again after loading, pickled, pickled after loading
        suffixes = (".skt", ".2.skt", ".joblib", ".safe.joblib")
        for suffix, size in zip(suffixes, _sizes(chains, name, *suffixes), strict=True):
            assert size > 1_000_000, f"the weights are not in the {size}-byte {name}{suffix}"


@pytest.mark.parametrize("kind", SAFE_KINDS)
def test_loaded_extractor_clones_and_refits_with_the_same_weights(chains, kind):
    # the loaded parameters say where the weights came from, so refitting keeps them
    _assert_gives_original(chains, "safe-clone", f"extractor-{kind}")
    _assert_gives_original(chains, "safe-refit", f"extractor-{kind}")


@pytest.mark.parametrize("name", SAFE_NAMES)
def test_a_loaded_model_pickles_with_its_weights(chains, name):
    _sizes(chains, name, ".safe.joblib")  # it was written
    _assert_gives_original(chains, "safe-joblib", name)


# --- (b) joblib.dump -> load -> clone -> fit -----------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_joblib_round_trip_gives_the_original_outputs(chains, name):
    _assert_gives_original(chains, "joblib1", name)
    if name.endswith("checkpoint"):  # the pickle holds the weights, not the path
        _assert_gives_original(chains, "joblib2", name)


@pytest.mark.parametrize("name", NAMES)
def test_unpickled_model_clones_and_refits_to_the_original(chains, name):
    # an extractor's clone keeps the weights' source; a classifier (random_state fixed, on
    # the CPU) refits to the same probabilities
    _assert_gives_original(chains, "joblib-clone", name)


# --- what the chains rest on ----------------------------------------------------------------
@pytest.mark.parametrize("estimator", ["extractor", "classifier"])
def test_safe_format_refuses_a_module_of_your_own_and_says_use_joblib(crops, tmp_path, estimator):
    X, y = crops
    if estimator == "extractor":
        model = PretrainedFeatureExtractor(backbone=_own_module(), **EXTRACTOR).fit(X[:4])
    else:
        model = FineTunedClassifier(backbone=_own_module(), **CLASSIFIER).fit(X[::4], y[::4])
    with pytest.raises(TypeError, match="joblib"):
        sktransfer.save(model, tmp_path / "m.skt")
    assert list(tmp_path.iterdir()) == []


def test_the_backbone_kinds_give_different_outputs(chains):
    """A chain that swapped one kind's weights for another's would change the outputs."""
    for est, output in (("extractor", "transform"), ("classifier", "proba")):
        values = {kind: chains["originals"][f"{est}-{kind}"][output] for kind in SAFE_KINDS}
        for a in SAFE_KINDS:
            for b in SAFE_KINDS[SAFE_KINDS.index(a) + 1 :]:
                gap = np.abs(values[a] - values[b]).max()
                assert gap > 1e-3, f"{est}: {a} and {b} differ by {gap} only"
    # the overwritten checkpoint gives other features: loading it would show
    fresh = chains["results"]["fresh__extractor-checkpoint__transform"]
    original = chains["originals"]["extractor-checkpoint"]["transform"]
    assert np.abs(fresh - original).max() > 1e-3
