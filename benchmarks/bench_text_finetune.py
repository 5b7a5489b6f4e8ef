"""Text fine-tuning: FineTunedClassifier against skorch's recipe for Hugging Face models.

Two settings: the new head only (``n_frozen="all"``), and the last two encoder layers
with the head (``n_frozen=-2``). In each, both train the same network (all-MiniLM-L6-v2
from the bundled folder, mean pooling over the real tokens, L2 normalisation, a new
linear head) with the same parameters frozen, the same sentences, epochs, batch size,
optimizer (AdamW, weight decay 1e-4) and learning rates (head ``lr``, unfrozen layers
``backbone_lr``). The baseline is written the way skorch documents it for Hugging Face
models: ``skorch.hf.HuggingfacePretrainedTokenizer`` in a pipeline before a
``NeuralNetClassifier`` over the whole network, with ``skorch.callbacks.Freezer`` keeping
the frozen parameters fixed, so every epoch runs all six layers. Its tokenizer pads every
sentence to ``max_length``, set here to the longest sentence (so nothing is truncated):
about the padding of sktransfer's frozen-layer cache, which pads the training sentences
to the longest of them and computes the frozen layers once per fit.

Sentences: a stratified subsample of TREC's ``train_5500`` (a new one per repeat), scored
on ``TREC_10``, from ``../shared/datasets/text_subj_trec`` when present; else generated
sentences. Run: ``python benchmarks/bench_text_finetune.py``.
"""

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from skorch import NeuralNetClassifier
from skorch.callbacks import Freezer
from skorch.hf import HuggingfacePretrainedTokenizer
from torch import nn
from transformers import AutoModel, AutoTokenizer

from sktransfer import FineTunedClassifier, config_context
from sktransfer.backbones._text_models import model_folder

import _text_data
from _results import machine_line, write_section

# What each setting trains: sktransfer's n_frozen, and the parameter names the baseline
# leaves unfrozen.
SETTINGS = {
    "head only": ("all", ("head.",)),
    "last 2 layers + head": (
        -2,
        ("head.", "encoder.encoder.layer.4.", "encoder.encoder.layer.5."),
    ),
}


class SentenceClassifier(nn.Module):
    """A sentence encoder (mean pooling, L2-normalised) and a new linear head."""

    def __init__(self, folder, n_classes):
        super().__init__()
        self.encoder = AutoModel.from_pretrained(folder)
        self.head = nn.Linear(self.encoder.config.hidden_size, n_classes)

    def forward(self, input_ids, attention_mask):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return self.head(nn.functional.normalize(pooled, dim=1))


def plain_skorch(folder, data, args, seed, setting):
    X, y, X_test, y_test = data
    torch.manual_seed(seed)
    classes = np.unique(y)
    encode = {c: i for i, c in enumerate(classes)}
    trained = SETTINGS[setting][1]
    # pad to the longest sentence (training or test): nothing is truncated
    tokens = AutoTokenizer.from_pretrained(folder)(list(X) + list(X_test))["input_ids"]
    longest = max(len(ids) for ids in tokens)
    net = NeuralNetClassifier(
        SentenceClassifier,
        module__folder=folder,
        module__n_classes=len(classes),
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.AdamW,
        optimizer__weight_decay=1e-4,
        optimizer__param_groups=[("encoder.*", {"lr": args.backbone_lr})],
        lr=args.lr,
        max_epochs=args.epochs,
        batch_size=32,
        iterator_train__shuffle=True,
        train_split=None,
        callbacks=[Freezer(lambda name: not name.startswith(trained))],
        verbose=0,
    )
    pipe = make_pipeline(HuggingfacePretrainedTokenizer(folder, max_length=longest), net)
    pipe.fit(X, np.array([encode[c] for c in y]))
    return float(np.mean(classes[pipe.predict(X_test)] == y_test))


def ours(folder, data, args, seed, setting):
    X, y, X_test, y_test = data
    clf = FineTunedClassifier(
        _text_data.MODEL,
        n_frozen=SETTINGS[setting][0],
        max_epochs=args.epochs,
        lr=args.lr,
        backbone_lr=args.backbone_lr,
        batch_size=32,
        random_state=seed,
    )
    with config_context(shared_cache_size=0):  # each run computes its frozen layers
        return float(clf.fit(X, y).score(X_test, y_test))


