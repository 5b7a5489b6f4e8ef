"""The inference engine: eager PyTorch against OpenVINO (and ONNX Runtime), in one run.

Four measurements, each against its baseline in the same process:

1. **Network only**, a batch of 32 at 224 px: eager PyTorch in the channels-last layout
   (what ``engine="torch"`` runs), OpenVINO fp32 through sktransfer's engine, OpenVINO
   bf16 where the CPU has it, and ONNX Runtime (when ``onnxruntime`` is installed; it is
   not a dependency), for EfficientNet-Lite0 and Lite2 (bundled weights) and a
   torchvision ResNet-50 (random weights: none are bundled); conversion time.
2. **Extraction end to end** on real photos: a plain torch loop, ``engine="torch"`` and
   ``engine="auto"``, with the largest relative difference of the features.
3. **Sentence embeddings** (all-MiniLM-L6-v2): ``SentenceTransformer.encode``,
   ``engine="torch"`` and ``"auto"``, with the smallest cosine between them.
4. **Fine-tuning** fit + predict with each engine, ``n_frozen="all"`` and ``-2``, and the
   first call's cost in a fresh process.

The shared feature store is off, so every run computes the network. Photos:
``../shared/datasets/office_caltech10`` and ``flowers3`` when present, else crops of
scikit-learn's sample photos. Run: ``python benchmarks/bench_engine.py``.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch
from bench_extract import image_paths, plain_loop, plain_model

import sktransfer
from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor, load_backbone
from sktransfer._core.engine import COMPILED, bf16_supported, frozen_forward

from _results import machine_line, write_section

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
OFFICE = SHARED / "office_caltech10"
SUBJ = SHARED / "text_subj_trec"


def interleaved(ways, repeats):
    """Median seconds of each callable in ``ways``, run in turn (drift hits all alike)."""
    for run in ways.values():
        run()  # warm up
    times = {name: [] for name in ways}
    for _ in range(repeats):
        for name, run in ways.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def relative(expected, got):
    expected, got = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    return float(np.abs(expected - got).max() / np.abs(expected).max())


def cosine_min(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def onnx_runtime(net, x):
    """Return (run, conversion seconds) for ONNX Runtime, or (None, why)."""
    try:
        import onnxruntime
    except ImportError:
        return None, "not installed"
    path = Path(tempfile.mkdtemp()) / "net.onnx"
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net, (x,), path, input_names=["x"], dynamic_axes={"x": {0: "n"}}, dynamo=False
            )
    except Exception as error:  # noqa: BLE001 - reported in the table
        return None, f"export failed: {type(error).__name__}"
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    seconds = time.perf_counter() - start
    return (lambda batch: session.run(None, {"x": batch.numpy()})[0]), seconds


def network_rows(name, net, batch, repeats):
    """Images/s of each way to run ``net`` on ``batch``, and their differences."""
    net = net.eval().requires_grad_(False)
    eager_net = net.to(memory_format=torch.channels_last)
    channels_last = batch.contiguous(memory_format=torch.channels_last)

    def eager():
        with torch.inference_mode():
            return eager_net(channels_last)

    reference = eager()
    ways, info = {"eager PyTorch, channels-last": eager}, {}
    for precision in ("fp32", "bf16") if bf16_supported() else ("fp32",):
        with sktransfer.config_context(engine="openvino", inference_precision=precision):
            forward = frozen_forward(
                net, key=("bench", name), example=batch[:2], device="cpu", n_rows=len(batch)
            )
        start = time.perf_counter()
        with torch.inference_mode():
            forward(batch)  # converts, checks against eager and returns eager's output
            out = forward(batch)  # the converted network's output
        way = f"OpenVINO {precision} (sktransfer's engine)"
        ways[way] = partial(forward, batch)
        fidelity = f"rel {relative(reference, out):.1e}, cos {cosine_min(reference, out):.6f}"
        info[way] = (f"{time.perf_counter() - start:.1f}", fidelity)
    run, convert = onnx_runtime(net, batch[:2])
    if run is None:
        info[f"ONNX Runtime ({convert})"] = None
    else:
        ways["ONNX Runtime (CPU provider)"] = partial(run, batch)
        fidelity = f"rel {relative(reference, run(batch)):.1e}"
        info["ONNX Runtime (CPU provider)"] = (f"{convert:.1f}", fidelity)
    seconds = interleaved(ways, repeats)
    base = seconds["eager PyTorch, channels-last"]
    rows = []
    for way in [*ways, *(w for w in info if w not in ways)]:
        convert, fidelity = info.get(way) or ("-", "-")
        if way not in ways:
            rows.append((name, way, float("nan"), float("nan"), "-", "-"))
            continue
        rate = len(batch) / seconds[way]
        rows.append((name, way, rate, base / seconds[way], convert, fidelity))
    return rows


def networks(batch_size, repeats):
    batch = torch.randn(batch_size, 3, 224, 224)
    rows = []
    for spec in ("efficientnet_lite0", "efficientnet_lite2"):
        rows += network_rows(spec, load_backbone(spec).net, batch, repeats)
    import torchvision

    resnet = torchvision.models.resnet50()
    rows += network_rows("resnet50 (random weights)", resnet, batch, repeats)
    lines = [
        "| network | way | images/s | vs eager | conversion s | fidelity |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {w} | {r:.1f} | {x:.2f}x | {c} | {f} |" for n, w, r, x, c, f in rows]
    return "\n".join(lines)


def office_paths(n):
    paths = sorted(str(p) for p in OFFICE.glob("*/*/*.jpg"))
    if not paths:
        return None
    rng = np.random.default_rng(0)
    return [paths[i] for i in rng.choice(len(paths), n, replace=False)]


def extraction(n, batch_size, repeats):
    sets = [image_paths(n)]
    office = office_paths(n)
    if office is not None:
        sets.append((office, "office_caltech10 (random photos of all four domains)"))
    model = plain_model()
    lines = [
        '| photos | plain torch loop | `engine="torch"` | `engine="auto"` | auto vs plain '
        "| auto vs torch | max relative difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for paths, source in sets:
        extractor = PretrainedFeatureExtractor(batch_size=batch_size).fit(paths)
        ways = {
            "plain": partial(plain_loop, model, paths, batch_size),
            "torch": partial(in_engine, "torch", extractor.transform, paths),
            "auto": partial(in_engine, "auto", extractor.transform, paths),
        }
        rates = {way: len(paths) / t for way, t in interleaved(ways, repeats).items()}
        features = {way: ways[way]() for way in ("torch", "auto")}
        rel = relative(features["torch"], features["auto"])
        lines.append(
            f"| {source}, {len(paths)} | {rates['plain']:.1f} | {rates['torch']:.1f} | "
            f"{rates['auto']:.1f} | **{rates['auto'] / rates['plain']:.2f}x** | "
            f"{rates['auto'] / rates['torch']:.2f}x | {rel:.1e} |"
        )
    return "\n".join(lines)


def in_engine(engine, fn, *args):
    with sktransfer.config_context(engine=engine):
        return fn(*args)


def sentences(n):
    if SUBJ.is_dir():
        lines = []
        for name in ("subj.objective", "subj.subjective"):
            lines += (SUBJ / name).read_text(encoding="latin-1").splitlines()[: n // 2]
        return lines, f"{len(lines)} SUBJ sentences"
    from sklearn.datasets import load_sample_images  # noqa: F401 - no text set bundled

    words = "the film a plot is thin but acting carries it from start to finish".split()
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, rng.integers(1, 40))) for _ in range(n)]
    return lines, f"{n} random sentences"


def text(n, repeats):
    from sentence_transformers import SentenceTransformer

    from sktransfer.backbones._text_models import model_folder

    lines, source = sentences(n)
    folder = str(model_folder("all-MiniLM-L6-v2"))
    reference = SentenceTransformer(folder, device="cpu")
    extractor = PretrainedFeatureExtractor("all-MiniLM-L6-v2", batch_size=32).fit(lines)
    ways = {
        "`SentenceTransformer.encode`": lambda: reference.encode(lines, batch_size=32),
        'sktransfer `engine="torch"`': lambda: in_engine("torch", extractor.transform, lines),
        'sktransfer `engine="auto"`': lambda: in_engine("auto", extractor.transform, lines),
    }
    for backend in ("onnx", "openvino"):
        try:
            model = SentenceTransformer(folder, device="cpu", backend=backend)
            ways[f"sentence-transformers `backend={backend!r}`"] = lambda m=model: m.encode(
                lines, batch_size=32
            )
        except Exception as error:  # noqa: BLE001 - reported below
            ways[f"sentence-transformers `backend={backend!r}` ({type(error).__name__})"] = None
    base = reference.encode(lines, batch_size=32)
    lines_out = ["| way | sentences/s | vs encode | min cosine vs encode |", "|---|---|---|---|"]
    runnable = {way: run for way, run in ways.items() if run is not None}
    seconds = interleaved(runnable, repeats)
    first = seconds["`SentenceTransformer.encode`"]
    for way, run in ways.items():
        if run is None:
            lines_out.append(f"| {way}: did not load here | - | - | - |")
            continue
        cos = cosine_min(base, np.asarray(run()))
        rate = len(lines) / seconds[way]
        lines_out.append(f"| {way} | {rate:.1f} | {first / seconds[way]:.2f}x | {cos:.7f} |")
    return source, "\n".join(lines_out)


def fine_tuning(n):
    paths = office_paths(n)
    if paths is None:
        paths, _ = image_paths(n)
    y = [Path(p).parent.name for p in paths]
    lines = ["| `n_frozen` | engine | fit + predict s | vs torch | max prob difference |"]
    lines.append("|---|---|---|---|---|")
    for n_frozen in ("all", -2):
        seconds, probs = {}, {}
        for engine in ("torch", "auto"):
            COMPILED.clear()
            with sktransfer.config_context(engine=engine):
                start = time.perf_counter()
                model = FineTunedClassifier(n_frozen=n_frozen, max_epochs=5, random_state=0)
                probs[engine] = model.fit(paths, y).predict_proba(paths)
                seconds[engine] = time.perf_counter() - start
        diff = np.abs(probs["torch"] - probs["auto"]).max()
        for engine in ("torch", "auto"):
            ratio = seconds["torch"] / seconds[engine]
            lines.append(
                f"| {n_frozen} | {engine} | {seconds[engine]:.1f} | {ratio:.2f}x | {diff:.1e} |"
            )
    return len(paths), "\n".join(lines)


FRESH = """
import time, numpy as np, sktransfer
start = time.perf_counter()
from sktransfer import PretrainedFeatureExtractor
X = np.random.default_rng(0).integers(0, 255, ({n}, 224, 224, 3), dtype=np.uint8)
with sktransfer.config_context(engine={engine!r}, shared_cache_size=0):
    PretrainedFeatureExtractor().fit(X).transform(X)
