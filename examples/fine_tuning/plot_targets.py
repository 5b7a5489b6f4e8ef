"""
=========================================================
Regression and multi-label targets, and sample weights
=========================================================

:class:`~sktransfer.FineTunedRegressor` predicts real values and
:class:`~sktransfer.FineTunedClassifier` takes a 0/1 indicator matrix for several labels
per image. Both are built from scikit-learn's two sample photos:

* **regression**: a crop of the flower photo pasted over the left part of a crop of the
  other photo, covering a random share of the width; the target is that share;
* **multi-label**: two tiles side by side, each cut from either photo; the labels say which
  photos are present.
"""

# %%
# Two small tasks a pretrained network can see
# --------------------------------------------
import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images

china, flower = load_sample_images().images
rng = np.random.default_rng(0)


def crop(photo, size=64):
    side = int(rng.integers(size, min(photo.shape[:2]) // 2))
    top = rng.integers(0, photo.shape[0] - side)
    left = rng.integers(0, photo.shape[1] - side)
    return np.array(
        Image.fromarray(photo[top : top + side, left : left + side]).resize((size, size))
    )


X_share, share = [], []
for _ in range(96):
    image, width = crop(china), int(rng.integers(0, 65))
    image[:, :width] = crop(flower)[:, :width]
    X_share.append(image)
    share.append(width / 64)
X_share, share = np.stack(X_share), np.asarray(share)

X_tiles, labels = [], []
for i in range(96):
    sources = [(0, 0), (1, 1), (0, 1), (1, 0)][i % 4]
    X_tiles.append(np.hstack([crop((china, flower)[s])[:, :32] for s in sources]))
    labels.append([int(0 in sources), int(1 in sources)])
X_tiles, labels = np.stack(X_tiles), np.asarray(labels)

# %%
# A regressor: predicted against true
# -----------------------------------
# The targets are standardised for training and mapped back: ``predict`` returns shares.
import matplotlib.pyplot as plt

from sktransfer import FineTunedClassifier, FineTunedRegressor

reg = FineTunedRegressor(n_frozen="all", image_size=64, max_epochs=100, random_state=0)
reg.fit(X_share[:64], share[:64])
predicted = reg.predict(X_share[64:])
print(f"R² on held-out composites: {reg.score(X_share[64:], share[64:]):.2f}")

fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
axes[0].scatter(share[64:], predicted)
axes[0].plot([0, 1], [0, 1], "k--", lw=1)
axes[0].set_xlabel("true share of the flower")
axes[0].set_ylabel("predicted share")
axes[0].set_title("FineTunedRegressor")

# %%
# Several labels per image: per-label precision and recall
# --------------------------------------------------------
# ``y`` is the indicator matrix :class:`~sklearn.preprocessing.MultiLabelBinarizer`
# gives; ``predict_proba`` returns each label's probability.
from sklearn.metrics import f1_score, precision_recall_curve

clf = FineTunedClassifier(n_frozen="all", image_size=64, max_epochs=60, random_state=0)
clf.fit(X_tiles[:64], labels[:64])
proba = clf.predict_proba(X_tiles[64:])
print(f"f1 (samples): {f1_score(labels[64:], clf.predict(X_tiles[64:]), average='samples'):.2f}")
for j, name in enumerate(["china", "flower"]):
    precision, recall, _ = precision_recall_curve(labels[64:, j], proba[:, j])
    axes[1].plot(recall, precision, label=name)
axes[1].set_xlabel("recall")
axes[1].set_ylabel("precision")
axes[1].set_title("FineTunedClassifier, multi-label")
axes[1].legend()
fig.tight_layout()
plt.show()

# %%
# Sample weights
# --------------
# ``fit`` takes ``sample_weight``: a row of weight 2 trains as two copies of it would.
weights = np.where(labels[:64, 1] == 1, 2.0, 1.0)
weighted = FineTunedClassifier(n_frozen="all", image_size=64, max_epochs=60, random_state=0)
weighted.fit(X_tiles[:64], labels[:64], sample_weight=weights)
print(
    "labels predicted, unweighted and weighted:",
    clf.predict(X_tiles[64:]).sum(axis=0),
    weighted.predict(X_tiles[64:]).sum(axis=0),
)
