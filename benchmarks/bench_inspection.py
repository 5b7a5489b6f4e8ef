"""Seeing why: do the maps point at the object, and do the words they pick matter?

Three checks of :func:`sktransfer.inspection.explain` on real photos and sentences, each
over several seeds (every seed draws new data and fits new models):

- **the pointing game** (Zhang et al., 2016): an Office-Caltech product photo (``amazon``,
  one of two classes drawn per seed) is pasted at a random place in one quadrant of a
  224 px canvas whose background is a web photo (``caltech10``) of another class; the
  models learn which object is pasted; on held-out canvases (photos not used in training)
  a hit is a map whose maximum falls inside the pasted object. For each method on the model
  it explains: Grad-CAM on ``FineTunedClassifier()`` (the library's defaults: the head
  alone trains, on the frozen network) and on ``FineTunedClassifier(n_frozen=-2)`` (the
  top two layer groups fine-tuned too), the class activation map on
  ``Pipeline(PretrainedFeatureExtractor(), LogisticRegression())`` and
  occlusion on ``Pipeline(PretrainedFeatureExtractor(), SVC())`` (RBF kernel); against a
  random map (the hit rate is the object's share of the canvas) and a centre-bias map
  (its maximum at the centre);
- **deletion** (Petsiuk et al., 2018): the canvas is cut into an 8x8 grid of cells, and
  the cells of highest map value are covered with the mean colour (1/16, 1/8, 1/4, 1/2 of
  them), against as many random cells: a map that finds what the model uses makes its
  accuracy fall faster. For texts, a ``Pipeline(PretrainedFeatureExtractor(
  "all-MiniLM-L6-v2"), LogisticRegression())`` trained on customer-review sentences (CR)
  loses its 1, 2 or 4 most-attributed words (occlusion) against as many random ones;
- **time** per explained image or text.

Data: ``../shared/datasets/office_caltech10`` and ``../shared/datasets/text_cr_mpqa``
(a development checkout has them); without them the script says so and stops. Run:
``python benchmarks/bench_inspection.py`` (about 15 minutes on 2 CPU cores).
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC

from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor
from sktransfer.inspection import explain

from _results import machine_line, write_section

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
OFFICE = DATASETS / "office_caltech10"
CR = DATASETS / "text_cr_mpqa"
SIZE, SIDE, MARGIN = 224, 80, 14  # canvas, pasted object, edge the centre crop cuts
GRID = 8  # deletion cells per side
IMAGE_FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2)
WORD_COUNTS = (1, 2, 4)
METHODS = {  # name: (how the model is made, explain's method)
    "Grad-CAM, `FineTunedClassifier()`": ("fine-tuned", "gradcam"),
    "Grad-CAM, `FineTunedClassifier(n_frozen=-2)`": ("fine-tuned, top two groups", "gradcam"),
    "CAM, extractor + `LogisticRegression`": ("linear", "cam"),
    "occlusion, extractor + `SVC` (RBF)": ("svc", "occlusion"),
}


# --- the data --------------------------------------------------------------------------------
def _paths(domain):
    return {
        folder.name: sorted(str(p) for p in folder.glob("*.jpg"))
        for folder in sorted((OFFICE / domain).iterdir())
    }


def _rgb(path, size):
    with Image.open(path) as photo:
        return photo.convert("RGB").resize(size, Image.Resampling.BICUBIC)


def canvases(objects, backgrounds, n, rng):
    """``n`` canvases: an object photo pasted in a quadrant of a background photo.

    ``objects`` is ``[paths of class 0, paths of class 1]``; returns ``(X, y, corners)``.
    """
    X, y, corners = np.empty((n, SIZE, SIZE, 3), np.uint8), np.arange(n) % 2, []
    half = SIZE // 2
    for i in range(n):
        canvas = np.asarray(_rgb(backgrounds[rng.integers(len(backgrounds))], (SIZE, SIZE)))
        paths = objects[y[i]]
        thing = np.asarray(_rgb(paths[rng.integers(len(paths))], (SIDE, SIDE)))
        q = rng.integers(4)
        row = (q // 2) * half + (MARGIN if q // 2 == 0 else 0)
        col = (q % 2) * half + (MARGIN if q % 2 == 0 else 0)
        row, col = (
            row + rng.integers(half - MARGIN - SIDE + 1),
            col + rng.integers(half - MARGIN - SIDE + 1),
        )
        canvas = canvas.copy()
        canvas[row : row + SIDE, col : col + SIDE] = thing
        X[i] = canvas
        corners.append((row, col))
    return X, y, corners


def image_task(args, rng):
    """Train and held-out canvases of two object classes, on backgrounds of the others."""
    objects, scenes = _paths("amazon"), _paths("caltech10")
    names = sorted(objects)
    pair = [names[i] for i in rng.choice(len(names), 2, replace=False)]
    split = {}
    for name in pair:
        order = rng.permutation(len(objects[name]))
        split[name] = [objects[name][i] for i in order]
    backgrounds = [p for name in names if name not in pair for p in scenes[name]]
    rng.shuffle(backgrounds)
    cut = len(backgrounds) // 2
    train = [split[name][: len(split[name]) // 2] for name in pair]
    test = [split[name][len(split[name]) // 2 :] for name in pair]
    X, y, _ = canvases(train, backgrounds[:cut], args.n_train, rng)
    X_test, y_test, corners = canvases(test, backgrounds[cut:], args.n_test, rng)
    return pair, (X, y), (X_test, y_test, corners)


def sentences(rng, n_train, n_test):
    """CR sentences of 5 to 40 words: ``(train, test)`` as ``(texts, labels)`` pairs."""
    texts, labels = [], []
    for label, name in enumerate(("custrev.neg", "custrev.pos")):
        lines = (CR / name).read_text(encoding="latin-1").splitlines()
        kept = [line.strip() for line in lines if 5 <= len(line.split()) <= 40]
        texts += kept
        labels += [label] * len(kept)
    order = rng.permutation(len(texts))[: n_train + n_test]
    texts, labels = [texts[i] for i in order], np.asarray(labels)[order]
    return (texts[:n_train], labels[:n_train]), (texts[n_train:], labels[n_train:])


# --- the measures ----------------------------------------------------------------------------
def pointing(maps, corners):
    """Share of maps whose maximum falls inside the pasted object."""
    found = []
    for heat, (row, col) in zip(maps, corners, strict=True):
        i, j = np.unravel_index(np.argmax(heat), heat.shape)
        found.append(row <= i < row + SIDE and col <= j < col + SIDE)
    return float(np.mean(found))


def baselines(corners, rng, draws=100):
    """Pointing of a random map (a uniform random maximum) and of a centre-bias map."""
    shape = (SIZE, SIZE)
    random = np.mean(
        [pointing([rng.random(shape) for _ in corners], corners) for _ in range(draws)]
    )
    centre = np.zeros(shape)
    centre[SIZE // 2, SIZE // 2] = 1
    return float(random), pointing([centre] * len(corners), corners)


def cell_order(heat):
    """The 8x8 grid's cells by their mean map value, highest first."""
    c = SIZE // GRID
    cells = heat.reshape(GRID, c, GRID, c).mean((1, 3)).ravel()
    return np.argsort(-cells, kind="stable")