def datasets(n, repeats):
    """One (X, y, X_test, y_test) per repeat, with its own training subsample."""
    if _text_data.available():
        X, y = _text_data.trec("train_5500.label")
        X_test, y_test = _text_data.trec("TREC_10.label")
        source = f"TREC: {n} questions of train_5500 (stratified, new per repeat) -> TREC_10"
    else:
        X, y = _text_data.generated(5 * n)
        X_test, y_test = _text_data.generated(n, seed=1)
        source = f"generated sentences, 3 topics: {n} to train, {n} to test"
    out = []
    for r in range(repeats):
        keep, _ = train_test_split(np.arange(len(X)), train_size=n, stratify=y, random_state=r)
        out.append(([X[i] for i in keep], y[keep], X_test, y_test))
    return out, f"{source} ({len(X_test)})"


def _runs(accs):
    return ", ".join(f"{a:.2f}" for a in accs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="training sentences")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--backbone-lr", type=float, default=2e-5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = str(model_folder(_text_data.MODEL))
    runs, source = datasets(args.n, args.repeats)
    ways = {"plain": plain_skorch, "sktransfer": ours}
    times = {(s, w): [] for s in SETTINGS for w in ways}
    accs = {(s, w): [] for s in SETTINGS for w in ways}
    warm = (runs[0][0][:8], runs[0][1][:8], runs[0][2][:4], runs[0][3][:4])
    for fn in ways.values():  # load libraries and weights once before timing
        fn(folder, warm, argparse.Namespace(**{**vars(args), "epochs": 1}), 0, "head only")
    for seed, data in enumerate(runs):  # interleaved, so drift hits both alike
        for setting in SETTINGS:
            for way, fn in ways.items():
                start = time.perf_counter()
                acc = fn(folder, data, args, seed, setting)
                times[setting, way].append(time.perf_counter() - start)
                accs[setting, way].append(acc)
    med_t = {k: statistics.median(v) for k, v in times.items()}
    med_a = {k: statistics.median(v) for k, v in accs.items()}
    ratios = {s: med_t[s, "plain"] / med_t[s, "sktransfer"] for s in SETTINGS}
    rows = []
    for setting, (n_frozen, _) in SETTINGS.items():
        labels = {
            "plain": "skorch: `HuggingfacePretrainedTokenizer` + net + `Freezer`",
            "sktransfer": f"`FineTunedClassifier(n_frozen={n_frozen!r})`",
        }
        for way, label in labels.items():
            k = (setting, way)
            speed = f"**{ratios[setting]:.1f}x**" if way == "sktransfer" else "1.0x"
            rows.append(
                f"| {setting} | {label} | {med_t[k]:.0f} | {speed} | "
                f"{med_a[k]:.3f} ({_runs(accs[k])}) |"
            )
    rows = "\n".join(rows)
    write_section(
        "text-finetune",
        f"""## Text fine-tuning with frozen layers (`bench_text_finetune.py`)

all-MiniLM-L6-v2 (bundled folder), mean pooling, new linear head; {args.epochs} epochs,
AdamW (weight decay 1e-4), head lr {args.lr:g}, unfrozen encoder layers at
{args.backbone_lr:g}, batch 32; {source}. Median of {args.repeats} interleaved runs (seeds
0..{args.repeats - 1}, each its own subsample).
{machine_line()}; {_text_data.load_line()}.

| trains | way | fit + predict, s (median) | speed | test accuracy, median (runs) |
|---|---|---|---|---|
{rows}

Training the head only is **{ratios["head only"]:.1f}x** faster, the last two layers
with the head **{ratios["last 2 layers + head"]:.1f}x**: sktransfer runs the frozen
layers once per fit, the recipe every epoch. They also differ in dropout: skorch puts the
whole module in train mode, so the frozen layers drop activations at random and the head
trains on noisier features than prediction uses; `FineTunedClassifier` keeps frozen
groups in eval mode.""",
    )


if __name__ == "__main__":
    main()
