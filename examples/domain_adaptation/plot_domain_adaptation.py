"""
======================================================
Domain adaptation: photos of one kind, predict another
======================================================

A classifier trained on one kind of image (the source) loses accuracy on another kind
(the target), here digits against the same digits blurred and with inverted contrast.
The methods of :mod:`sktransfer.adaptation` use the unlabelled target images too:
feature-based methods map both domains into a shared space, instance-based methods
re-weight the source images that look like the target. Source and target rows are
stacked in one ``X``; unlabelled target rows have ``y = -1``.
"""

# %%
# Digits and shifted digits
# -------------------------
# Even-numbered images are the labelled source; odd-numbered ones, blurred and
# inverted, are the unlabelled target.
import numpy as np
from PIL import Image, ImageFilter
from sklearn.datasets import load_digits

digits = load_digits()
images = (digits.images[:600] / 16 * 255).astype(np.uint8)
labels = digits.target[:600]


def upscale(img):  # 8x8 digits to 32x32 pictures
    return Image.fromarray(img).resize((32, 32), Image.BICUBIC)


def shift(img):  # blurred and inverted: another "camera"
    return 255 - np.asarray(upscale(img).filter(ImageFilter.GaussianBlur(2)))


source = np.arange(0, 600, 2)
target = np.arange(1, 600, 2)
X_images = np.stack(
    [np.asarray(upscale(images[i])) for i in source] + [shift(images[i]) for i in target]
)
y = np.r_[labels[source], np.full(len(target), -1)]  # -1: unlabelled target rows
domain = np.r_[np.ones(len(source), int), -np.ones(len(target), int)]  # source +, target -
X_target, y_target = X_images[len(source) :], labels[target]

# %%
# CORAL after the pretrained feature extractor
# --------------------------------------------
# The adaptation method is the last step of the pipeline; the extractor turns every
# image, source or target, into 1280 features. ``sample_domain`` says which rows are the
# target (without it, ``y = -1`` marks them, with a warning that says so: see
# :func:`sktransfer.adaptation.split_domains`).
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import PretrainedFeatureExtractor
from sktransfer.adaptation import CORAL


def classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))


pipe = make_pipeline(PretrainedFeatureExtractor(image_size=64), CORAL(classifier()))
pipe.fit(X_images, y, coral__sample_domain=domain)
print(f"CORAL pipeline, target accuracy: {pipe.score(X_target, y_target):.2f}")

# %%
# Source-only against each method
# -------------------------------
# The fitted extractor of the pipeline gives the features once for all methods.
from sktransfer.adaptation import KMM, DiscriminatorReweight, SubspaceAlignment

X = pipe[0].transform(X_images)
F_source, F_target = X[: len(source)], X[len(source) :]
source_only = classifier().fit(F_source, labels[source])
print(f"{'source only':24s} {source_only.score(F_target, y_target):.2f}")
for method in [
    CORAL(classifier()),
    SubspaceAlignment(classifier()),
    KMM(classifier()),
    DiscriminatorReweight(classifier()),
]:
    method.fit(X, y, sample_domain=domain)
    print(f"{type(method).__name__:24s} {method.score(F_target, y_target):.2f}")

# %%
# CORAL gains most: the blurred, inverted digits change the spread of every feature,
# which is what CORAL corrects. Re-weighting cannot move the source towards such a
# target, only choose among source images; it is built for covariate shift (below).
#
# Choosing a method without target labels
# ---------------------------------------
# In practice the target labels are unknown, so the comparison above cannot be made.
# :class:`~sktransfer.adaptation.AdaptationSelector` scores each candidate, and
# source-only, by circular validation: it labels the target rows, adapts back from them
# to the source and checks the source labels. It keeps source-only unless a method beats
# it clearly, so that adapting cannot make things worse than not adapting, unless the
# score itself is misled.
from sktransfer.adaptation import AdaptationSelector, JointDistributionAdaptation

selector = AdaptationSelector(
    classifier(),
    candidates=[
        CORAL(classifier()),
        SubspaceAlignment(classifier()),
        JointDistributionAdaptation(classifier()),
    ],
    cv=3,
    random_state=0,
).fit(X, y, sample_domain=domain)
results = selector.cv_results_
for name, score in zip(results["name"], results["mean_score"], strict=True):
    print(f"{name:28s} circular validation {score:.2f}")
print(
    f"chosen: {type(selector.best_estimator_).__name__}, "
    f"target accuracy {selector.score(F_target, y_target):.2f}"
)

# %%
# The features before and after CORAL
# -----------------------------------
# A PCA of the pooled features: before adaptation the two domains sit apart; CORAL
# re-colours the source with the target's covariance, so that they overlap.
import matplotlib.pyplot as plt
from sklearn.decomposition import PCA

aligned = CORAL(classifier()).fit_transform(X, y, sample_domain=domain)
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

# %%
# Where re-weighting helps: covariate shift
# -----------------------------------------
# Same labelling rule in both domains, but the target lives where the source is sparse.
# KMM gives the source points near the target large weights (marker size), so that the
# classifier fits the rule where the target needs it.
rng = np.random.default_rng(0)


def rule(points):
    return (points[:, 1] > 0.5 * points[:, 0] ** 2 - 1).astype(int)


Ps = rng.normal([0, 0.5], [1.2, 1.5], size=(200, 2))
Pt = rng.normal([2.0, 1.5], [0.4, 1.0], size=(200, 2))
sides = np.r_[np.ones(len(Ps), int), -np.ones(200, int)]
kmm = KMM().fit(np.vstack([Ps, Pt]), np.r_[rule(Ps), -np.ones(200, int)], sample_domain=sides)
plain = LogisticRegression().fit(Ps, rule(Ps))
print(f"source only {plain.score(Pt, rule(Pt)):.2f}, KMM {kmm.score(Pt, rule(Pt)):.2f}")

fig, ax = plt.subplots(figsize=(5, 4))
size = 3 + 60 * kmm.weights_ / kmm.weights_.max()
ax.scatter(*Ps.T, s=size, c=rule(Ps), cmap="coolwarm", label="source (size: KMM weight)")
ax.scatter(*Pt.T, s=6, c="grey", alpha=0.4, label="target (unlabelled)")
grid = np.linspace(-4, 4, 200)
ax.plot(grid, 0.5 * grid**2 - 1, "k--", lw=1, label="true rule")
for model, style, name in [(plain, "r-", "source only"), (kmm.estimator_, "g-", "KMM")]:
    (w1, w2), b = model.coef_[0], model.intercept_[0]
    ax.plot(grid, -(w1 * grid + b) / w2, style, label=name)
ax.set_xlim(-4, 4)
ax.set_ylim(-4, 5)
ax.set_title("covariate shift: KMM weights and decision lines")
ax.legend(fontsize=7, loc="upper left")
plt.show()