def covered(X, orders, k):
    """``X`` with the first ``k`` cells of each image's order filled with the mean colour."""
    out, c = X.copy(), SIZE // GRID
    for n, order in enumerate(orders):
        for cell in order[:k]:
            r, q = divmod(int(cell), GRID)
            out[n, r * c : (r + 1) * c, q * c : (q + 1) * c] = (124, 116, 104)
    return out


def image_deletion(model, X, y, maps, rng):
    """Accuracy with the top cells by the map, and random cells, covered: two lists."""
    orders = {"map": [cell_order(m) for m in maps], "random": []}
    orders["random"] = [rng.permutation(GRID * GRID) for _ in maps]
    out = {"map": [], "random": []}
    for fraction in IMAGE_FRACTIONS:
        k = int(round(fraction * GRID * GRID))
        for name in out:
            out[name].append(float(np.mean(model.predict(covered(X, orders[name], k)) == y)))
    return out


def _kept(explanation, drop):
    kept = [t for i, t in enumerate(explanation.tokens) if i not in drop]
    return " ".join(kept) or "."


def text_deletion(model, explanations, y, rng):
    """Accuracy with the top words by attribution, and random words, removed."""
    base = np.mean(model.predict([_kept(e, set()) for e in explanations]) == y)
    out = {"map": [], "random": []}
    for k in WORD_COUNTS:
        top = [set(np.argsort(-e.scores, kind="stable")[:k].tolist()) for e in explanations]
        anywhere = [set(rng.permutation(len(e.tokens))[:k].tolist()) for e in explanations]
        for name, drops in (("map", top), ("random", anywhere)):
            texts = [_kept(e, d) for e, d in zip(explanations, drops, strict=True)]
            out[name].append(float(np.mean(model.predict(texts) == y)))
    return float(base), out


