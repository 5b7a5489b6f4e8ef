"""
===========================================================
Few labels or none: contrastive tuning and zero-shot texts
===========================================================

How many labelled texts does a classifier need? This example sorts questions asked at a
town's information desk into three topics (travel, health, housing) and learns from
N = 0, 2, 4 or 8 questions per topic, three ways:

* frozen sentence embeddings + logistic regression (feature transfer);
* :class:`~sktransfer.FewShotTextClassifier`, which first tunes the sentence encoder on
  pairs of the labelled questions (same topic or not: SetFit's method);
* :class:`~sktransfer.ZeroShotTextClassifier`, which needs no labelled question at all
  (N = 0: the topic names only) and adds the N questions to each topic's prototype.

The bundled ``all-MiniLM-L6-v2`` encoder ships with the package, so this runs offline.
"""

# %%
# Sixty questions
# ---------------
# Written for this example, 20 per topic. Each draw takes N per topic for training and
# scores on all the others.
import numpy as np

travel = [
    "Which bus goes to the airport in the early morning?",
    "Is the train station open on public holidays?",
    "Where can I buy a weekly pass for the trams?",
    "How long does the ferry to the island take?",
    "Can I take my bicycle on the regional train?",
    "Is there a night bus back from the city centre?",
    "Where do the coaches to the capital leave from?",
    "Do I need to book a seat on the express train?",
    "Which platform does the train to the coast use?",
    "Are there taxis waiting outside the station at midnight?",
    "How much does a return ticket to the mountains cost?",
    "Where can I rent a car for the weekend?",
    "Is the tourist office open on Sunday?",
    "Can children travel for free on the buses?",
    "How do I get from the port to the old town?",
    "Is the cable car running when it is windy?",
    "Where can I leave my luggage for the afternoon?",
    "Does the airport shuttle stop near the hotels?",
    "What time is the last boat back from the lake?",
    "Can I get a map of the cycle paths?",
]
health = [
    "Where is the nearest pharmacy open tonight?",
    "How do I register with a family doctor here?",
    "Is there a dentist who takes emergency patients?",
    "When is the walk-in clinic open?",
    "Where can I get a flu vaccination?",
    "Which hospital has an accident and emergency department?",
    "Can I see a doctor without an appointment today?",
    "Where can I have my blood pressure checked?",
    "Is there a physiotherapist near the sports centre?",
    "Who do I call if my child has a high fever at night?",
    "Where can I buy hearing aid batteries?",
    "Does the clinic have a doctor who speaks English?",
    "How do I renew a prescription while I am visiting?",
    "Is there a mental health helpline I can ring?",
    "Where can I get tested for an allergy?",
    "Which optician can repair my glasses quickly?",
    "Is the health centre accessible by wheelchair?",
    "Can I get a medical certificate for my employer?",
    "Where do I go for a tetanus injection after a cut?",
    "Is there a midwife service for new parents?",
]
housing = [
    "How do I find a flat to rent near the university?",
    "Who do I contact about a broken heater in my council flat?",
    "Is there help with the deposit for a first apartment?",
    "How do I register my new address with the town hall?",
    "Can my landlord raise the rent in the middle of the lease?",
    "Where do I apply for social housing?",
    "What are the rules for subletting a room?",
    "Who collects the rubbish from new houses on the estate?",
    "How do I get a parking permit for my street?",
    "Is there an office that checks rental contracts for free?",
    "How long is the waiting list for a family home?",
    "Can I paint the walls of a rented apartment?",
    "Who fixes a leaking roof in a shared building?",
    "Where can I report mould in my bedroom?",
    "Do I need permission to build a garden shed?",
    "How do I transfer the electricity account to my name?",
    "Is there a grant for insulating an old house?",
    "What can I do if my neighbours are noisy every night?",
    "Where can students find cheap rooms for one term?",
    "How do I end my tenancy early?",
]
texts = np.array(travel + health + housing)
topic = np.repeat(["travel", "health", "housing"], 20)


def draw(n, seed):
    """Indices of n questions per topic, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    rows = [rng.choice(np.flatnonzero(topic == t), n, replace=False) for t in np.unique(topic)]
    return np.concatenate(rows)


# %%
# No labelled question: the topic names alone
# -------------------------------------------
# Each topic name is put in a sentence (``template``, "This text is about {}.") and
# embedded; a question gets the topic whose sentence is most similar.
from sktransfer import ZeroShotTextClassifier

zero_shot = ZeroShotTextClassifier(labels=["travel", "health", "housing"]).fit()
print(f"zero-shot, names only: {zero_shot.score(texts, topic):.2f} accuracy on all 60")
print(zero_shot.predict(["Where can I park my camper van for a night?"]))

# %%
# Accuracy against N
# ------------------
# Two draws for each N; every method sees the same questions. The few-shot classifier
# tunes the encoder on ``n_pairs`` (40) pairs per question, so its cost grows linearly
# with N.
import warnings

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sktransfer import FewShotTextClassifier, PretrainedFeatureExtractor

methods = {
    "frozen MiniLM + logistic regression": lambda seed: make_pipeline(
        PretrainedFeatureExtractor("all-MiniLM-L6-v2"), LogisticRegression(max_iter=1000)
    ),
    "FewShotTextClassifier": lambda seed: FewShotTextClassifier(random_state=seed),
    "ZeroShotTextClassifier": lambda seed: ZeroShotTextClassifier(
        labels=["travel", "health", "housing"]
    ),
}
shots = [2, 4, 8]
seeds = [0, 1]
scores = {name: np.zeros((len(shots), len(seeds))) for name in methods}
for i, n in enumerate(shots):
    for j, seed in enumerate(seeds):
        train = draw(n, seed)
        test = np.setdiff1d(np.arange(len(texts)), train)
        for name, make in methods.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                model = make(seed).fit(list(texts[train]), topic[train])
            scores[name][i, j] = model.score(list(texts[test]), topic[test])
for name, values in scores.items():
    means = values.mean(1)
    print(f"{name:38s}", "  ".join(f"N={n}: {v:.2f}" for n, v in zip(shots, means, strict=True)))

# %%
# The zero-shot classifier starts where the others cannot (N = 0) and its names keep
# helping at N = 2; with more labelled questions the methods that learn from them catch
# up. On a task this small, read the curves as a shape, not a ranking:
# ``benchmarks/RESULTS.md`` has the same comparison on four public sentence tasks.
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 4))
zero = zero_shot.score(texts, topic)
for (name, values), marker in zip(scores.items(), "osD", strict=True):
    xs, ys = shots, values.mean(1)
    if name == "ZeroShotTextClassifier":
        xs, ys = [0, *shots], [zero, *ys]
    ax.errorbar(
        xs,
        ys,
        yerr=None if len(xs) > len(shots) else values.std(1),
        marker=marker,
        capsize=3,
        label=name,
    )
ax.axhline(1 / 3, color="grey", linestyle=":", label="chance")
ax.set_xticks([0, *shots])
ax.set_xlabel("labelled questions per topic (N)")
ax.set_ylabel("held-out accuracy (mean of 2 draws)")
ax.set_ylim(0, 1.02)
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()
