"""The inference engine: every frozen forward pass, in PyTorch and in OpenVINO, agrees.

Equality at the stated tolerances (relative 1e-4 in fp32; cosine 0.9999 for sentence
embeddings against sentence-transformers) for the final features, an intermediate layer,
texts of every length, the frozen prefix of fine-tuning and its prediction, and the
transferability scores; the fallback when a converted network disagrees; the library
without OpenVINO; the per-process and on-disk caches.
"""

import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import sktransfer
from sktransfer import FineTunedClassifier, FineTunedRegressor, PretrainedFeatureExtractor
from sktransfer._core import engine as engine_module
from sktransfer._core.activations import clear_cache
from sktransfer._core.engine import AUTO_MIN_ROWS, COMPILED, frozen_forward
from sktransfer._core.inference import run_batches
from sktransfer.exceptions import EngineWarning

pytest.importorskip("openvino")

TEXTS = [
    "a",
    "Fine.",
    "The plot is thin, but the acting carries the film from start to finish.",
    "Prices rose again in the third quarter, the central bank said on Tuesday.",
    " ".join(["An unusually long sentence that keeps going"] * 60),  # past max_length
    "What is the capital of Australia?",
    "i loved it",
]


def relative_difference(expected, got):
    expected, got = np.asarray(expected), np.asarray(got)
    return np.abs(expected - got).max() / np.abs(expected).max()


def in_engine(engine, fn, *args, **kwargs):
    with sktransfer.config_context(engine=engine, shared_cache_size=0):
        return fn(*args, **kwargs)


def converted(key):
    """Whether a network with this caller key was converted (not left to PyTorch)."""
    entries = [value for stored, value in COMPILED._items.items() if stored[0] == key]
    return bool(entries) and all(value is not None for value in entries)


@pytest.mark.parametrize(("layer", "pooling"), [(None, "avg"), ("blocks3", "avgmax")])
def test_image_features_equal_in_both_engines(crops, layer, pooling):
    X, _ = crops
    extractor = PretrainedFeatureExtractor(
        layer=layer, pooling=pooling, batch_size=7, image_size=64
    ).fit(X)
    eager = in_engine("torch", extractor.transform, X)
    compiled = in_engine("openvino", extractor.transform, X)  # 24 rows: a last batch of 3
    assert converted(extractor._forward_key)
    assert compiled.shape == eager.shape == (len(X), extractor.n_features_out_)
    assert relative_difference(eager, compiled) <= 1e-4


