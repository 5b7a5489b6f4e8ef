"""
===================================================
Fine-tune, read the learning curves, save and load
===================================================

Fine-tune the top of the bundled EfficientNet-Lite0 on scikit-learn's digits, with early
stopping on a held-out tenth; plot the losses that skorch recorded in ``history_``; save
the model in the safe format and load it back.
"""

# %%
# Digits as small grey images
# ---------------------------
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

digits = load_digits()
images = (digits.images / 16 * 255).astype(np.uint8)  # (n, 8, 8) grey-scale
X_train, X_test, y_train, y_test = train_test_split(
    images, digits.target, train_size=400, test_size=300, stratify=digits.target, random_state=0
)

# %%
# Fine-tune the last two layer groups
# -----------------------------------
from sktransfer import FineTunedClassifier

clf = FineTunedClassifier(
    n_frozen=-2,
    image_size=64,
    max_epochs=15,
    lr=3e-3,
    early_stopping=True,
    n_iter_no_change=4,
    random_state=0,
)
clf.fit(X_train, y_train)
print(f"test accuracy: {clf.score(X_test, y_test):.2f} after {len(clf.history_)} epochs")

# %%
# Learning curves from ``history_``
# ---------------------------------
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(clf.history_[:, "epoch"], clf.history_[:, "train_loss"], "o-", label="training loss")
ax.plot(clf.history_[:, "epoch"], clf.history_[:, "valid_loss"], "o-", label="validation loss")
ax.set_xlabel("epoch")
ax.set_ylabel("cross-entropy")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# Save and load, without pickle
# -----------------------------
import os
import tempfile

import sktransfer

path = os.path.join(tempfile.mkdtemp(), "digits.skt")
sktransfer.save(clf, path)
loaded = sktransfer.load(path)
print(f"{os.path.getsize(path) / 1e6:.1f} MB on disk")
print("same predictions:", np.array_equal(loaded.predict(X_test), clf.predict(X_test)))
