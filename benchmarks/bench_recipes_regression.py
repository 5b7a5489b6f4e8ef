"""The regressor's candidates of ``n_frozen="auto"`` by hand, and its choice.

``bench_targets.py``'s regression task: a random square crop of an Office-Caltech photo
(``amazon`` and ``caltech10``), zoomed in by 1x to 4x; the target is the zoom in octaves
(0 to 2). On each draw (seeds 0, 1, ...), N training crops come from one half of the
photos and 300 test crops from the other half, at 160 px (as in ``bench_targets.py``).
Fitted on the same crops and scored on the same test crops (R², times 100):

- ``make_pipeline(PretrainedFeatureExtractor(image_size=160), RidgeCV())``: frozen
  features + ridge, the feature-transfer baseline;
- ``FineTunedRegressor(n_frozen=c, image_size=160)`` for each candidate ``c`` of the
  search (``"all"``, ``-1``, ``-2``, ``-3``), otherwise with the defaults;
- ``FineTunedRegressor(image_size=160)``: the default ``n_frozen="auto"``, its climb on
  held-out R² and the refit.

The tables are those of ``bench_recipes.py`` (its loop, stores emptied before every fit).
Nothing here chose a default. Run: ``python benchmarks/bench_recipes_regression.py
[--sizes 100,300] [--seeds 2]``.
"""

import argparse
import warnings

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline

from sktransfer import FineTunedRegressor, PretrainedFeatureExtractor

from _results import machine_line, write_section
from bench_recipes import CANDIDATES, IMAGES, run_set, table
from bench_targets import OFFICE, _halves, _photos, zoomed_crops

SIZE = 160
TEST = 300
METHODS = ["frozen features + ridge"] + [f"n_frozen={c!r}" for c in CANDIDATES]
METHODS += ["n_frozen='auto'"]


def make(method, backbone, seed):
    if method == "frozen features + ridge":
        return make_pipeline(
            PretrainedFeatureExtractor(backbone, image_size=SIZE),
            RidgeCV(alphas=np.logspace(-3, 3, 13)),
        )
    n_frozen = method.split("=", 1)[1].strip("'")
    n_frozen = n_frozen if n_frozen in ("all", "auto") else int(n_frozen)
    return FineTunedRegressor(backbone, n_frozen=n_frozen, image_size=SIZE, random_state=seed)


def drawer(n):
    """Return ``draw(seed)``: ``n`` training crops and the test crops of one draw."""
    photos = {}
    for domain in ("amazon", "caltech10"):
        for name, paths in _photos(domain, min_side=SIZE).items():
            photos.setdefault(name, []).extend(paths)

    def draw(seed):
        rng = np.random.default_rng(seed)
        train, test = _halves(photos, rng)
        X, y = zoomed_crops([p for ps in train.values() for p in ps], n, SIZE, rng)
        X_test, y_test = zoomed_crops([p for ps in test.values() for p in ps], TEST, SIZE, rng)
        return X, y, X_test, y_test

    return draw


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,300", help="training crops per draw")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    if not OFFICE.is_dir():
        raise SystemExit("The shared data sets are not here (../shared/datasets).")
    warnings.filterwarnings("ignore", message=".*truncated.*")
    done = []
    for n in map(int, args.sizes.split(",")):
        done.append(run_set("zoom", n, range(args.seeds), drawer(n), IMAGES, make, METHODS))
        write_section(
            "recipes_regression",
            f"""## The regressor's candidates of `n_frozen="auto"` (`bench_recipes_regression.py`)

`python benchmarks/bench_recipes_regression.py --sizes {args.sizes} --seeds {args.seeds}`,
{machine_line()}. R² × 100 on 300 held-out crops (zoom in octaves of Office-Caltech
photos, `bench_targets.py`'s task; N training crops), mean ± standard deviation over
the draws; every method fits the same crops with the defaults, except the `n_frozen`
named. EfficientNet-Lite0 at 160 px. The stores of frozen features and converted
networks are emptied before every fit.

{table(done, METHODS)}
""",
        )


if __name__ == "__main__":
    main()
