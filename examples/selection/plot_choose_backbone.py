"""
==========================================================
Choosing a backbone and a layer by a transferability score
==========================================================

Which pretrained network, and which of its layers, should feed your classifier?
Cross-validating every candidate answers, at the price of training a classifier per
candidate and fold. A transferability score answers from the features alone:
:func:`~sktransfer.selection.rank_candidates` computes every candidate's features in
one forward pass per backbone and scores them against the labels. Here we check the
scores against the cross-validated accuracy they stand in for, then let
:class:`~sktransfer.selection.BackboneSelector` make the choice inside a pipeline.
"""

# %%
# Data: scikit-learn's digits, upscaled
# -------------------------------------
# 8 x 8 grey digits, resized to 64 px by the backbone's input pipeline: far from the
# ImageNet photos the backbones learned from, so the best layer is not obviously the last.
import numpy as np
from sklearn.datasets import load_digits

digits = load_digits()
X = (digits.images[:200] / 16 * 255).astype(np.uint8)  # (200, 8, 8) uint8
y = digits.target[:200]

# %%
# Score the candidates
# --------------------
# Four layers of the bundled EfficientNet-Lite0 and the final features of the larger
# EfficientNet-Lite1. The candidates that share a network are scored from one forward
# pass. ``score_std`` is each score's spread over random halves of the images, and
# ``p_best`` the share of halves in which the candidate scores best.
import pandas as pd

from sktransfer.selection import rank_candidates

candidates = [
    ("efficientnet_lite0", ["blocks3", "blocks4", "blocks5", None]),
    "efficientnet_lite1",
]
scores = rank_candidates(X, y, candidates, image_size=64, random_state=0)
pd.set_option("display.width", 120)
print(scores.drop(columns=["weights", "pooling", "candidate"]).round(3))

# %%
# What the scores stand in for: cross-validated accuracy
# ------------------------------------------------------
# The same candidates, each as an extractor in front of a logistic regression, 3-fold.
from scipy.stats import kendalltau
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import PretrainedFeatureExtractor

accuracy = []
for row in scores.itertuples():
    features = PretrainedFeatureExtractor(row.backbone, layer=row.layer, image_size=64)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    accuracy.append(cross_val_score(model, features.fit_transform(X), y, cv=3).mean())
scores["cv_accuracy"] = accuracy
print(scores[["backbone", "layer", "score", "cv_accuracy"]].round(3))
print(f"Kendall tau between LogME and accuracy: {kendalltau(scores.score, accuracy)[0]:.2f}")

# %%
# The scores shortlist; they do not replace a last check. On these small grey digits,
# far from ImageNet photos, a middle layer may serve the logistic regression better than
# the score says: try the first two or three candidates before settling.

# %%
# A plot of one against the other: a good score puts the candidates in the same order.
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 4))
ax.errorbar(scores.score, scores.cv_accuracy, xerr=scores.score_std, fmt="o", capsize=3)
for row in scores.itertuples():
    ax.annotate(
        f"{row.backbone.replace('efficientnet_', '')}/{row.layer or 'final'}",
        (row.score, row.cv_accuracy),
        textcoords="offset points",
        xytext=(5, -10),
        fontsize=8,
    )
ax.set_xlabel("LogME (one forward pass; bars: spread over half-samples)")
ax.set_ylabel("3-fold accuracy, logistic regression")
ax.set_title("Transferability score against accuracy")
fig.tight_layout()

# %%
# Let the pipeline choose
# -----------------------
# :class:`~sktransfer.selection.BackboneSelector` scores its candidates in ``fit`` and
# keeps the best as a fitted extractor: no grid search over backbones needed.
from sktransfer.selection import BackboneSelector

pipe = make_pipeline(
    BackboneSelector(candidates, image_size=64, random_state=0),
    StandardScaler(),
    LogisticRegression(max_iter=2000),
)
X_test = (digits.images[200:400] / 16 * 255).astype(np.uint8)
pipe.fit(X, y)
chosen = pipe[0].best_
print(f"chosen: {chosen.backbone}, layer {chosen.layer_}")
print(f"held-out accuracy: {pipe.score(X_test, digits.target[200:400]):.2f}")
plt.show()
