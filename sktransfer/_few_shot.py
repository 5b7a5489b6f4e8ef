"""Few-shot text classification by contrastive tuning of a sentence encoder (SetFit's method).

:class:`FewShotTextClassifier` first tunes the encoder on pairs of its training texts:
each text is paired with ``n_pairs`` partners drawn at random, half from its own class and
half from others, and the encoder learns to give same-class pairs a cosine of 1 and the
others 0 (mean squared error; for a multi-label ``y`` the target is the Jaccard similarity
of the two label sets). The number of pairs is ``n_pairs`` times the number of texts, so
the cost grows linearly with the data (not with its square). A scikit-learn classifier
(logistic regression by default) is then fitted on the tuned embeddings.

Tunstall et al., "Efficient Few-Shot Learning Without Prompts", 2022.
"""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.multioutput import MultiOutputClassifier
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted

from ._base import TransferEstimator
from ._core.device import fused_adam, resolve_device, seed_everything
from ._core.progress import progress_bar
from ._extractor import PretrainedFeatureExtractor
from ._modalities import TextPipeline
from ._parameters import constraints

__all__ = ["FewShotTextClassifier"]


def make_pairs(codes, n_pairs, rng):
    """Return ``(first, second, same)`` index arrays: ``n_pairs`` partners for each text.

    Half of each text's partners share its class (another text of it where there is one),
    half do not; ``codes`` are integer classes. Texts of a class with a single text get
    only partners from other classes; a class-free draw (one class) gives only positives.
    """
    codes = np.asarray(codes)
    by_class = {c: np.flatnonzero(codes == c) for c in np.unique(codes)}
    first, second, same = [], [], []
    for i, c in enumerate(codes):
        own = by_class[c][by_class[c] != i]
        other = np.flatnonzero(codes != c)
        n_pos = n_pairs // 2 if len(other) else n_pairs
        n_neg = n_pairs - n_pos if len(own) else n_pairs
        n_pos = n_pos if len(own) else 0
        for pool, n, flag in ((own, n_pos, True), (other, n_neg, False)):
            if n and len(pool):
                second.append(rng.choice(pool, n))
                first.append(np.full(n, i))
                same.append(np.full(n, flag))
    return np.concatenate(first), np.concatenate(second), np.concatenate(same)


