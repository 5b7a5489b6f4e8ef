"""
======================================================
Text classification with a pretrained sentence encoder
======================================================

The estimators that transfer image networks take text the same way: name a sentence
encoder as the backbone and pass a list of strings. ``all-MiniLM-L6-v2`` ships with the
package, so this runs offline. The task: route 60 customer messages to the team that
should answer them (billing, delivery or technical support), learning from 36 of them.
We compare frozen sentence embeddings + logistic regression with fine-tuning the top of
the encoder, and look at how fine-tuning moves the embeddings.
"""

# %%
# Sixty short messages
# --------------------
# Written for this example: 20 per team, with few words shared between a message and its
# team's name, so that a bag of words has little to go on.
import numpy as np
from sklearn.model_selection import train_test_split

billing = [
    "I was charged twice for the same order.",
    "Why is there an extra fee on my invoice?",
    "Can I get a refund for the cancelled subscription?",
    "My card was declined but the money left my account.",
    "Please send me a copy of last month's receipt.",
    "The discount code did not reduce the price.",
    "How do I change the credit card you have on file?",
    "You took payment before I confirmed the purchase.",
    "I want my money back for the broken blender.",
    "The total at checkout was higher than advertised.",
    "Is VAT included in the amount I paid?",
    "My annual plan renewed without any warning.",
    "Could you split the cost across two payments?",
    "There is a charge from you that I don't recognise.",
    "The refund you promised still hasn't arrived.",
    "Can I pay by bank transfer instead of card?",
    "I was billed for a premium account I never opened.",
    "Please cancel the direct debit on my account.",
    "The price went up after I added it to the basket.",
    "How long do refunds take to reach my bank?",
]
delivery = [
    "My parcel has been stuck in transit for a week.",
    "The courier left the box in the rain.",
    "Can you deliver to my office instead of my home?",
    "The tracking number does not work.",
    "Only half of my order turned up today.",
    "The package arrived crushed and the glass is broken.",
    "When will my order be dispatched?",
    "The driver said nobody was home, but I was in all day.",
    "Do you ship to Norway?",
    "I need the sofa to arrive before Friday.",
    "The label shows the wrong street name.",
    "My order was delivered to my neighbour by mistake.",
    "Can I pick the order up from a local store?",
    "The van never came during the promised time slot.",
    "How much is express shipping for a small box?",
    "The shipment went back to your warehouse.",
    "I moved house, please change the delivery address.",
    "The box I received is for someone else.",
    "Is there a way to reschedule tomorrow's drop-off?",
    "My order says delivered but there is nothing at the door.",
]
technical = [
    "The app crashes every time I open the settings page.",
    "I can't log in even after resetting my password.",
    "The website shows an error 500 at checkout.",
    "My smart speaker will not connect to the wifi.",
    "The firmware update froze halfway through.",
    "Notifications stopped working on my phone.",
    "The screen flickers after the latest update.",
    "How do I pair the headphones with my laptop?",
    "The printer says it is offline although it is plugged in.",
    "Two-factor codes never arrive by text message.",
    "The camera app shows a black screen.",
    "My account page loads forever and then times out.",
    "The battery drains in two hours since yesterday.",
    "Bluetooth keeps disconnecting from the car.",
    "I get a certificate warning when opening your site.",
    "The thermostat shows the wrong temperature.",
    "Syncing my files fails with an unknown error.",
    "The remote does not respond after changing batteries.",
    "How can I restore the device to factory settings?",
    "The video call drops whenever I share my screen.",
]
texts = billing + delivery + technical
team = np.array(["billing"] * 20 + ["delivery"] * 20 + ["technical"] * 20)
X_train, X_test, y_train, y_test = train_test_split(
    texts, team, train_size=36, stratify=team, random_state=0
)

# %%
# Feature transfer: frozen sentence embeddings + logistic regression
# ------------------------------------------------------------------
# ``PretrainedFeatureExtractor`` embeds each message as 384 numbers (the mean of the
# encoder's token states, L2-normalised: the same embeddings as sentence-transformers).
# Any scikit-learn classifier learns from them; nothing of the encoder changes.
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sktransfer import PretrainedFeatureExtractor

frozen = make_pipeline(
    PretrainedFeatureExtractor("all-MiniLM-L6-v2"), LogisticRegression(C=10, max_iter=1000)
)
frozen.fit(X_train, y_train)
words = make_pipeline(TfidfVectorizer(), LogisticRegression(C=10, max_iter=1000))
words.fit(X_train, y_train)
print(f"TF-IDF + logistic regression:     {words.score(X_test, y_test):.2f} held-out accuracy")
print(f"frozen MiniLM + logistic regression: {frozen.score(X_test, y_test):.2f}")

# %%
# Fine-tuning the top of the encoder
# ----------------------------------
# ``FineTunedClassifier`` trains a new linear head and, with ``n_frozen=-2``, the last two
# of the encoder's seven layer groups (``embeddings``, ``layer0`` ... ``layer5``). The
# frozen groups run once per fit, so each epoch computes only the top two layers. A
# transformer's body wants small steps: ``backbone_lr`` between 1e-5 and 5e-5.
from sktransfer import FineTunedClassifier

clf = FineTunedClassifier(
    "all-MiniLM-L6-v2", n_frozen=-2, max_epochs=8, lr=1e-2, backbone_lr=5e-5, random_state=0
)
clf.fit(X_train, y_train)
print(f"{clf.n_layer_groups_} layer groups, {clf.n_frozen_} frozen")
print(f"fine-tuned MiniLM:                {clf.score(X_test, y_test):.2f}")
print(clf.predict(["Where is my parcel?", "I was charged too much.", "The app won't start."]))

# %%
# How fine-tuning moves the embeddings
# ------------------------------------
# A fitted classifier's encoder is a backbone like any other: the extractor gives its
# embeddings. Both panels show the held-out messages, projected on the first two
# principal components of the training messages' embeddings. The pretrained encoder
# already groups the messages by team, which is why a linear model on frozen embeddings
# does well here; fine-tuning the top two layers reshapes the space around the teams.
import matplotlib.pyplot as plt
from sklearn.decomposition import PCA

encoders = {
    "pretrained all-MiniLM-L6-v2": PretrainedFeatureExtractor("all-MiniLM-L6-v2"),
    "fine-tuned (n_frozen=-2)": PretrainedFeatureExtractor(backbone=clf),
}
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, (title, encoder) in zip(axes, encoders.items(), strict=True):
    pca = make_pipeline(encoder, PCA(n_components=2)).fit(X_train)
    points = pca.transform(X_test)
    for name, marker in zip(["billing", "delivery", "technical"], "osD", strict=True):
        rows = y_test == name
        ax.scatter(*points[rows].T, marker=marker, label=name)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
axes[0].legend()
fig.tight_layout()
plt.show()

# %%
# With 36 examples, read the accuracies as a property of this small task, not a ranking.
# On your data, search ``n_frozen`` (an ordinary parameter) with
# :class:`~sklearn.model_selection.GridSearchCV`, as for images.