# --- one seed ---------------------------------------------------------------------------------
def _models(seed):
    return {
        "fine-tuned": FineTunedClassifier(random_state=seed),
        "fine-tuned, top two groups": FineTunedClassifier(n_frozen=-2, random_state=seed),
        "linear": make_pipeline(PretrainedFeatureExtractor(), LogisticRegression(max_iter=1000)),
        "svc": make_pipeline(PretrainedFeatureExtractor(), SVC()),
    }


def run_images(args, seed):
    rng = np.random.default_rng(seed)
    pair, (X, y), (X_test, y_test, corners) = image_task(args, rng)
    result = {"pair": pair, "baselines": baselines(corners, rng)}
    models = _models(seed)
    for name, (kind, method) in METHODS.items():
        model = models[kind].fit(X, y)
        accuracy = float(np.mean(model.predict(X_test) == y_test))
        start = time.perf_counter()
        maps = explain(model, X_test, method=method)
        seconds = (time.perf_counter() - start) / len(X_test)
        result[name] = {
            "accuracy": accuracy,
            "pointing": pointing(maps, corners),
            "seconds": seconds,
            "deletion": image_deletion(model, X_test, y_test, maps, rng),
        }
        print(f"  {name}: {result[name]}", flush=True)
    return result


def run_texts(args, seed):
    rng = np.random.default_rng(seed)
    (texts, y), (held_out, y_test) = sentences(rng, args.n_texts, args.n_test_texts)
    extractor = PretrainedFeatureExtractor("all-MiniLM-L6-v2")
    model = make_pipeline(extractor, LogisticRegression(max_iter=1000)).fit(texts, y)
    start = time.perf_counter()
    explanations = explain(model, held_out)
    seconds = (time.perf_counter() - start) / len(held_out)
    base, deletion = text_deletion(model, explanations, y_test, rng)
    words = float(np.mean([len(e.tokens) for e in explanations]))
    result = {"accuracy": base, "deletion": deletion, "seconds": seconds, "tokens": words}
    print(f"  texts: {result}", flush=True)
    return result


# --- the report ------------------------------------------------------------------------------
def ms(values, scale=1.0, digits=2):
    values = np.asarray(values, dtype=float) * scale
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def pointing_table(images):
    rows = ["| method, model | model accuracy | pointing | s per image |", "|---|---|---|---|"]
    for name in METHODS:
        runs = [r[name] for r in images]
        rows.append(
            f"| {name} | {ms([r['accuracy'] for r in runs])} | "
            f"{ms([r['pointing'] for r in runs])} | {ms([r['seconds'] for r in runs], digits=3)} |"
        )
    rows.append(f"| random map | | {ms([r['baselines'][0] for r in images])} | |")
    rows.append(f"| centre-bias map | | {ms([r['baselines'][1] for r in images])} | |")
    return "\n".join(rows)


