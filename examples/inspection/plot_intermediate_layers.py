"""
=============================================
Looking inside: features of every layer group
=============================================

``PretrainedFeatureExtractor(layer=...)`` pools the output of any named layer. Early
layers see edges and textures, late layers object parts; how well a linear classifier does
on each tells where the useful features for a task are. A 2-D embedding of the final
features shows how the classes separate.
"""

# %%
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import PretrainedFeatureExtractor

digits = load_digits()
X = (digits.images[:400] / 16 * 255).astype(np.uint8)
y = digits.target[:400]

extractor = PretrainedFeatureExtractor(image_size=64).fit(X)
stages = [name for name, _ in extractor.backbone_.layer_groups]
print("layer groups:", stages)

# %%
# A linear classifier on each layer group's pooled output
# -------------------------------------------------------
scores = {}
for layer in stages[1:]:
    feats = PretrainedFeatureExtractor(layer=layer, image_size=64).fit_transform(X)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    scores[layer] = cross_val_score(clf, feats, y, cv=3).mean()
    print(f"{layer:10s} {feats.shape[1]:5d} features  accuracy {scores[layer]:.2f}")

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(list(scores), list(scores.values()), "o-")
ax.set_ylabel("cross-validated accuracy")
ax.set_xlabel("layer group (input to output)")
ax.tick_params(axis="x", rotation=45)
fig.tight_layout()

# %%
# A 2-D embedding of the final features
# -------------------------------------
from sklearn.manifold import TSNE

embedding = TSNE(random_state=0, init="pca").fit_transform(extractor.transform(X))
fig, ax = plt.subplots(figsize=(5, 4.5))
points = ax.scatter(*embedding.T, c=y, cmap="tab10", s=12)
ax.legend(*points.legend_elements(), title="digit", fontsize=7, loc="best")
ax.set_title("t-SNE of EfficientNet-Lite0 features")
ax.set_xticks([])
ax.set_yticks([])
fig.tight_layout()
plt.show()
