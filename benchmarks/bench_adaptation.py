"""Domain adaptation on real photos: pretrained features, colour source, shifted target.

Source: colour photos with labels. Target: other photos of the same classes after a
shift (grey-scale, blur, or grey-scale with low contrast), without labels. Features come
from ``PretrainedFeatureExtractor`` (EfficientNet-Lite0, bundled weights); each method then
learns on the labelled source rows and the unlabelled target rows, and is scored on the
target labels. Source-only is the same classifier trained on the source features alone.

Each split puts half the photos of every class in the source and the other half in the
target, so that no photo is in both; the tables give the mean target accuracy over
``--splits`` random splits (10 by default) and, in brackets, the number of splits on
which the method beats source-only. Every method runs with its defaults, and again inside
``AdaptationSelector`` with source-only as the other candidate (circular validation, no
target labels), which keeps the method only when the score says it helps; the last column
is the selector choosing among its default candidates and OT. TrAdaBoost, which needs a
few labelled target photos, gets one per class and is compared with pooling those photos
with the source.

Images: ``../shared/datasets/flowers3`` (30 real photos, 3 classes) when present, else
crops of scikit-learn's sample photos. Run: ``python benchmarks/bench_adaptation.py``.
"""

import argparse
import time
import warnings

import numpy as np
from bench_finetune import dataset
from PIL import Image, ImageFilter, ImageOps
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import PretrainedFeatureExtractor
from sktransfer.adaptation import (
    CORAL,
    KLIEP,
    KMM,
    AdaptationSelector,
    DiscriminatorReweight,
    JointDistributionAdaptation,
    OTMapping,
    SubspaceAlignment,
    TrAdaBoost,
    TransferComponentAnalysis,
)
from sktransfer.adaptation._selector import default_candidates

from _results import machine_line, write_section

SHIFTS = {
    "grey-scale": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "blur (radius 4)": lambda im: im.filter(ImageFilter.GaussianBlur(4)),
    "grey, low contrast": lambda im: Image.blend(
        ImageOps.grayscale(im).convert("RGB"), Image.new("RGB", im.size, (128,) * 3), 0.6
    ),
}


def classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))


def methods():
    return {
        "CORAL": CORAL(classifier()),
        "SA": SubspaceAlignment(classifier()),
        "TCA": TransferComponentAnalysis(classifier()),
        "JDA": JointDistributionAdaptation(classifier()),
        "OT": OTMapping(classifier()),
        "KMM": KMM(classifier()),
        "KLIEP": KLIEP(classifier(), random_state=0),
        "Discriminator": DiscriminatorReweight(classifier()),
    }


def selected(method):
    """The method or source-only, whichever circular validation prefers."""
    return AdaptationSelector(classifier(), candidates=[method], random_state=0)


def selector():
    """The selector with its default candidates and OT, and source-only."""
    candidates = [*default_candidates(classifier()), OTMapping(classifier())]
    return AdaptationSelector(classifier(), candidates=candidates, random_state=0)


