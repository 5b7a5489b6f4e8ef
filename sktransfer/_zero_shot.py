"""Zero-shot text classification: classes from their names, by similarity of embeddings.

:class:`ZeroShotTextClassifier` embeds a description of each class ("This text is about
sports.") with a sentence encoder and gives each text the class whose description it is
most similar to (cosine). With a few labelled texts, each class's description counts as
one more example of it: the class's prototype is the normalised mean of the embeddings of
its description and of its examples, and the temperature of the probabilities is fitted to
the labelled texts, each scored against prototypes that leave it out.
"""

from numbers import Real

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._extractor import PretrainedFeatureExtractor
from ._parameters import constraints

__all__ = ["ZeroShotTextClassifier"]

#: The temperature without labelled texts to fit one: a cosine gap of 0.1 between two
#: classes is a probability ratio of e**2 (about 7.4).
DEFAULT_TEMPERATURE = 0.05
#: The fitted temperature's floor: texts that are all classified right would drive it to
#: zero (certainty); at 0.01 a cosine gap of 0.05 is still a probability ratio of e**5.
MIN_TEMPERATURE = 0.01


def _normalise(rows):
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


def _descriptions(labels, template):
    """Return ``(classes, descriptions per class)`` from the ``labels`` parameter."""
    if isinstance(labels, dict):
        classes = list(labels)
        texts = [[v] if isinstance(v, str) else list(v) for v in labels.values()]
    else:
        classes = list(labels)
        texts = [[template.format(label)] for label in classes]
    if len(classes) < 2:
        raise ValueError(f"labels must name at least 2 classes; got {len(classes)}.")
    if len(set(classes)) != len(classes):
        raise ValueError(f"labels must not repeat a class; got {classes!r}.")
    for label, described in zip(classes, texts, strict=True):
        if not described or not all(isinstance(t, str) and t.strip() for t in described):
            raise ValueError(
                f"Class {label!r} needs a non-empty description (a string or a list of "
                f"strings); got {described!r}."
            )
    return classes, texts


