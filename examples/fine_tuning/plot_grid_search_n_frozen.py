"""
===================================================
How many layers to freeze? A grid search over them
===================================================

``FineTunedClassifier`` counts the backbone's layer groups from the input: ``n_frozen``
of them stay frozen, the rest train at a smaller learning rate with the new head.
``"all"`` trains the head only; ``-1`` also fine-tunes the last group. Because the frozen
part is computed once per fit (without augmentation), a grid search over ``n_frozen``
and the learning rate is affordable on a CPU.
"""

# %%
# Data: crops of scikit-learn's two sample photos
# -----------------------------------------------
import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images
from sklearn.model_selection import GridSearchCV

from sktransfer import FineTunedClassifier

rng = np.random.default_rng(0)
X, y = [], []
for label, photo in zip(["temple", "flower"], load_sample_images().images, strict=True):
    h, w = photo.shape[:2]
    for _ in range(15):
        side = int(rng.integers(64, min(h, w) // 2))
        top, left = rng.integers(0, h - side), rng.integers(0, w - side)
        crop = photo[top : top + side, left : left + side]
        X.append(np.asarray(Image.fromarray(crop).resize((64, 64))))
        y.append(label)
X, y = np.stack(X), np.array(y)

# %%
# The search
# ----------
search = GridSearchCV(
    FineTunedClassifier(image_size=64, max_epochs=4, random_state=0),
    {"n_frozen": ["all", -1, -2], "lr": [1e-3, 1e-2]},
    cv=3,
)
search.fit(X, y)
print("best:", search.best_params_, f"accuracy {search.best_score_:.2f}")
print("layer groups of the backbone:", search.best_estimator_.n_layer_groups_)

# %%
# Cross-validated accuracy of each setting
# ----------------------------------------
import matplotlib.pyplot as plt

results = search.cv_results_
fig, ax = plt.subplots(figsize=(6, 3.5))
for lr in (1e-3, 1e-2):
    rows = [i for i, p in enumerate(results["params"]) if p["lr"] == lr]
    ax.errorbar(
        [str(results["params"][i]["n_frozen"]) for i in rows],
        results["mean_test_score"][rows],
        yerr=results["std_test_score"][rows],
        marker="o",
        capsize=3,
        label=f"lr = {lr:g}",
    )
ax.set_xlabel("n_frozen (layer groups kept frozen)")
ax.set_ylabel("cross-validated accuracy")
ax.legend()
fig.tight_layout()
plt.show()
