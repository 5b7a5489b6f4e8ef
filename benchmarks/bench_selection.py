"""Do transferability scores rank candidates as cross-validated accuracy does, and how fast?

For every candidate (each offline EfficientNet-Lite backbone x 4 layers), the script
ranks the candidates with ``rank_candidates`` (LogME, H-score; LEEP for the final
features, which go through the ImageNet head) and measures each one's actual 5-fold
accuracy with a logistic regression on its features. Per data set it reports Kendall's
tau and the weighted tau (``scipy.stats``, which weighs the top of the ranking most)
between scores and accuracies, the accuracy lost by taking the top-scored candidate
instead of the best one (regret), and the CPU time of each step: the forward passes
(shared by the layers of a backbone, or one per candidate), the cross-validation fits and
the scores.

Data sets: scikit-learn's digits upscaled to 64 px, the same digits under a generated
shift (inverted, rotated by up to 40 degrees, noisy), and, when ``../shared/datasets``
is present, COIL-20 objects (64 px) and flowers3 (30 real photos, 128 px).
Run: ``python benchmarks/bench_selection.py``.
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.stats import kendalltau, weightedtau
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sktransfer import load_image_folder
from sktransfer.backbones import known_names
from sktransfer.selection import UnstableRankingWarning, h_score, logme, rank_candidates

from _results import machine_line, write_section

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
LAYERS = ["blocks4", "blocks5", "blocks6", None]
SCORINGS = ("logme", "hscore", "leep")
COLUMNS = (
    "data set, score, candidates, Kendall tau, weighted tau, top-scored, regret, "
    "p_best of top, warned"
).split(", ")
HEADER = f"| {' | '.join(COLUMNS)} |\n|{'---|' * len(COLUMNS)}"
COST_COLUMNS = (
    "data set, one pass, each pass, fits, LogME (no halves), H-score, "
    "per-candidate CV / ranking, fits / LogME"
).split(", ")
COST_HEADER = f"| {' | '.join(COST_COLUMNS)} |\n|{'---|' * len(COST_COLUMNS)}"


def upscale(images, size):
    """Grey images (n, h, w) in [0, 255] -> (n, size, size, 3) uint8."""
    out = [
        np.asarray(Image.fromarray(im.astype(np.uint8)).resize((size, size), Image.BILINEAR))
        for im in images
    ]
    return np.repeat(np.stack(out)[..., None], 3, axis=-1)


def digits(n, shifted=False, seed=0):
    data = load_digits()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(data.target))[:n]
    images = data.images[idx] / 16 * 255
    if not shifted:
        return upscale(images, 64), data.target[idx]
    X = upscale(images, 64)
    out = []
    for img in X:
        im = Image.fromarray(255 - img).rotate(rng.uniform(-40, 40), fillcolor=(255,) * 3)
        noisy = np.asarray(im, dtype=float) + rng.normal(0, 40, (64, 64, 1))
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return np.stack(out), data.target[idx]


def coil(n_per_class, seed=0):
    data = np.load(SHARED / "da_digits_coil" / "coil20.npz")
    X = data["coil1_X"].reshape(-1, 32, 32).transpose(0, 2, 1) * 255
    y = data["coil1_y"].ravel()
    rng = np.random.default_rng(seed)
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), n_per_class, replace=False) for c in np.unique(y)]
    )
    return upscale(X[idx], 64), y[idx]


def datasets(n):
    sets = {
        f"digits, 64 px ({n} images, 10 classes)": (*digits(n), 64),
        f"digits shifted: inverted, rotated, noisy ({n}, 10 classes)": (
            *digits(n, shifted=True),
            64,
        ),
    }
    if (SHARED / "da_digits_coil" / "coil20.npz").is_file():
        X, y = coil(6)
        sets[f"COIL-20 objects, 64 px ({len(y)} images, 20 classes)"] = (X, y, 64)
    if (SHARED / "flowers3").is_dir():
        paths, labels = load_image_folder(SHARED / "flowers3")
        sets["flowers3 photos, 128 px (30 images, 3 classes)"] = (np.asarray(paths), labels, 128)
    return sets


def candidates():
    names = [name for name in known_names() if name.startswith("efficientnet_lite")]
    return [(name, LAYERS) for name in names]


def _keep_features(X, y, wanted, size):
    """Features of the ``wanted`` candidates, in order, and the CPU seconds of the passes."""
    features = []

    def keep(F, labels):
        features.append(F)
        return 0.0

    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnstableRankingWarning)
        rank_candidates(X, y, wanted, scoring=keep, image_size=size, n_resamples=0)
    return features, time.process_time() - start


def cross_validated(X, y, size):
    """Every candidate's features and 5-fold accuracy, and the CPU seconds of each step."""
    keys = [(name, layer) for name, layers in candidates() for layer in layers]
    features, one_pass = _keep_features(X, y, candidates(), size)  # calls in this order
    each_pass = sum(_keep_features(X, y, [key], size)[1] for key in keys)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    accuracy = {}
    start = time.process_time()
    for key, F in zip(keys, features, strict=True):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        accuracy[key] = cross_val_score(model, F, y, cv=cv).mean()
    seconds = {"one pass": one_pass, "each pass": each_pass, "fits": time.process_time() - start}
    return dict(zip(keys, features, strict=True)), accuracy, seconds