class ZeroShotTextClassifier(ClassifierMixin, BaseEstimator):
    """Classify texts by their similarity to descriptions of the classes; no training needed.

    Each class is described by a sentence (``template`` filled with its name, or your own
    descriptions); a text gets the class whose description's embedding is closest
    (cosine), and ``predict_proba`` is the softmax of the cosines over ``temperature``.
    Given labelled texts, each class's description counts as one more example: the
    prototype is the normalised mean of the normalised embeddings of the description and
    of the class's texts, and the temperature is fitted to the labelled texts (each
    scored against prototypes that leave it out, so the fit is not overconfident).

    Parameters
    ----------
    labels : list of str or dict, default=None
        The classes. A list of names fills ``template``; a dict maps each class to its
        description (a string or a list of strings, whose embeddings are averaged). None
        takes the classes from ``y`` at ``fit`` (then ``y`` is needed).
    backbone : str or Backbone, default="all-MiniLM-L6-v2"
        A sentence encoder (the bundled one works offline), as
        :class:`PretrainedFeatureExtractor` takes it.
    template : str, default="This text is about {}."
        Turns a class name into its description (``{}`` is the name).
    temperature : float or None, default=None
        Divides the cosines before the softmax. None fits it to labelled texts given to
        ``fit`` (at least two classes with two texts each; no lower than 0.01), else
        uses 0.05.
    max_length : int or None, default=None
        Tokens per text (None: the encoder's limit); truncation is reported.
    batch_size : int, default=32
        Texts per forward pass.
    device : str, default="auto"
        Where the encoder runs.
    memory : str, path-like, joblib.Memory or None, default=None
        A folder that keeps embeddings across processes.
    verbose : int, default=0
        1 shows a progress bar.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The classes, in the order of ``predict_proba``'s columns.
    prototypes_ : ndarray of shape (n_classes, n_features)
        Each class's unit-length prototype embedding.
    temperature_ : float
        The temperature used.
    n_examples_ : ndarray of shape (n_classes,)
        Labelled texts that went into each prototype (besides its description).
    embedder_ : PretrainedFeatureExtractor
        The fitted encoder.

    See Also
    --------
    PretrainedFeatureExtractor : the embeddings, for any scikit-learn classifier.

    Examples
    --------
    >>> from sktransfer import ZeroShotTextClassifier
    >>> clf = ZeroShotTextClassifier(labels=["sports", "cooking"]).fit()
    >>> clf.predict(["The striker scored twice in the final."]).tolist()
    ['sports']
    """

    _parameter_constraints = {
        "labels": [list, tuple, dict, None],
        "template": [str],
        "temperature": [Interval(Real, 0, None, closed="neither"), None],
        **constraints("backbone", "max_length", "batch_size", "device", "memory", "verbose"),
    }

    def __init__(
        self,
        labels=None,
        *,
        backbone="all-MiniLM-L6-v2",
        template="This text is about {}.",
        temperature=None,
        max_length=None,
        batch_size=32,
        device="auto",
        memory=None,
        verbose=0,
    ):
        self.labels = labels
        self.backbone = backbone
        self.template = template
        self.temperature = temperature
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.memory = memory
        self.verbose = verbose

    def fit(self, X=None, y=None):
        """Embed the class descriptions (and the labelled texts ``X``, ``y`` if given).

        Parameters
        ----------
        X : texts or None, default=None
            Labelled texts (optional).
        y : array-like of shape (n_samples,) or None, default=None
            Their classes: each must be one of ``labels``.

        Returns
        -------
        self : ZeroShotTextClassifier
        """
        self._validate_params()
        if (X is None) != (y is None):
            raise ValueError("Give both X and y (labelled texts), or neither (zero-shot).")
        labels = self.labels
        if labels is None:
            if y is None:
                raise ValueError("labels=None takes the classes from y: pass labels or y.")
            labels = np.unique(np.asarray(y)).tolist()
        if "{}" not in self.template and not isinstance(labels, dict):
            raise ValueError(
                f"template must contain '{{}}' for the class name; got {self.template!r}."
            )
        classes, descriptions = _descriptions(labels, self.template)
        texts = [text for described in descriptions for text in described]
        self.embedder_ = self._embedder().fit(texts)
        rows = np.split(self._embed(texts), np.cumsum([len(d) for d in descriptions])[:-1])
        sums = _normalise(np.stack([part.mean(0) for part in rows]))  # one per class
        order = np.argsort(np.asarray(classes), kind="stable")
        self.classes_ = np.asarray(classes)[order]
        sums = sums[order]
        self.n_examples_ = np.zeros(len(self.classes_), dtype=int)
        self.temperature_ = DEFAULT_TEMPERATURE if self.temperature is None else self.temperature
        if X is not None:
            sums = self._add_examples(X, y, sums)
        self.prototypes_ = _normalise(sums)
        return self

    def _embedder(self):
        return PretrainedFeatureExtractor(
            self.backbone,
            max_length=self.max_length,
            batch_size=self.batch_size,
            device=self.device,
            memory=self.memory,
            verbose=self.verbose,
        )

    def _embed(self, texts):
        return _normalise(self.embedder_.transform(texts).astype(np.float64))

    def _add_examples(self, X, y, sums):
        """Add the labelled texts to the prototypes' sums and fit the temperature."""
        y = np.asarray(y, dtype=object)
        index = {label: i for i, label in enumerate(self.classes_)}
        unknown = sorted({str(label) for label in y if label not in index})
        if unknown:
            raise ValueError(
                f"y holds classes that labels does not name: {', '.join(unknown)}; the "
                f"classes are {', '.join(map(str, self.classes_))}."
            )
        codes = np.array([index[label] for label in y])
        rows = self._embed(X)
        if len(rows) != len(codes):
            raise ValueError(f"X has {len(rows)} texts but y has {len(codes)} labels.")
        sums = sums.copy()
        np.add.at(sums, codes, rows)
        self.n_examples_ = np.bincount(codes, minlength=len(self.classes_))
        if self.temperature is None and (self.n_examples_ >= 2).sum() >= 2:
            self.temperature_ = _fit_temperature(rows, codes, sums)
        return sums

    def decision_function(self, X):
        """Return each text's cosine similarity to each class's prototype.

        Parameters
        ----------
        X : texts

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self._embed(X) @ self.prototypes_.T

    def predict_proba(self, X):
        """Return the probability of each class: softmax of the cosines over the temperature.

        Parameters
        ----------
        X : texts

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        return softmax(self.decision_function(X) / self.temperature_, axis=1)

    def predict(self, X):
        """Return the most similar class of each text.

        Parameters
        ----------
        X : texts

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        scores = self.decision_function(X)  # checks that the model is fitted
        return self.classes_[np.argmax(scores, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        return tags


def _fit_temperature(rows, codes, sums):
    """Return the temperature minimising the log loss of leave-one-out prototypes."""
    own = sums[codes] - rows  # each text's class prototype without it
    scores = rows @ _normalise(sums).T
    scores[np.arange(len(rows)), codes] = np.einsum("ij,ij->i", rows, _normalise(own))

    def loss(log_t):
        return -log_softmax(scores / np.exp(log_t), axis=1)[np.arange(len(rows)), codes].mean()

    bounds = (np.log(MIN_TEMPERATURE), np.log(10.0))
    result = minimize_scalar(loss, bounds=bounds, method="bounded")
    return float(np.exp(result.x))
