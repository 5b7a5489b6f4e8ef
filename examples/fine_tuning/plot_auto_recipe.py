"""
=====================================================
Letting the estimator choose: ``n_frozen="auto"``
=====================================================

How many layer groups to fine-tune depends on the data: a few photos close to ImageNet
want the frozen network and a new head, data far from it gains from adapting the top
groups. With ``n_frozen="auto"`` the estimator finds out on the data itself. It holds
out ``validation_fraction`` of the inputs (at least two per class) and climbs from the
head alone (``"all"``): it unfreezes one more group (``-1``, ``-2``, ``-3``) while that
raises the held-out score (minus the log-loss of its probabilities), and refits the last
candidate that did on all the data. This example plots each candidate's held-out score
on the climb, and what the search cost against one fit of its choice.
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
# ``recipe_results_`` has a row per candidate tried (its rung on the climb), like
# ``cv_results_``; ``best_recipe_`` is the parameter to set to fit the choice directly
# next time.
from time import perf_counter

import pandas as pd

clf = FineTunedClassifier(
    n_frozen="auto", image_size=32, max_epochs=8, validation_fraction=0.25, random_state=0
)
start = perf_counter()
clf.fit(X_train, y_train)
search_seconds = perf_counter() - start
results = pd.DataFrame(clf.recipe_results_)
print(results[["candidate", "rung", "epochs", "validation_score", "seconds"]])
print("chosen:", clf.best_recipe_, f"test accuracy {clf.score(X_test, y_test):.2f}")

# %%
# Is the choice better than the head alone? One fit of ``"all"`` on the same data,
# scored on the same test images. And what did the search cost against one fit of the
# choice, set directly from ``best_recipe_``? That fit runs with the process's store of
# frozen features off (``shared_cache_size=0``): otherwise it would find the features the
# search computed, and cost less than a first fit does.
import sktransfer

head_only = FineTunedClassifier(n_frozen="all", image_size=32, max_epochs=8, random_state=0)
head_only.fit(X_train, y_train)
print(f'n_frozen="all": test accuracy {head_only.score(X_test, y_test):.2f}')
chosen = FineTunedClassifier(image_size=32, max_epochs=8, random_state=0)
with sktransfer.config_context(shared_cache_size=0):
    start = perf_counter()
    chosen.set_params(**clf.best_recipe_).fit(X_train, y_train)
    ratio = search_seconds / (perf_counter() - start)
print(f"the search took {ratio:.1f} times one fit of its choice")

# %%
# Held-out score along the climb, and what each fit cost
# ------------------------------------------------------
# A point per candidate tried, in the order of the climb; the climb stops at the first
# candidate that does not beat the one before. The bars are the seconds each fit took.
import matplotlib.pyplot as plt

names = [f"n_frozen={c}" for c in results["candidate"]]
fig, (ax, bars) = plt.subplots(1, 2, figsize=(9, 3.5))
ax.plot(names, results["validation_score"], marker="o")
best = results["candidate"].tolist().index(clf.best_recipe_["n_frozen"])
ax.plot(names[best], results["validation_score"][best], "r*", markersize=14, label="chosen")
ax.set_ylabel("held-out score (minus log-loss)")
ax.set_title(f"the climb chose n_frozen={clf.best_recipe_['n_frozen']}")
ax.legend()
bars.bar(names, results["seconds"])
bars.set_ylabel("seconds in the search")
bars.set_title(f"search + refit: {ratio:.1f}x one fit of the choice")
fig.tight_layout()
plt.show()

# %%
# The search costs the fits of the candidates it tried plus the refit. Where that is too
# much, set ``n_frozen`` yourself (``clf.best_recipe_`` from an earlier search, or a
# ``GridSearchCV`` as in the example on grid searches). On few inputs the held-out score
# is noisy, so read one search's choice as a property of this data and seed.
