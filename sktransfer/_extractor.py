"""Feature transfer: a pretrained backbone as a scikit-learn transformer."""

import sys
import warnings
from functools import partial

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import TransferEstimator
from ._core.activations import cached_rows, input_keys, make_namespace, shared_store_bytes
from ._core.device import fallback_device, resolve_device, use_amp
from ._core.digests import module_digest
from ._core.engine import frozen_forward
from ._core.inference import memoized_probe, probe, run_batches
from ._parameters import constraints
from ._transferability import best_layer
from .backbones import DEFAULT_BACKBONE, FINAL_INPUT, LayerTaps, fold_batchnorm

CPU = torch.device("cpu")


class PretrainedFeatureExtractor(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, TransferEstimator
):
    """Extract features of images or texts with a frozen pretrained network.

    Feature transfer: put it in front of any scikit-learn estimator, and the network's
    pooled activations become an ordinary ``(n_samples, n_features)`` float32 matrix. With
    a text backbone (``"all-MiniLM-L6-v2"``, bundled, or ``"hf:<name>"``) the features are
    the model's sentence embedding (its own pooling and normalisation).

    Parameters
    ----------
    backbone : str, torch.nn.Module, Backbone or fitted estimator, default="efficientnet_lite0"
        The network. The default EfficientNet-Lite0 ships with its ImageNet weights and
        works offline. Also a torchvision model name (``"resnet18"``), ``"timm:<name>"``, a
        module of your own, or a fitted :class:`FineTunedClassifier` to reuse its
        fine-tuned backbone; for texts ``"all-MiniLM-L6-v2"`` (bundled, offline) or
        ``"hf:<name or folder>"``. See :func:`sktransfer.load_backbone`.
    weights : str, path or None, default="DEFAULT"
        Pretrained weights: ``"DEFAULT"``, a torchvision enum name, a local checkpoint
        (``.pth``/``.safetensors``), or None for random initialisation.
    layer : str, default=None
        Extract this intermediate layer instead of the final features, e.g.
        ``"blocks3"`` (or ``"layer2"``, a text encoder's third layer, pooled over the
        real tokens); the valid names are ``backbone_.layer_names`` after ``fit``. The
        network stops at that layer, so early layers are also cheaper. ``"auto"`` picks,
        in ``fit(X, y)``, the layer group (or the final features) whose features score best
        on the labels by LogME (:func:`sktransfer.selection.best_layer`, one forward pass
        for all layers); ``layer_`` records it and ``layer_scores_`` the ranking.
    pooling : {"avg", "max", "avgmax", "token"} or None, default="avg"
        How a layer's feature map is reduced to a vector: average or maximum over space
        (or tokens), both concatenated, the first (class) token, or None to flatten.
    image_size : int, default=None
        Image backbones: side of the square crop fed to the network; None uses the
        backbone's own (224 for the default).
    max_length : int, default=None
        Text backbones: tokens per text (longer texts are truncated, with a warning that
        counts them); None uses the model's own (256 for all-MiniLM-L6-v2).
    batch_size : int, default=32
        Inputs per forward pass.
    device : str, default="auto"
        ``"auto"`` takes CUDA when present, else the CPU; or ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``.
    num_workers : int, default=0
        Worker processes that decode images. With 0, one background thread decodes the
        next batch while the network runs.
    verbose : int, default=0
        1 shows a progress bar during ``transform`` (``verbose`` as in
        :class:`FineTunedClassifier` and scikit-learn).
    progress : bool
        Deprecated alias of ``verbose``: use ``verbose=1``. It will be removed in 0.4.
    memory : str, path-like, joblib.Memory or None, default=None
        A folder (or a :class:`joblib.Memory`) where features are also kept on disk, for
        other processes (a search with ``n_jobs``, a later session), as
        :class:`~sklearn.pipeline.Pipeline`'s ``memory`` keeps fitted transformers. None
        keeps nothing on disk. Delete the folder to free the space.

    Attributes
    ----------
    backbone_ : Backbone
        The loaded network, preprocessing and layer groups.
    device_ : torch.device
        Where the network runs.
    layer_ : str or None
        The layer whose output ``transform`` returns (None: the final features), as
        ``layer`` was at ``fit`` (or as ``layer="auto"`` chose it): a parameter changed
        later takes effect at the next fit.
    layer_scores_ : pandas.DataFrame or None
        With ``layer="auto"``, every layer's transferability score, best first (see
        :func:`sktransfer.selection.rank_candidates`); else None.
    n_features_out_ : int
        Width of the output.

    See Also
    --------
    FineTunedClassifier : Fine-tune the backbone instead of freezing it.
    sktransfer.load_backbone : The backbone specs.

    Notes
    -----
    The network runs in eval mode under :func:`torch.inference_mode`, in the
    channels-last memory layout, with BatchNorm folded into the preceding convolutions
    (checked to give the same features); the next batch is decoded while the network
    runs.

    Features are shared between transforms (``memory`` and the process's store, whose size is the
    ``shared_cache_size`` of :func:`sktransfer.set_config`), keyed by
    each input's content (a file's path, size and modification time, so a rewritten file
    is computed again; an array's, a PIL image's or a text's bytes) and by what computes
    them (the weights as they were at ``fit``, the input pipeline, ``layer`` and
    ``pooling``, the device): after changing ``backbone_``'s weights in place, call ``fit``
    again. A stored row is the one computed first, perhaps in another batch: it may
    differ from a fresh one in the last bits, as results on different hardware do. A
    text's truncation warning is given when its features are computed.

    A pickle or a :func:`sktransfer.save` file leaves the weights out only when they can
    be rebuilt bit for bit from a named source (pretrained weights, unchanged): it is then
    kilobytes and the weights reload from their source. Random weights (``weights=None``),
    checkpoint files, fine-tuned backbones and modules of your own are stored.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import PretrainedFeatureExtractor
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    >>> extractor = PretrainedFeatureExtractor(image_size=64)
    >>> extractor.fit_transform(images).shape
    (2, 1280)
    """

    _parameter_constraints: dict = {
        **TransferEstimator._parameter_constraints,
        **constraints("layer", "pooling", "verbose", "memory"),
        "progress": ["boolean", StrOptions({"deprecated"})],
    }

    def __init__(
        self,
        backbone=DEFAULT_BACKBONE,
        *,
        weights="DEFAULT",
        layer=None,
        pooling="avg",
        image_size=None,
        max_length=None,
        batch_size=32,
        device="auto",
        num_workers=0,
        verbose=0,
        progress="deprecated",
        memory=None,
    ):
        self.backbone = backbone
        self.weights = weights
        self.layer = layer
        self.pooling = pooling
        self.image_size = image_size
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.num_workers = num_workers
        self.verbose = verbose
        self.progress = progress
        self.memory = memory

    def fit(self, X, y=None):
        """Load the backbone; ``X`` is only validated (nothing is learned from it).

        Parameters
        ----------
        X : images or texts
            Image file paths, image arrays or PIL images (see
            :func:`sktransfer.load_image_folder`); or texts, for a text backbone.
        y : array-like of shape (n_samples,), default=None
            Labels, used only by ``layer="auto"`` to choose the layer.

        Returns
        -------
        self : PretrainedFeatureExtractor
        """
        self._validate_params()
        if self.progress != "deprecated":
            warnings.warn(
                "'progress' was renamed 'verbose' in 0.2 and will be removed in 0.4: use "
                "verbose=1 for a progress bar.",
                FutureWarning,
                stacklevel=2,
            )
        backbone = self._load_backbone()
        backbone.preprocessing.check(X)
        device = resolve_device(self.device)  # asking for a missing GPU is an error here
        layer, self.layer_scores_ = self.layer, None
        if layer == "auto":
            layer, self.layer_scores_ = self._choose_layer(backbone, X, y, device)
        self._set_fitted(backbone, device, layer, self.pooling)
        return self

    def _choose_layer(self, backbone, X, y, device):
        """Choose the layer whose features score best on ``(X, y)`` (one forward pass)."""
        if y is None:
            raise ValueError(
                "layer='auto' chooses the layer by how well its features fit the labels: "
                "pass y to fit (or name a layer)."
            )
        return best_layer(
            backbone,
            X,
            y,
            pooling=self.pooling,
            batch_size=self.batch_size,
            device=device,
            num_workers=self.num_workers,
            verbose=self.verbose,
        )

    def _set_fitted(self, backbone, device, layer, pooling):
        """Set every fitted attribute (after ``fit``, unpickling and loading)."""
        backbone.check_layer(layer)
        self.backbone_ = backbone
        self.device_ = device
        self.layer_ = layer
        self._pooling = pooling
        backbone.net.eval().requires_grad_(False)
        self._net = None  # built by the first transform that computes features
        self._weights_digest = module_digest(backbone.net)  # its weights and architecture
        shapes = partial(self._features, net=backbone.net)  # on the CPU, as loaded
        key = ("features", self._weights_digest, repr(backbone.preprocessing), layer, pooling)
        self._forward_key = key
        self.n_features_out_ = memoized_probe(
            key, lambda: int(probe(shapes, backbone.preprocessing, CPU).shape[1])
        )

    def _features(self, x, net=None):
        net = self._inference_net() if net is None else net
        if self.layer_ is None and self._pooling == "avg":
            return net(x)
        # a layer, or the last feature map (the input of the pool stage) pooled otherwise
        layer = FINAL_INPUT if self.layer_ is None else self.layer_
        _, outputs = LayerTaps(net, [layer])(x)
        return self.backbone_.preprocessing.pool(outputs[layer], self._pooling)

    def _inference_net(self):
        """Return the network as inference runs it, built on first use.

        Not in ``fit``: the fits of a search whose features are all in the shared cache
        never build it (folding BatchNorm costs about as much as a few dozen images).
        """
        if self._net is None:
            self._net = _inference_net(self.backbone_, self.device_, self.layer_)
        return self._net

    def transform(self, X):
        """Return the features of the inputs in ``X``.

        Parameters
        ----------
        X : images or texts
            Image file paths, image arrays or PIL images; or texts, for a text backbone.

        Returns
        -------
        features : ndarray of shape (n_samples, ``n_features_out_``), dtype float32
        """
        check_is_fitted(self)
        preprocessing = self.backbone_.preprocessing
        inputs = preprocessing.check(X)
        show = self.verbose > 0 or self.progress is True
        computed = []

        def compute(indices):
            computed.append(len(indices))
            whole = len(indices) == len(inputs)  # indices are increasing: all, in order
            subset = inputs if whole else inputs.take(indices)
            batches = self._batches(subset, preprocessing, progress=show, desc="features")
            forward = frozen_forward(
                self._features,
                key=self._forward_key,
                example=preprocessing.example_input(2, random=True),
                device=self.device_,
                n_rows=len(subset),
            )
            return run_batches(forward, batches, len(subset), self.device_)

        if not shared_store_bytes() and self.memory is None:
            return compute(np.arange(len(inputs))).numpy()
        namespace = make_namespace(
            "features",
            self._weights_digest,
            repr(preprocessing),
            f"layer={self.layer_!r}",
            f"pooling={self._pooling!r}",
            self.device_.type,
            use_amp(self.device_),
        )
        keys = input_keys(inputs)
        rows = cached_rows(namespace, keys, compute, memory=self.memory)
        if show and sum(computed) < len(inputs):
            stored = len(inputs) - sum(computed)
            print(f"features: {stored} of {len(inputs)} from the shared cache", file=sys.stderr)
        return rows.numpy()

    @property
    def _n_features_out(self):
        return self.n_features_out_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        tags.non_deterministic = False
        return tags

    # --- persistence: the backbone record decides what is stored ---------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: never change the live object
        state.pop("_net", None)
        state.pop("_weights_digest", None)
        state.pop("_forward_key", None)
        state.pop("device_", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "backbone_" in state:
            self._set_fitted(
                self.backbone_, fallback_device(self.device), self.layer_, self._pooling
            )


def _inference_net(backbone, device, layer):
    """Return the network as inference runs it: eval mode, no gradients, channels-last, on device.

    When the whole network runs, a copy with BatchNorm folded into the convolutions
    (checked against the original); hooks on a layer need the original module names.
    """
    backbone.net.eval().requires_grad_(False)
    net = backbone.net
    if layer is None:
        with torch.random.fork_rng(devices=[]):
            net = fold_batchnorm(net, backbone.preprocessing.example_input(2, random=True))
    return net.to(device, memory_format=torch.channels_last)