def halves(y, n, seed=0):
    """Random halves of each class, as rank_candidates draws them for ``score_std``."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == label) for label in np.unique(y)]
    return [
        np.concatenate([rng.choice(g, (len(g) + 1) // 2, replace=False) for g in groups])
        for _ in range(n)
    ]


def scoring_seconds(score, features, y, n_resamples):
    """CPU seconds of scoring every candidate on all images and on ``n_resamples`` halves."""
    sets = halves(y, n_resamples)
    start = time.process_time()
    for F in features.values():
        score(F, y)
        for idx in sets:
            score(F[idx], y[idx])
    return time.process_time() - start


def ranked(X, y, size, scoring):
    """The ranking rank_candidates gives, and the warnings it raised."""
    if scoring == "leep":  # the source head reads the final features only
        wanted = [(name, None) for name, _ in candidates()]
    else:
        wanted = candidates()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnstableRankingWarning)
        frame = rank_candidates(X, y, wanted, scoring=scoring, image_size=size, random_state=0)
    return frame, [str(w.message) for w in caught]


def label(backbone, layer):
    return f"{backbone.replace('efficientnet_', '')}/{layer or 'final'}"


def compare(frame, accuracy):
    keys = list(zip(frame.backbone, frame.layer, strict=True))
    acc = np.array([accuracy[k] for k in keys])
    score = frame.score.to_numpy()
    tau = kendalltau(score, acc).statistic
    wtau = weightedtau(score, acc).statistic
    best = max(accuracy[k] for k in keys)
    return tau, wtau, best - acc[0], label(*keys[0]), len(keys)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=300)
    args = parser.parse_args()
    # One thread for everything: CPU time then measures work, not threads waiting for each
    # other on a shared machine (which made the same LogME call take 35 times longer).
    torch.set_num_threads(1)
    threadpool_limits(1)

    quality, costs, details = [], [], []
    for name, (X, y, size) in datasets(args.n_images).items():
        features, accuracy, seconds = cross_validated(X, y, size)
        logme_s = scoring_seconds(logme, features, y, 10)
        plain_s = scoring_seconds(logme, features, y, 0)
        hscore_s = scoring_seconds(h_score, features, y, 10)
        per_candidate_cv = seconds["each pass"] + seconds["fits"]
        ranking = seconds["one pass"] + logme_s
        costs.append(
            f"| {name} | {seconds['one pass']:.1f} | {seconds['each pass']:.1f} | "
            f"{seconds['fits']:.1f} | {logme_s:.1f} ({plain_s:.2f}) | {hscore_s:.1f} | "
            f"**{per_candidate_cv / ranking:.1f}x** | {seconds['fits'] / logme_s:.1f}x |"
        )
        best_key = max(accuracy, key=accuracy.get)
        details.append(
            f"- {name}: best {label(*best_key)} ({accuracy[best_key]:.3f}); "
            + ", ".join(f"{label(*k)} {v:.3f}" for k, v in accuracy.items())
        )
        for scoring in SCORINGS:
            frame, caught = ranked(X, y, size, scoring)
            tau, wtau, regret, top, n = compare(frame, accuracy)
            quality.append(
                f"| {name} | {scoring} | {n} | {tau:+.2f} | {wtau:+.2f} | {top} | "
                f"{regret:.3f} | {frame.p_best.iloc[0]:.1f} | {'yes' if caught else 'no'} |"
            )
            print(quality[-1], flush=True)
        print(costs[-1], flush=True)
    write_section(
        "selection",
        f"""## Choosing a backbone and a layer by score (`bench_selection.py`)

Candidates: {", ".join(n for n, _ in candidates())} (bundled ImageNet weights) x layers
{", ".join(str(layer or "final") for layer in LAYERS)} (pooled by average). Truth: the
5-fold accuracy of `StandardScaler + LogisticRegression` on each candidate's features.
{machine_line()}; everything on one thread (torch and BLAS).

**How well the scores rank.** Kendall tau and weighted tau (which weighs the top of the
ranking most) between each score and the accuracies; regret: the best accuracy minus that
of the top-scored candidate; p_best: how often the top-scored candidate was first on 10
random halves of the images; warned: whether `rank_candidates` raised an
`UnstableRankingWarning`. LEEP scores only the final features (through the ImageNet head),
so it ranks 3 candidates.

{HEADER}
{chr(10).join(quality)}

**What it costs** (CPU seconds, `time.process_time`). One pass: a forward pass per
backbone for all its candidate layers, as `rank_candidates` runs. Each pass: a forward pass
per candidate, up to its layer, as separate extractors run (each feature computed once,
as with the shared activation cache). Fits: the 5-fold logistic regressions of all 12
candidates. LogME and H-score: scoring all 12 candidates on all images and on 10 halves
(LogME without the halves in brackets). Per-candidate CV / ranking: (each pass + fits) /
(one pass + LogME).

{COST_HEADER}
{chr(10).join(costs)}

Accuracy of every candidate:

{chr(10).join(details)}""",
    )


if __name__ == "__main__":
    main()