def deletion_table(images):
    head = " | ".join(f"{f:.3g} covered" for f in IMAGE_FRACTIONS)
    rows = [f"| method, cells covered | none | {head} |", "|---|---" + "|---" * 4 + "|"]
    for name in METHODS:
        runs = [r[name] for r in images]
        none = ms([r["accuracy"] for r in runs])
        for which, label in (("map", "highest of the map"), ("random", "random")):
            cells = [ms([r["deletion"][which][i] for r in runs]) for i in range(4)]
            rows.append(f"| {name}: {label} | {none} | {' | '.join(cells)} |")
    return "\n".join(rows)


def text_table(texts):
    head = " | ".join(f"{k} removed" for k in WORD_COUNTS)
    rows = [f"| words | none | {head} |", "|---|---" + "|---" * len(WORD_COUNTS) + "|"]
    none = ms([r["accuracy"] for r in texts])
    for which, label in (("map", "most attributed"), ("random", "random")):
        cells = [ms([r["deletion"][which][i] for r in texts]) for i in range(len(WORD_COUNTS))]
        rows.append(f"| {label} | {none} | {' | '.join(cells)} |")
    return "\n".join(rows)


def report(args, images, texts, minutes):
    pairs = "; ".join(" / ".join(r["pair"]) for r in images)
    seconds = ms([r["seconds"] for r in texts], digits=3)
    words = np.mean([r["tokens"] for r in texts])
    return f"""## Seeing why: the pointing game and deletion (`bench_inspection.py`)

Mean ± standard deviation over {args.seeds} seeds (each draws new data and fits new
models). EfficientNet-Lite0 and all-MiniLM-L6-v2 (bundled weights), each method with
`explain`'s defaults. {machine_line()}; the run took {minutes:.0f} minutes.

**The pointing game.** An `amazon` product photo of one of two classes drawn per seed
({pairs}) is pasted, {SIDE} px square, at a random place in one quadrant of a {SIZE} px
canvas whose background is a `caltech10` web photo of another class; {args.n_train}
training canvases, {args.n_test} held-out ones (other photos). A hit: the map's maximum
inside the pasted object. A random map hits as often as the object covers the canvas
({SIDE**2 / SIZE**2:.1%}); a centre-bias map (its maximum at the centre) never does, as
no quadrant holds the centre.

{pointing_table(images)}

**Deletion on images.** Accuracy on the held-out canvases when the cells of an 8x8 grid
with the highest mean map value (or as many random cells) are covered with the mean
colour: a faithful map makes it fall faster than random cells do.

{deletion_table(images)}

**Deletion on texts.** CR customer-review sentences of 5 to 40 words (positive or
negative); `Pipeline(PretrainedFeatureExtractor("all-MiniLM-L6-v2"),
LogisticRegression())` trained on {args.n_texts}, explained by occlusion on
{args.n_test_texts} others ({words:.0f} tokens, words and punctuation, on average;
{seconds} s per text). Accuracy when each text loses its most-attributed tokens, or as
many random ones (the rest joined by spaces in both, and in "none").

{text_table(texts)}"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=120, help="training canvases")
    parser.add_argument("--n-test", type=int, default=32, help="held-out canvases")
    parser.add_argument("--n-texts", type=int, default=400, help="training sentences")
    parser.add_argument("--n-test-texts", type=int, default=100, help="explained sentences")
    parser.add_argument("--no-write", action="store_true", help="print, do not write")
    args = parser.parse_args()
    missing = [str(path) for path in (OFFICE, CR) if not path.is_dir()]
    if missing:
        print(
            f"bench_inspection: skipped: {' and '.join(missing)} not found (the data sets of "
            "a development checkout, next to the project); nothing was measured or written"
        )
        return
    start, images, texts = time.perf_counter(), [], []
    for seed in range(args.seeds):
        print(f"seed {seed}", flush=True)
        images.append(run_images(args, seed))
        texts.append(run_texts(args, seed))
    minutes = (time.perf_counter() - start) / 60
    markdown = report(args, images, texts, minutes)
    if args.no_write:
        print(markdown)
    else:
        write_section("inspection", markdown)
    print(f"{minutes:.1f} minutes; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
