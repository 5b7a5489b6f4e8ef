"""
===================================================
How many layers to freeze? A grid search over them
===================================================

``FineTunedClassifier`` counts the backbone's layer groups from the input: ``n_frozen``
of them stay frozen, the rest train at a tenth of the head's learning rate. ``"all"``
trains the new head only; ``-1`` also fine-tunes the last group, ``-2`` the last two.
``n_frozen`` and ``lr`` are ordinary parameters, so :class:`~sklearn.model_selection.GridSearchCV`
searches them. Without augmentation the frozen part runs once per fit, which keeps the
search affordable on a CPU.
"""

# %%
# Data: scikit-learn's digits as small grey images
# ------------------------------------------------
# 8 x 8 grey digits are far from the ImageNet photos the backbone learned from, so how
# much of the network to adapt matters. 150 images, 10 classes.
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from sktransfer import FineTunedClassifier

digits = load_digits()
X = (digits.images[:150] / 16 * 255).astype(np.uint8)  # (150, 8, 8) uint8
y = digits.target[:150]

# %%
# The search
# ----------
# Three settings of ``n_frozen`` times two head learning rates, 3-fold cross-validation.
search = GridSearchCV(
    FineTunedClassifier(image_size=32, max_epochs=8, random_state=0),
    {"n_frozen": ["all", -1, -2], "lr": [1e-3, 1e-2]},
    cv=3,
)
search.fit(X, y)
best = search.best_estimator_
print("best:", search.best_params_, f"cross-validated accuracy {search.best_score_:.2f}")
print(f"{best.n_layer_groups_} layer groups, {best.n_frozen_} of them frozen")

# %%
# Cross-validated accuracy of each setting
# ----------------------------------------
# The error bars are the standard deviation over the three folds.
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
ax.set_ylim(0, 1)
ax.legend()
fig.tight_layout()
plt.show()

# %%
# With 150 images a little fine-tuning is worth it; read the scores as a property of
# this data and budget (8 epochs), not a rule: search on your own data.
