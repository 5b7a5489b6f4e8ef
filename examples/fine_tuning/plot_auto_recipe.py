"""
=====================================================
Letting the estimator choose: ``n_frozen="auto"``
=====================================================

How many layer groups to fine-tune depends on the data: a few photos close to ImageNet
want the frozen network and a new head, data far from it gains from adapting the top
groups. With ``n_frozen="auto"`` the estimator finds out on the data itself. It holds
out ``validation_fraction`` of the inputs and compares the head alone (``"all"``) with
unfreezing the last 1, 2 and 3 groups by successive halving: every candidate trains a
short budget, the better half trains again for the full budget, and so on until one is
left; the winner is refitted on all the data. This example plots each candidate's
held-out accuracy at each rung of the search, and what the search cost.
"""

# %%
# Data: scikit-learn's digits as small grey images
# ------------------------------------------------
# 8 x 8 grey digits are far from the photos the backbone learned from. 240 images to
# fit on (the search holds out a quarter of them), 200 more to test the choice on.
import numpy as np
from sklearn.datasets import load_digits

from sktransfer import FineTunedClassifier

digits = load_digits()
images = (digits.images / 16 * 255).astype(np.uint8)  # (n, 8, 8) uint8
X_train, y_train = images[:240], digits.target[:240]
X_test, y_test = images[240:440], digits.target[240:440]

# %%
# The search
# ----------
# ``recipe_results_`` has a row per candidate and rung, like ``cv_results_``;
# ``best_recipe_`` is the parameter to set to fit the choice directly next time.
import pandas as pd

clf = FineTunedClassifier(
    n_frozen="auto", image_size=32, max_epochs=8, validation_fraction=0.25, random_state=0
)
clf.fit(X_train, y_train)
results = pd.DataFrame(clf.recipe_results_)
print(results[["candidate", "rung", "epochs", "validation_score", "seconds"]])
print("chosen:", clf.best_recipe_, f"test accuracy {clf.score(X_test, y_test):.2f}")

# %%
# Is the choice better than the head alone? One fit of ``"all"`` on the same data,
# scored on the same test images.
head_only = FineTunedClassifier(image_size=32, max_epochs=8, random_state=0)
head_only.fit(X_train, y_train)
print(f'n_frozen="all": test accuracy {head_only.score(X_test, y_test):.2f}')

# %%
# Held-out accuracy through the rungs, and what each fit cost
# -----------------------------------------------------------
# Each line is a candidate: a point per rung it reached, at the epochs it trained.
# The bars add up the seconds each candidate's fits took in the search.
import matplotlib.pyplot as plt

fig, (ax, bars) = plt.subplots(1, 2, figsize=(9, 3.5))
for candidate, rows in results.groupby("candidate", sort=False):
    ax.plot(rows["epochs"], rows["validation_score"], marker="o", label=f"n_frozen={candidate}")
ax.set_xlabel("epochs trained at this rung")
ax.set_ylabel("held-out accuracy")
ax.set_title(f"successive halving: chose n_frozen={clf.n_frozen_}")
ax.legend()
seconds = results.groupby("candidate", sort=False)["seconds"].sum()
bars.bar([str(c) for c in seconds.index], seconds.to_numpy())
bars.set_xlabel("n_frozen")
bars.set_ylabel("seconds in the search")
fig.tight_layout()
plt.show()

# %%
# The search cost the sum of its fits plus the refit: several times one fit. Where that
# is too much, set ``n_frozen`` yourself (``clf.best_recipe_`` from an earlier search,
# or a ``GridSearchCV`` as in the example on grid searches). On few inputs the held-out
# score is noisy, so read one search's choice as a property of this data and seed.