print(time.perf_counter() - start)
"""


def first_call(n=32):
    out = {}
    for engine in ("torch", "openvino"):
        script = FRESH.format(n=n, engine=engine)
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        )
        out[engine] = float(result.stdout.split()[-1])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-images", type=int, default=256)
    parser.add_argument("--n-texts", type=int, default=512)
    args = parser.parse_args()
    sktransfer.set_config(shared_cache_size=0)  # time the network, not the store
    nets = networks(32, args.repeats)
    ends = extraction(args.n_images, 32, args.repeats)
    text_source, texts = text(args.n_texts, args.repeats)
    n_fit, fits = fine_tuning(300)
    fresh = first_call()
    write_section("engine", report(args, nets, ends, text_source, texts, n_fit, fits, fresh))


def report(args, nets, ends, text_source, texts, n_fit, fits, fresh):
    return f"""## The inference engine (`bench_engine.py`)

{machine_line()}; OpenVINO {_version("openvino")}, ONNX Runtime {_version("onnxruntime")};
CPU bfloat16: {bf16_supported()}. Medians of {args.repeats} runs after a warm-up; the shared
store off. The ways are timed in turn, so each ratio compares them under the same load; the
rates themselves depend on it (1-minute load average at the end: {os.getloadavg()[0]:.1f}
on {os.cpu_count()} cores).