def test_text_embeddings_match_sentence_transformers_at_every_length():
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from sktransfer.backbones._text_models import model_folder

    extractor = PretrainedFeatureExtractor("all-MiniLM-L6-v2", batch_size=3).fit(TEXTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the long text's truncation
        compiled = in_engine("openvino", extractor.transform, TEXTS)
    assert converted(extractor._forward_key)
    reference = sentence_transformers.SentenceTransformer(
        str(model_folder("all-MiniLM-L6-v2")), device="cpu"
    ).encode(TEXTS, convert_to_numpy=True, batch_size=3)
    cosine = (compiled * reference).sum(1) / (
        np.linalg.norm(compiled, axis=1) * np.linalg.norm(reference, axis=1)
    )
    assert cosine.min() >= 0.9999


@pytest.mark.parametrize(
    ("estimator", "shared_cache_size"),
    [(FineTunedClassifier, 64), (FineTunedRegressor, 0)],
)
def test_fine_tuning_prefix_and_prediction_agree(crops, estimator, shared_cache_size):
    X, y = crops
    target = y if estimator is FineTunedClassifier else (y == "china").astype(float)
    results = []
    for engine in ("torch", "openvino"):
        with sktransfer.config_context(engine=engine, shared_cache_size=shared_cache_size):
            COMPILED.clear()
            clear_cache()  # the shared store would hand the torch run's rows over
            model = estimator(
                n_frozen=-2, max_epochs=2, batch_size=8, image_size=64, random_state=0
            )
            model.fit(X, target)
            method = model.predict_proba if estimator is FineTunedClassifier else model.predict
            results.append(method(X))
    assert np.abs(results[0] - results[1]).max() <= 1e-4
    assert any(value is not None for value in COMPILED._items.values())


def test_text_fine_tuning_prediction_agrees():
    y = np.array([0, 0, 1, 1, 0, 1, 1])
    results = []
    for engine in ("torch", "openvino"):
        with sktransfer.config_context(engine=engine, shared_cache_size=0):
            model = FineTunedClassifier("all-MiniLM-L6-v2", n_frozen=-1, max_epochs=1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # the long text's truncation
                results.append(model.set_params(random_state=0).fit(TEXTS, y).predict_proba(TEXTS))
    assert np.abs(results[0] - results[1]).max() <= 1e-4


def test_layer_auto_scores_agree(crops):
    X, y = crops
    fits = [
        in_engine(engine, PretrainedFeatureExtractor(layer="auto", image_size=64).fit, X, y)
        for engine in ("torch", "openvino")
    ]
    assert fits[0].layer_ == fits[1].layer_
    scores = [fit.layer_scores_.set_index("layer")["score"] for fit in fits]
    np.testing.assert_allclose(scores[0], scores[1].loc[scores[0].index], rtol=1e-3)


class _ValueBranch(torch.nn.Module):
    """A network whose path depends on its input's values: a trace keeps one branch."""

    def forward(self, x):
        return x * 2 if x.mean() > 0 else x - 3


def _run(fn, batches, engine, n_rows=4):
    with sktransfer.config_context(engine=engine):
        forward = frozen_forward(
            fn, key=("test", id(fn), engine), example=torch.ones(2, 3), device="cpu",
            n_rows=n_rows,
        )  # fmt: skip
        return forward, run_batches(forward, batches, sum(len(b) for b in batches), "cpu")


def test_a_converted_network_that_disagrees_falls_back_with_one_warning():
    fn = _ValueBranch()
    batches = [-torch.ones(2, 3), -torch.ones(2, 3)]  # traced on positive values
    with pytest.warns(EngineWarning, match="disagrees with PyTorch: relative difference"):
        forward, out = _run(fn, batches, "auto", n_rows=AUTO_MIN_ROWS)
    assert forward.engine_ == "torch"
    torch.testing.assert_close(out, -4 * torch.ones(4, 3))  # the eager branch
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same network again: no second warning
        forward = frozen_forward(
            fn, key=("test", id(fn), "auto"), example=torch.ones(2, 3), device="cpu",
            n_rows=AUTO_MIN_ROWS,
        )  # fmt: skip
        run_batches(forward, batches, 4, "cpu")
    with pytest.raises(RuntimeError, match="engine='openvino' cannot run this network"):
        _run(fn, batches, "openvino")
    with (  # asked for by name after "auto" gave up on the same network: still an error
        sktransfer.config_context(engine="openvino"),
        pytest.raises(RuntimeError, match="an earlier attempt in this process failed"),
    ):
        forward = frozen_forward(
            fn, key=("test", id(fn), "auto"), example=torch.ones(2, 3), device="cpu",
            n_rows=AUTO_MIN_ROWS,
        )  # fmt: skip
        run_batches(forward, batches, 4, "cpu")


def test_auto_converts_only_passes_large_enough_to_repay_it():
    fn = torch.nn.Linear(3, 2).eval().requires_grad_(False)
    small = [torch.randn(4, 3)]
    forward, _ = _run(fn, small, "auto", n_rows=4)
    assert forward.engine_ == "torch"
    forward, large = _run(fn, small, "auto", n_rows=AUTO_MIN_ROWS)
    assert forward.engine_ == "openvino"
    forward, again = _run(fn, small, "auto", n_rows=4)  # converted once: small passes use it
    assert forward.engine_ == "openvino"
    torch.testing.assert_close(large, fn(small[0]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(again, large)


def test_torch_engine_and_gpus_never_convert(monkeypatch):
    monkeypatch.setattr(engine_module, "_convert", lambda *a: pytest.fail("converted"))
    fn = torch.nn.Linear(3, 2).eval()
    forward, _ = _run(fn, [torch.randn(4, 3)], "torch", n_rows=10**6)
    assert forward.engine_ == "torch"
    with sktransfer.config_context(engine="openvino"):
        assert frozen_forward(fn, key="k", example=None, device="cuda", n_rows=9).engine == (
            "torch"
        )


def test_without_openvino_the_library_runs_in_torch(monkeypatch, crops):
    X, _ = crops
    monkeypatch.setattr(engine_module, "openvino", None)
    extractor = PretrainedFeatureExtractor().fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EngineWarning)
        features = in_engine("auto", extractor.transform, X)
    assert features.shape == (len(X), extractor.n_features_out_)
    with pytest.raises(ImportError, match="OpenVINO is not installed: pip install openvino"):
        in_engine("openvino", extractor.transform, X)


def test_a_process_that_cannot_import_openvino_extracts_features(tmp_path):
    script = (
        "import sys; sys.modules['openvino'] = None\n"  # import openvino raises ImportError
        "import numpy as np, sktransfer\n"
        "from sktransfer import PretrainedFeatureExtractor\n"
        "from sktransfer._core.engine import engine_available\n"
        "X = np.random.default_rng(0).integers(0, 255, (256, 32, 32, 3), dtype=np.uint8)\n"
        "features = PretrainedFeatureExtractor(image_size=32).fit_transform(X)\n"
        "print(engine_available(), features.shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "(256,", "1280)"]


def test_disk_cache_converts_once_across_processes(tmp_path, monkeypatch, crops):
    X, _ = crops
    extractor = PretrainedFeatureExtractor(pooling="max", image_size=64).fit(X)
    settings = {"engine_disk_cache": True, "models_folder": tmp_path, "engine": "openvino"}
    with sktransfer.config_context(**settings, shared_cache_size=0):
        first = extractor.transform(X)
        written = sorted(p.name for p in (tmp_path / "engine").iterdir())
        assert len(written) == 2 and not any("partial" in name for name in written)
        COMPILED.clear()  # as a new process would start
        monkeypatch.setattr(
            engine_module.openvino, "convert_model", lambda *a, **k: pytest.fail("converted")
        )
        second = extractor.transform(X)
    np.testing.assert_array_equal(first, second)


def test_bf16_is_close_or_refused(crops):
    """Without bf16 instructions, a warning and fp32; with them, bf16 output within
    BF16_MIN_COSINE of eager, or (engine="openvino" asked for) an error that says how far
    it was: never bf16 output further off than that."""
    X, _ = crops
    extractor = PretrainedFeatureExtractor(image_size=64).fit(X)
    eager = in_engine("torch", extractor.transform, X)
    with sktransfer.config_context(engine="openvino", inference_precision="bf16"):
        if engine_module.bf16_supported():
            try:
                compiled = extractor.transform(X)
            except RuntimeError as error:
                assert re.search(r"disagrees with PyTorch: row cosine 0\.\d+ < 0\.999", str(error))
                return
        else:
            with pytest.warns(EngineWarning, match="bfloat16 instructions"):
                compiled = extractor.transform(X)
    cosine = (eager * compiled).sum(1) / (
        np.linalg.norm(eager, axis=1) * np.linalg.norm(compiled, axis=1)
    )
    assert cosine.min() >= engine_module.BF16_MIN_COSINE


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("engine", "fast", "engine must be one of auto, torch, openvino; got 'fast'"),
        ("inference_precision", "fp16", "inference_precision must be one of fp32, bf16"),
        ("engine_disk_cache", "yes", "engine_disk_cache must be True or False"),
    ],
)
def test_engine_settings_are_checked(setting, value, message):
    with pytest.raises(ValueError, match=message):
        sktransfer.set_config(**{setting: value})


def test_engine_setting_reads_the_environment(monkeypatch):
    monkeypatch.setenv("SKTRANSFER_ENGINE", "torch")
    assert sktransfer.get_config()["engine"] == "torch"
    monkeypatch.setenv("SKTRANSFER_ENGINE", "gpu")
    with pytest.raises(ValueError, match="SKTRANSFER_ENGINE must be one of"):
        sktransfer.get_config()
