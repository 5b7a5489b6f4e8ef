"""
======================================================
Domain adaptation: photos of one kind, predict another
======================================================

A classifier trained on one kind of image (the source) loses accuracy on another kind
(the target), here digits against the same digits blurred and with inverted contrast.
The methods of :mod:`sktransfer.adaptation` use the unlabelled target images too: feature-
based methods map both domains into a shared space, instance-based methods re-weight the
source images that look like the target. Unlabelled target rows have ``y = -1``.
"""

# %%
import numpy as np
from PIL import Image, ImageFilter
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import PretrainedFeatureExtractor
from sktransfer.adaptation import CORAL, KMM, DiscriminatorReweight, SubspaceAlignment

digits = load_digits()
images = (digits.images[:600] / 16 * 255).astype(np.uint8)
labels = digits.target[:600]


def shift(img):  # blur and invert: another "camera"
    big = Image.fromarray(img).resize((32, 32), Image.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    return 255 - np.asarray(big)


source = np.arange(0, 600, 2)
target = np.arange(1, 600, 2)
extractor = PretrainedFeatureExtractor(image_size=64).fit(images)
F_source = extractor.transform(images[source])
F_target = extractor.transform(np.stack([shift(images[i]) for i in target]))

# %%
# Source-only against adaptation
# ------------------------------
X = np.vstack([F_source, F_target])
y = np.r_[labels[source], np.full(len(target), -1)]  # -1: unlabelled target rows


def classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))


source_only = classifier().fit(F_source, labels[source])
print(f"{'source only':24s} {source_only.score(F_target, labels[target]):.2f}")
for method in [
    CORAL(classifier()),
    SubspaceAlignment(classifier(), n_components=30),
    KMM(classifier()),
    DiscriminatorReweight(classifier()),
]:
    method.fit(X, y)
    print(f"{type(method).__name__:24s} {method.score(F_target, labels[target]):.2f}")

# %%
# The features before and after CORAL
# -----------------------------------
# A PCA of the pooled features: before adaptation the two domains sit apart; CORAL
# re-colours the source with the target's covariance, so that they overlap.
import matplotlib.pyplot as plt
from sklearn.decomposition import PCA

coral = CORAL(classifier())
aligned = coral.fit_transform(X, y)
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, data, title in [(axes[0], X, "before"), (axes[1], aligned, "after CORAL")]:
    xy = PCA(2).fit_transform(data)
    ax.scatter(*xy[: len(source)].T, s=8, label="source (digits)")
    ax.scatter(*xy[len(source) :].T, s=8, label="target (blurred, inverted)")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
axes[0].legend(fontsize=8)
fig.tight_layout()
plt.show()