def length_batches(first, second, lengths, batch_size, rng, pool=50):
    """Return the pairs' order cut into batches of ``batch_size``, similar lengths together.

    The pairs are shuffled, then taken ``pool`` batches at a time and sorted within them
    by their longer text, so a batch pads its texts to about their own length rather than
    to the longest of a random draw; the batches are then shuffled, so the order of
    training stays random. Every pair is in exactly one batch.
    """
    order = rng.permutation(len(first))
    longer = np.maximum(lengths[first], lengths[second])
    batches = []
    for start in range(0, len(order), batch_size * pool):
        chunk = order[start : start + batch_size * pool]
        chunk = chunk[np.argsort(longer[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _pair_targets(y, first, second, same):
    """Cosine targets: 1/0 for single-label; the Jaccard similarity for label sets."""
    if y.ndim == 1:
        return same.astype(np.float32)
    a, b = y[first].astype(bool), y[second].astype(bool)
    union = (a | b).sum(1)
    return np.where(union > 0, (a & b).sum(1) / np.maximum(union, 1), 1.0).astype(np.float32)


class FewShotTextClassifier(ClassifierMixin, TransferEstimator):
    """Few-shot text classification: contrastive tuning of the encoder, then a classifier.

    The method of SetFit (Tunstall et al., 2022): the sentence encoder is tuned on pairs
    of training texts to give same-class pairs similar embeddings, then ``head`` (a
    logistic regression by default) is fitted on the tuned embeddings. It shines with
    8 to 64 texts per class, where fine-tuning a classifier end to end overfits and
    frozen embeddings leave accuracy behind.

    Parameters
    ----------
    backbone : str or Backbone, default="all-MiniLM-L6-v2"
        A sentence encoder, as :class:`PretrainedFeatureExtractor` takes it.
    head : classifier or None, default=None
        A scikit-learn classifier fitted on the tuned embeddings (cloned). None is
        ``LogisticRegression(max_iter=1000)``; for a multi-label ``y`` it is wrapped in
        :class:`~sklearn.multioutput.MultiOutputClassifier`.
    n_pairs : int, default=40
        Pairs per text and epoch, half with texts of its own class: the cost is linear
        in the number of texts. 40 is what the ``setfit`` package draws per text for 8
        texts in each of 6 classes; it draws more as the data grows (every pair), this
        never does.
    max_epochs : int, default=1
        Passes over the pairs.
    lr : float, default=2e-5
        AdamW's learning rate for the encoder.
    batch_size : int, default=16
        Pairs per optimiser step (twice as many texts per forward pass). Pairs of
        similar length share a batch, so little of it is padding.
    max_length : int or None, default=None
        Tokens per text (None: the encoder's limit).
    device : str, default="auto"
        Where the encoder runs.
    random_state : int, RandomState or None, default=None
        Seeds the pairs, their order and the encoder's dropout.
    verbose : int, default=0
        1 shows a progress bar.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,) or list of ndarray
        The classes (for a multi-label ``y``, one ``[0, 1]`` array per label).
    embedder_ : PretrainedFeatureExtractor
        The tuned encoder, fitted: ``embedder_.transform(texts)`` gives the embeddings.
    head_ : classifier
        The fitted head.
    n_pairs_seen_ : int
        Pairs the encoder was tuned on.
    loss_curve_ : list of float
        The mean pair loss of each epoch.

    See Also
    --------
    ZeroShotTextClassifier : classes from their names, with no training texts.

    Examples
    --------
    >>> from sktransfer import FewShotTextClassifier
    >>> X = ["a great film", "loved it", "dull and long", "a waste of time"]
    >>> clf = FewShotTextClassifier(n_pairs=4, random_state=0).fit(X, [1, 1, 0, 0])
    >>> clf.predict(["what a great, lovely film"]).tolist()
    [1]
    """

    _parameter_constraints = {
        "backbone": TransferEstimator._parameter_constraints["backbone"],
        "head": [HasMethods(["fit", "predict_proba"]), None],
        "n_pairs": [Interval(Integral, 2, None, closed="left")],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        **constraints("max_length", "batch_size", "device", "random_state", "verbose"),
    }

    def __init__(
        self,
        backbone="all-MiniLM-L6-v2",
        *,
        head=None,
        n_pairs=40,
        max_epochs=1,
        lr=2e-5,
        batch_size=16,
        max_length=None,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.backbone = backbone
        self.head = head
        self.n_pairs = n_pairs
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X, y, sample_weight=None):
        """Tune the encoder on pairs of the texts ``X``, then fit the head.

        Parameters
        ----------
        X : texts
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            A class per text, or a 0/1 indicator matrix of labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Weighs each text in the head's fit and the pairs it is in (by the product of
            the two texts' weights).

        Returns
        -------
        self : FewShotTextClassifier
        """
        self._validate_params()
        backbone = self._load_backbone()
        if not isinstance(backbone.preprocessing, TextPipeline):
            raise ValueError(
                "FewShotTextClassifier tunes a text encoder; backbone "
                f"{self.backbone!r} takes {backbone.preprocessing.modality}s."
            )
        inputs = backbone.preprocessing.check(X)
        y, codes = _check_targets(y, len(inputs))
        weights = _check_weights(sample_weight, len(inputs))
        device = resolve_device(self.device)
        rng = check_random_state(self.random_state)
        seed_everything(rng.randint(2**31 - 1))
        self.loss_curve_, self.n_pairs_seen_ = self._tune(
            backbone, inputs, y, codes, weights, device, rng
        )
        backbone.net.eval().requires_grad_(False)
        self.embedder_ = PretrainedFeatureExtractor(
            backbone, batch_size=max(self.batch_size, 32), device=self.device
        ).fit(X)
        features = self.embedder_.transform(X)
        head = LogisticRegression(max_iter=1000) if self.head is None else clone(self.head)
        if y.ndim == 2:
            head = MultiOutputClassifier(head)
        fit_params = {} if sample_weight is None else {"sample_weight": weights}
        self.head_ = head.fit(features, y, **fit_params)
        self.classes_ = self.head_.classes_
        return self

    def _tune(self, backbone, inputs, y, codes, weights, device, rng):
        """Tune ``backbone.net`` on pairs; return the loss of each epoch and the pairs seen."""
        net = backbone.net.to(device).train().requires_grad_(True)
        encoded = backbone.preprocessing.token_ids(inputs)
        lengths = np.array([len(ids) for ids in encoded])
        fused = fused_adam(device) or None  # one kernel per step: 4-8x faster on a CPU
        optimizer = torch.optim.AdamW(net.parameters(), lr=self.lr, fused=fused)
        curve, seen = [], 0
        for _ in range(self.max_epochs):
            first, second, same = make_pairs(codes, self.n_pairs, rng)
            target = torch.from_numpy(_pair_targets(y, first, second, same))
            pair_weight = torch.from_numpy((weights[first] * weights[second]).astype(np.float32))
            batches = length_batches(first, second, lengths, self.batch_size, rng)
            total = 0.0
            bar = progress_bar(self.verbose > 0, len(first), "pairs", unit="pair")
            for step in batches:
                rows = [encoded[i] for i in np.r_[first[step], second[step]]]
                batch = backbone.preprocessing.collate(rows)
                batch = {key: value.to(device) for key, value in batch.items()}
                out = net(batch)
                a, b = out[: len(step)], out[len(step) :]
                cosine = torch.nn.functional.cosine_similarity(a, b)
                loss = pair_weight[step].to(device) * (cosine - target[step].to(device)) ** 2
                loss = loss.sum() / pair_weight[step].sum().clamp_min(1e-12).to(device)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(step)
                bar.update(len(step))
            bar.close()
            curve.append(total / max(len(first), 1))
            seen += len(first)
        return curve, seen

    def _embeddings(self, X):
        check_is_fitted(self)
        return self.embedder_.transform(X)

    def predict_proba(self, X):
        """Return the head's probabilities for the texts ``X``.

        Parameters
        ----------
        X : texts

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), or a list of one per label
        """
        return self.head_.predict_proba(self._embeddings(X))

    def predict(self, X):
        """Return the head's prediction for the texts ``X``.

        Parameters
        ----------
        X : texts

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
        """
        return self.head_.predict(self._embeddings(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = False  # texts only
        tags.target_tags.multi_output = True
        return tags


def _check_targets(y, n):
    """Return ``(y, codes)``: the targets and an integer code per row for pairing."""
    y = np.asarray(y)
    if len(y) != n:
        raise ValueError(f"X has {n} texts but y has {len(y)} rows.")
    kind = type_of_target(y)
    if kind == "multilabel-indicator":
        if n < 2:
            raise ValueError(f"Contrastive tuning pairs texts: it needs at least 2; got {n}.")
        _, codes = np.unique(y, axis=0, return_inverse=True)
        return y, codes.ravel()
    if kind not in ("binary", "multiclass"):
        raise ValueError(
            f"y must be class labels or a 0/1 label indicator matrix; got {kind} targets."
        )
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"y needs at least 2 classes; got only {classes[0]!r}.")
    return y, codes


def _check_weights(sample_weight, n):
    if sample_weight is None:
        return np.ones(n)
    weights = np.asarray(sample_weight, dtype=float)
    if weights.shape != (n,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(
            f"sample_weight must be {n} finite weights >= 0, one per text; got shape "
            f"{weights.shape}."
        )
    return weights