def split(y, seed):
    """Half of each class's photos for the source, the other half for the target."""
    rng = np.random.default_rng(seed)
    source = []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        source.extend(members[: len(members) // 2])
    source = np.sort(source)
    return source, np.setdiff1d(np.arange(len(y)), source)


def one_per_class(y, rows, seed):
    rng = np.random.default_rng(seed)
    return np.array([rng.choice(rows[y[rows] == label]) for label in np.unique(y[rows])])


def fit_score(model, F, labels, F_target, y_target):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny-sample convergence notes
        return model.fit(F, labels).score(F_target, y_target)


def cell(scores, base):
    scores = np.asarray(scores)
    return f"{scores.mean():.2f} ({int((scores > base).sum())})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=10, help="random splits per shift")
    n_splits = parser.parse_args().splits
    X, y, source_name = dataset()
    y = np.asarray(y, dtype=object)
    images = [
        Image.open(p).convert("RGB") if isinstance(p, str) else Image.fromarray(p) for p in X
    ]
    extractor = PretrainedFeatureExtractor().fit(images)
    colour = extractor.transform(images)
    shifted = {
        name: extractor.transform([shift(im) for im in images]) for name, shift in SHIFTS.items()
    }
    names = list(methods())
    rows, selected_rows, boost_rows = [], [], []
    effective = {}  # effective number of source photos under each method's weights
    worst = {}  # the largest loss to source-only, per method, of the mean over the splits
    picked_best, chosen = 0, {}
    start = time.perf_counter()
    for shift_name, target_features in shifted.items():
        scores = {name: [] for name in ["source-only", *names, "selector"]}
        with_selection = {name: [] for name in names}
        boost = {"pooled": [], "TrAdaBoost": []}
        for seed in range(n_splits):
            src, tgt = split(y, seed)
            F_source, F_target, y_target = colour[src], target_features[tgt], y[tgt]
            base = classifier().fit(F_source, y[src])
            scores["source-only"].append(base.score(F_target, y_target))
            F = np.vstack([F_source, F_target])
            labels = np.r_[y[src], np.full(len(tgt), -1, dtype=object)].astype(object)
            for name, method in methods().items():
                scores[name].append(fit_score(method, F, labels, F_target, y_target))
                if hasattr(method, "weights_"):
                    w = method.weights_
                    effective.setdefault(name, []).append(w.sum() ** 2 / (w**2).sum())
                with_selection[name].append(
                    fit_score(selected(method), F, labels, F_target, y_target)
                )
            choosing = selector()
            scores["selector"].append(fit_score(choosing, F, labels, F_target, y_target))
            name = choosing.cv_results_["name"][choosing.best_index_]
            chosen[name] = chosen.get(name, 0) + 1
            options = [scores["source-only"][-1]] + [scores[n][-1] for n in names]
            picked_best += scores["selector"][-1] == max(options)
            # TrAdaBoost: one labelled target photo per class, scored on the others
            known = one_per_class(y, tgt, seed)
            rest = np.setdiff1d(tgt, known)
            F_few = np.vstack([F_source, target_features[known]])
            y_few = np.r_[y[src], y[known]].astype(object)
            domain = np.r_[np.ones(len(src), int), -np.ones(len(known), int)]
            pooled = classifier().fit(F_few, y_few)
            boost["pooled"].append(pooled.score(target_features[rest], y[rest]))
            booster = TrAdaBoost(classifier(), n_estimators=10)
            booster.fit(F_few, y_few, sample_domain=domain)
            boost["TrAdaBoost"].append(booster.score(target_features[rest], y[rest]))
        base = np.asarray(scores["source-only"])
        rows.append(
            f"| {shift_name} | {base.mean():.2f} | "
            + " | ".join(cell(scores[name], base) for name in names)
            + f" | {cell(scores['selector'], base)} |"
        )
        selected_rows.append(
            f"| {shift_name} | {base.mean():.2f} | "
            + " | ".join(cell(with_selection[name], base) for name in names)
            + " |"
        )
        for name in names:
            for label, values in (
                (name, scores[name]),
                (f"{name}, selected", with_selection[name]),
            ):
                loss = base.mean() - np.mean(values)
                worst[label] = max(worst.get(label, -np.inf), loss)
        worst["selector"] = max(
            worst.get("selector", -np.inf), base.mean() - np.mean(scores["selector"])
        )
        pooled, boosted = np.asarray(boost["pooled"]), np.asarray(boost["TrAdaBoost"])
        boost_rows.append(
            f"| {shift_name} | {pooled.mean():.2f} | {boosted.mean():.2f} "
            f"({int((boosted > pooled).sum())}) |"
        )
    seconds = time.perf_counter() - start
    n_source, n_target = len(split(y, 0)[0]), len(split(y, 0)[1])
    header = "| target shift | source-only | " + " | ".join(names) + " | selector |"
    rule = "|---" * (len(names) + 3) + "|"
    table = "\n".join([header, rule, *rows])
    selected_table = "\n".join(
        [
            "| target shift | source-only | " + " | ".join(names) + " |",
            "|---" * (len(names) + 2) + "|",
            *selected_rows,
        ]
    )
    ess = ", ".join(f"{name} {np.mean(v):.1f}" for name, v in effective.items())
    boost_table = "\n".join(
        [
            "| target shift | source + 3 target photos, pooled | TrAdaBoost |",
            "|---|---|---|",
            *boost_rows,
        ]
    )
    below = [name for name in names if worst[name] > 0.01]
    below_selected = [name for name in names if worst[f"{name}, selected"] > 0.01]
    choices = ", ".join(
        f"{name} {count}" for name, count in sorted(chosen.items(), key=lambda kv: -kv[1])
    )
    n_fits = len(SHIFTS) * n_splits
    write_section(
        "adaptation",
        f"""## Domain adaptation on pretrained features (`bench_adaptation.py`)

{source_name}: in each of {n_splits} random splits, {n_source} labelled colour photos
(half of each class) are the source and the other {n_target} photos, shifted and
unlabelled, the target. Features: EfficientNet-Lite0 (bundled), 1280 per image.
Classifier: standardise + logistic regression (C=0.1), alone (source-only) or inside
every method. Mean accuracy on the target labels over the splits; in brackets, on how
many of the {n_splits} splits the method beats source-only (one photo is
{1 / n_target:.2f} of accuracy). {machine_line()}; all fits took {seconds:.0f} s.

Every method with its defaults; the selector (`AdaptationSelector` with its defaults:
circular validation, no target labels) chooses among source-only, its default candidates
(CORAL, SA, TCA, JDA, the discriminator's weights) and OT:

{table}

Below source-only by more than 0.01 on some shift, with defaults: {", ".join(below) or "none"}.
The selector lost at most {max(worst["selector"], 0):.2f} to source-only on a shift; it
chose {choices} (of {n_fits} splits) and took the best method of the split (by the
target labels it never saw) {picked_best} times.

Each method inside `AdaptationSelector` with source-only as the other candidate, so that
it is used only when circular validation says it helps:

{selected_table}

Below source-only by more than 0.01 on some shift, selected: {", ".join(below_selected) or "none"}.
Re-weighting is built for covariate shift, where the target lies within the source's
range and some source rows resemble it; here every target feature moves (an appearance
change), so weighting the source photos cannot bring them to the target and mostly lowers
their effective number (of {n_source}): {ess}. CORAL and OT move the source features
themselves: CORAL re-colours them with the target's covariance, OT transports each
source photo onto target photos of the same class.

With one labelled target photo per class (the method scores on the other target photos):

{boost_table}

Here every round's learner classifies all its training photos without error, so the
weights never change and TrAdaBoost is the pooled model: it is built for source rows
whose labelling disagrees with the target (tested in `tests/test_adaptation.py`), which
a change of colour or sharpness does not bring.""",
    )


if __name__ == "__main__":
    main()
