"""
=========================================
Why did it predict that? Maps and words
=========================================

:func:`~sktransfer.inspection.explain` says where in an image a fitted model looks, and
which words of a text its prediction rests on. Here a model learns which of two photos
(a temple, a flower: scikit-learn's sample photos) is pasted on a grey canvas. Grad-CAM
shows where it looks with only its head trained, and after its top layers were
fine-tuned too; occlusion explains a pipeline with a non-linear head, and a sentence's
words are highlighted by how much the prediction falls without each.
"""

# %%
# Canvases: a crop of one of the photos in a random quadrant
# ------------------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images

photos = load_sample_images().images
rng = np.random.default_rng(0)


def canvas(label):
    """A grey 240 x 320 canvas with a 100 px crop of photo ``label`` in a quadrant."""
    image = np.full((240, 320, 3), 128, np.uint8)
    photo = photos[label]
    top, left = rng.integers(0, photo.shape[0] - 200), rng.integers(0, photo.shape[1] - 200)
    crop = Image.fromarray(photo[top : top + 200, left : left + 200]).resize((100, 100))
    q = rng.integers(4)
    row, col = (q // 2) * 120 + 10, (q % 2) * 160 + 30
    image[row : row + 100, col : col + 100] = np.asarray(crop)
    return image


y = np.arange(36) % 2
X = np.stack([canvas(label) for label in y])
X_train, y_train, X_test = X[:28], y[:28], X[28:32]

# %%
# Grad-CAM: the head alone, then the top layers fine-tuned too
# -------------------------------------------------------------
# ``n_frozen="all"`` trains the head on the pretrained features; ``n_frozen=-1`` trains
# the last layer group as well. Both look at the pasted photo; fine-tuning sharpens where.
from sktransfer import FineTunedClassifier
from sktransfer.inspection import explain, plot_explanation

models = {
    "head only": FineTunedClassifier(n_frozen="all", max_epochs=4, random_state=0),
    "top layers fine-tuned": FineTunedClassifier(n_frozen=-1, max_epochs=4, random_state=0),
}
fig, axes = plt.subplots(2, len(X_test), figsize=(10, 4))
for row, (name, model) in zip(axes, models.items(), strict=True):
    model.fit(X_train, y_train)
    for ax, image, heat in zip(row, X_test, explain(model, X_test), strict=True):
        plot_explanation(image, heat, ax=ax)
    row[0].set_title(name, loc="left")
fig.tight_layout()

# %%
# Occlusion: any model, here an RBF support vector machine on pretrained features
# ---------------------------------------------------------------------------------
# A non-linear head has no class activation map; ``method="auto"`` slides a grey patch
# over the image instead and maps how much the score falls (49 scores per image).
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC

from sktransfer import PretrainedFeatureExtractor

svc = make_pipeline(PretrainedFeatureExtractor(), SVC()).fit(X_train, y_train)
fig, axes = plt.subplots(1, 2, figsize=(5, 2))
for ax, image, heat in zip(axes, X_test[:2], explain(svc, X_test[:2]), strict=True):
    plot_explanation(image, heat, ax=ax)
fig.tight_layout()

# %%
# Words: which ones a sentence's class rests on
# ----------------------------------------------
# Texts are explained by occlusion too: each word is removed in turn. Red words hold the
# prediction up, blue ones pull it down.
from sktransfer import ZeroShotTextClassifier
from sktransfer.inspection import plot_text_explanation

reviews = ZeroShotTextClassifier(["positive", "negative"], template="The review is {}.")
reviews.fit()
texts = [
    "The plot was thin, but the music was wonderful.",
    "A boring evening: the soup was cold and the waiter rude.",
]
fig, axes = plt.subplots(2, 1, figsize=(6, 1.6))
for ax, found in zip(axes, explain(reviews, texts), strict=True):
    plot_text_explanation(found, ax=ax, width=60, title=f"{found.target} ({found.score:.2f})")
    print(found.target, found.top(3))
fig.tight_layout()
plt.show()
