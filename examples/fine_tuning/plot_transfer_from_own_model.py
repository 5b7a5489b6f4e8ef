"""
==========================================
Transfer from a model you trained yourself
==========================================

The classic recipe (train on CIFAR-10, transfer to CIFAR-100): fine-tune on a source
task with plenty of labels, then reuse that network for a related task with other classes
and few labels. Here the source task is digits 0-4 and the target task digits 5-9, with
ten labelled images per class. ``FineTunedClassifier(backbone=source_model)`` starts from
the source model's fine-tuned backbone with a new head.
"""

# %%
import numpy as np
from sklearn.datasets import load_digits

from sktransfer import FineTunedClassifier

digits = load_digits()
images = (digits.images / 16 * 255).astype(np.uint8)
rng = np.random.default_rng(0)
source = np.flatnonzero(digits.target < 5)
target = np.flatnonzero(digits.target >= 5)
few = np.concatenate(
    [rng.choice(target[digits.target[target] == d], 10, replace=False) for d in range(5, 10)]
)
test = np.setdiff1d(target, few)

# %%
# Source task: digits 0-4, many labels
# ------------------------------------
common = {"image_size": 48, "random_state": 0}
source_model = FineTunedClassifier(n_frozen=-3, max_epochs=6, lr=3e-3, **common)
source_model.fit(images[source[:500]], digits.target[source[:500]])
held_out = source[500:]
source_score = source_model.score(images[held_out], digits.target[held_out])
print(f"digits 0-4, held-out accuracy: {source_score:.2f}")

# %%
# Target task: digits 5-9, ten labels per class
# ---------------------------------------------
candidates = {
    "from scratch (weights=None)": FineTunedClassifier(
        weights=None, n_frozen=0, max_epochs=15, lr=3e-3, **common
    ),
    "ImageNet backbone, new head": FineTunedClassifier(
        n_frozen="all", max_epochs=30, lr=1e-2, **common
    ),
    "own digits backbone, new head": FineTunedClassifier(
        backbone=source_model, n_frozen="all", max_epochs=30, lr=1e-2, **common
    ),
}
scores = {}
for name, model in candidates.items():
    model.fit(images[few], digits.target[few])
    scores[name] = model.score(images[test], digits.target[test])
    print(f"{name:32s} {scores[name]:.2f}")

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(list(scores), list(scores.values()))
ax.set_xlim(0, 1)
ax.set_xlabel("accuracy on digits 5-9 (50 labelled images)")
fig.tight_layout()
plt.show()

# %%
# Both transferred backbones beat training from scratch by far on 50 labelled images.
# Whether your own source model beats the ImageNet one depends on how large the source
# task is and how close it is to the target: measure it, as here, on held-out data.
