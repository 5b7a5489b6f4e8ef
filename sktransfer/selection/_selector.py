"""BackboneSelector: the best-scoring candidate as the first step of a pipeline."""

from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._parameters import constraints
from .._transferability import SETTINGS_CONSTRAINTS, rank
from ._candidates import make_extractor, parse_candidates


class BackboneSelector(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Choose the backbone and layer by a transferability score, then extract features.

    ``fit`` scores every candidate from one forward pass per backbone (see
    :func:`rank_candidates`) and keeps the best as a fitted
    :class:`~sktransfer.PretrainedFeatureExtractor`; ``transform`` is that extractor's.
    As the first step of a :class:`~sklearn.pipeline.Pipeline` it replaces a grid search
    over backbones, which would train the rest of the pipeline once per candidate and
    fold.

    Parameters
    ----------
    candidates : list, default=None
        Backbone specs (their final features), ``(spec, layer)`` pairs (``layer`` a
        name, None, a list of these, or ``"auto"`` for every layer group), or
        :class:`~sktransfer.PretrainedFeatureExtractor` instances. None compares the
        layer groups of the default backbone.
    scoring : {"logme", "hscore", "leep"} or callable, default="logme"
        The transferability score (see :func:`rank_candidates`).
    pooling : {"avg", "max", "avgmax", "token"} or None, default="avg"
        Pooling of the candidates that are not extractors.
    image_size : int, default=None
        Input size of the candidates that are not extractors (None: each backbone's own).
    batch_size : int, default=32
        Inputs per forward pass, when scoring and in the chosen extractor.
    device : str, default="auto"
        Where the networks run.
    num_workers : int, default=0
        Worker processes that decode the inputs.
    n_resamples : int, default=10
        Random half-samples on which the scores are computed again, for their spread
        (``scores_``); 0 skips them.
    random_state : int, RandomState instance or None, default=None
        Seeds the resamples.
    verbose : int, default=0
        1 shows progress bars.

    Attributes
    ----------
    best_ : PretrainedFeatureExtractor
        The best candidate's extractor, fitted.
    scores_ : pandas.DataFrame
        Every candidate's score, best first (see :func:`rank_candidates`).
    n_features_out_ : int
        Width of the output.

    See Also
    --------
    rank_candidates : The ranking alone.
    best_layer : The best layer of one backbone.

    Notes
    -----
    :func:`sktransfer.save` does not describe a selector; save ``best_``, the extractor
    it chose, or use :mod:`joblib`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sktransfer.selection import BackboneSelector
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    >>> y = np.repeat([0, 1], 10)
    >>> selector = BackboneSelector([("efficientnet_lite0", ["blocks3", None])],
    ...                             image_size=32, n_resamples=0)
    >>> pipe = make_pipeline(selector, LogisticRegression()).fit(X, y)
    >>> selector.scores_.layer.to_list() == [selector.best_.layer_, *selector.scores_.layer[1:]]
    True
    """

    _parameter_constraints: dict = {
        "candidates": [list, None],
        **constraints("image_size"),
        **SETTINGS_CONSTRAINTS,
    }

    def __init__(
        self,
        candidates=None,
        *,
        scoring="logme",
        pooling="avg",
        image_size=None,
        batch_size=32,
        device="auto",
        num_workers=0,
        n_resamples=10,
        random_state=None,
        verbose=0,
    ):
        self.candidates = candidates
        self.scoring = scoring
        self.pooling = pooling
        self.image_size = image_size
        self.batch_size = batch_size
        self.device = device
        self.num_workers = num_workers
        self.n_resamples = n_resamples
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X, y=None):
        """Score the candidates on ``(X, y)`` and fit the best one's extractor.

        Parameters
        ----------
        X : images or texts
            The labelled inputs.
        y : array-like of shape (n_samples,)
            Their labels (required: the candidates are scored against them).

        Returns
        -------
        self : BackboneSelector
        """
        self._validate_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None: "
                "candidates are scored against the labels."
            )
        parsed = parse_candidates(self.candidates, self.pooling, self.image_size)
        scores, ranked = rank(X, y, parsed, self.get_params())
        settings = ("batch_size", "device", "num_workers", "verbose")
        self.best_ = make_extractor(ranked[0], **{k: getattr(self, k) for k in settings}).fit(X)
        self.scores_ = scores
        self.n_features_out_ = self.best_.n_features_out_
        return self

    def transform(self, X):
        """Return the chosen extractor's features of ``X``.

        Parameters
        ----------
        X : images or texts
            The inputs.

        Returns
        -------
        features : ndarray of shape (n_samples, ``n_features_out_``), dtype float32
        """
        check_is_fitted(self)
        return self.best_.transform(X)

    @property
    def _n_features_out(self):
        return self.n_features_out_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.target_tags.required = True
        tags.transformer_tags.preserves_dtype = []
        tags.non_deterministic = False
        return tags