**Network only** (batch of 32 random 224 px images):

{nets}

**Extraction end to end** (decoding, resizing and the network; batch 32, EfficientNet-Lite0):

{ends}

**Sentence embeddings** ({text_source}, all-MiniLM-L6-v2, batch 32, sorted by length):

{texts}

**Fine-tuning** ({n_fit} office_caltech10 photos, 10 classes, 5 epochs, fit + predict_proba
on the same photos; `auto` converts the frozen stages once per fit):

{fits}

**First call in a fresh process** (import, fit and transform of 32 images): torch
{fresh["torch"]:.1f} s, OpenVINO {fresh["openvino"]:.1f} s (conversion included).

{WHY}
"""


WHY = """**Why OpenVINO, and not ONNX Runtime.** Both run the exported networks equal to eager
PyTorch within 1e-5 (relative), and several times faster on the EfficientNets. OpenVINO is
the engine because: it converts the PyTorch module directly (`openvino.convert_model`),
where ONNX Runtime needs a `torch.onnx.export` first, whose tracing exporter recorded a
Hugging Face text model's attention mask as a constant path (wrong embeddings for padded
batches); it keeps the batch and the text length dynamic in one compiled network; it has a
bfloat16 inference hint for CPUs that support it; and it is the faster of the two on the
EfficientNets the library bundles, its default backbones. ONNX Runtime converts faster and
can be as fast or faster on other architectures (ResNet-50 here); the engine's seam
(`sktransfer._core.engine`) is one module, so a second runtime would be an addition.
sentence-transformers' own `backend="onnx"` and `"openvino"` need the `optimum` package,
whose releases ask for another `transformers` than the one installed here: not measured."""


def _version(name):
    try:
        return __import__(name).__version__
    except ImportError:
        return "not installed"


if __name__ == "__main__":
    main()
