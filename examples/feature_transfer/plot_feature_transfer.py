"""
================================================
Feature transfer: pretrained features vs pixels
================================================

A frozen pretrained network turns each image into a feature vector; any scikit-learn
classifier then learns from a handful of labelled images. Here the task is to tell crops
of scikit-learn's two sample photos apart (a Chinese temple and a flower) from 16
labelled crops per class, and the same logistic regression is trained on raw pixels for
comparison.
"""

# %%
# A small real image task
# -----------------------
# Random square crops of the two photos, resized to 96 x 96 pixels.
import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sktransfer import PretrainedFeatureExtractor

rng = np.random.default_rng(0)
X, y = [], []
for label, photo in zip(["temple", "flower"], load_sample_images().images, strict=True):
    h, w = photo.shape[:2]
    for _ in range(16):
        side = int(rng.integers(80, min(h, w) // 2))
        top, left = rng.integers(0, h - side), rng.integers(0, w - side)
        crop = Image.fromarray(photo[top : top + side, left : left + side]).resize((96, 96))
        X.append(np.asarray(crop))
        y.append(label)
X, y = np.stack(X), np.array(y)
print(X.shape, X.dtype)

# %%
# Pretrained features + logistic regression
# -----------------------------------------
# ``PretrainedFeatureExtractor`` loads EfficientNet-Lite0 with the ImageNet weights that
# ship with the package (no download) and returns 1280 features per image.
features = make_pipeline(
    PretrainedFeatureExtractor(image_size=128), LogisticRegression(max_iter=1000)
)
feature_scores = cross_val_score(features, X, y, cv=4)

# %%
# The same classifier on raw pixels
# ---------------------------------
pixels = make_pipeline(
    FunctionTransformer(lambda images: images.reshape(len(images), -1) / 255.0),
    StandardScaler(),
    LogisticRegression(max_iter=1000),
)
pixel_scores = cross_val_score(pixels, X, y, cv=4)

print(f"pretrained features: {feature_scores.mean():.2f} accuracy")
print(f"raw pixels:          {pixel_scores.mean():.2f} accuracy")

# %%
# Plot the two
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(["raw pixels", "pretrained features"], [pixel_scores.mean(), feature_scores.mean()])
ax.set_ylim(0, 1)
ax.set_ylabel("cross-validated accuracy")
ax.set_title("32 labelled images, 2 classes")
fig.tight_layout()
plt.show()
