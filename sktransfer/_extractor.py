"""Feature transfer: a pretrained backbone as a scikit-learn transformer."""

import copy
import difflib
import os
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._images import check_images, iter_batches
from .backbones import Backbone, load_backbone
from .backbones._optimize import fold_batchnorm
from .backbones._weights import is_checkpoint_path
from ._core.device import device_available, resolve_device

POOLINGS = ("avg", "max", "avgmax", "token")


class _Stop(Exception):
    """Raised by a forward hook once the wanted layer has run: the rest is skipped."""


def pool_features(out, pooling):
    """Pool a layer's output to ``(n_samples, n_features)``.

    Feature maps ``(n, C, H, W)`` are pooled over space, token sequences ``(n, L, C)``
    over tokens (``"token"`` takes the first, class token); ``pooling=None`` flattens.
    """
    if isinstance(out, (tuple, list)):
        out = out[0]
    if out.ndim == 2 or pooling is None:
        return out.flatten(1)
    dims = (2, 3) if out.ndim == 4 else (1,)
    if pooling == "avg":
        return out.mean(dims)
    if pooling == "max":
        return out.amax(dims)
    if pooling == "avgmax":
        return torch.cat([out.mean(dims), out.amax(dims)], dim=1)
    if out.ndim != 3:
        raise ValueError(
            f"pooling='token' needs a token sequence (n, L, C); got {tuple(out.shape)}."
        )
    return out[:, 0]


class PretrainedFeatureExtractor(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Extract features of images with a frozen pretrained network (feature transfer).

    Put it in front of any scikit-learn estimator: the network's pooled activations
    become an ordinary ``(n_samples, n_features)`` float32 matrix.

    Parameters
    ----------
    backbone : str, torch.nn.Module, Backbone or fitted estimator, default="efficientnet_lite0"
        The network. The default EfficientNet-Lite0 ships with its ImageNet weights and
        works offline. Also a torchvision model name (``"resnet18"``), ``"timm:<name>"``, a
        module of your own, or a fitted :class:`FineTunedClassifier` to reuse its
        fine-tuned backbone. See :func:`sktransfer.load_backbone`.
    weights : str, path or None, default="DEFAULT"
        Pretrained weights: ``"DEFAULT"``, a torchvision enum name, a local checkpoint
        (``.pth``/``.safetensors``), or None for random initialisation.
    layer : str, default=None
        Extract this intermediate layer instead of the final features, e.g.
        ``"blocks3"``; the valid names are ``backbone_.layer_names`` after ``fit``. The
        network stops at that layer, so early layers are also cheaper.
    pooling : {"avg", "max", "avgmax", "token"} or None, default="avg"
        How a layer's feature map is reduced to a vector: average or maximum over space
        (or tokens), both concatenated, the first (class) token, or None to flatten.
    image_size : int, default=None
        Side of the square crop fed to the network; None uses the backbone's own
        (224 for the default).
    batch_size : int, default=32
        Images per forward pass.
    device : str, default="auto"
        ``"auto"`` takes CUDA when present, else the CPU; or ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``.
    num_workers : int, default=0
        Worker processes that decode images. With 0, one background thread decodes the
        next batch while the network runs.
    progress : bool, default=False
        Show a progress bar during ``transform``.

    Attributes
    ----------
    backbone_ : Backbone
        The loaded network, preprocessing and layer groups.
    device_ : torch.device
        Where the network runs.
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
    runs. A pickled extractor whose backbone is a named model stores its parameters only:
    unpickling reloads the weights from their source.

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
        "backbone": [str, nn.Module, Backbone, BaseEstimator],
        "weights": [str, os.PathLike, None],
        "layer": [str, None],
        "pooling": [StrOptions(set(POOLINGS)), None],
        "image_size": [Interval(Integral, 16, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "progress": ["boolean"],
    }

    def __init__(
        self,
        backbone="efficientnet_lite0",
        *,
        weights="DEFAULT",
        layer=None,
        pooling="avg",
        image_size=None,
        batch_size=32,
        device="auto",
        num_workers=0,
        progress=False,
    ):
        self.backbone = backbone
        self.weights = weights
        self.layer = layer
        self.pooling = pooling
        self.image_size = image_size
        self.batch_size = batch_size
        self.device = device
        self.num_workers = num_workers
        self.progress = progress

    def fit(self, X, y=None):
        """Load the backbone; ``X`` is only validated (nothing is learned from it).

        Parameters
        ----------
        X : image input
            File paths, image arrays or PIL images (see :func:`sktransfer.load_image_folder`).
        y : ignored

        Returns
        -------
        self : PretrainedFeatureExtractor
        """
        self._validate_params()
        check_images(X)
        device = resolve_device(self.device)  # asking for a missing GPU is an error here
        backbone = load_backbone(self.backbone, self.weights)
        backbone.preprocessing = backbone.preprocessing.with_image_size(self.image_size)
        self._restore(backbone, device=device)
        return self

    def _restore(self, backbone=None, preprocessing=None, device=None):
        """Set the fitted state from a backbone (loaded from its source when None)."""
        if backbone is None:
            backbone = load_backbone(self.backbone, self.weights)
            backbone.preprocessing = backbone.preprocessing.with_image_size(self.image_size)
        if preprocessing is not None:
            backbone.preprocessing = preprocessing
        if device is None:  # unpickled or loaded: fall back to the CPU if the GPU is gone
            device = resolve_device(self.device if device_available(self.device) else "cpu")
        self._check_layer(backbone)
        self.backbone_ = backbone
        self.device_ = device
        self._prepare()
        self.n_features_out_ = self._probe_width()

    def _check_layer(self, backbone):
        if self.layer is None or self.layer in backbone.layer_names:
            return
        close = difflib.get_close_matches(self.layer, backbone.layer_names, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        stages = [name for name, _ in backbone.net.named_children()]
        raise ValueError(
            f"Unknown layer {self.layer!r} for backbone {backbone.name!r}.{hint} The stages "
            f"are {stages}; every valid name ({len(backbone.layer_names)} in all, e.g. "
            f"{backbone.layer_names[1]!r}) is listed by backbone_.layer_names."
        )

    def _prepare(self):
        """Build the inference copy of the network.

        Eval mode, BatchNorm folded into the convolutions (when the whole network runs),
        channels-last, on its device.
        """
        self.backbone_.net.eval().requires_grad_(False)
        net = self.backbone_.net
        if self.layer is None:  # hooks need the original module names
            net = fold_batchnorm(net, self.backbone_.preprocessing.crop_size)
        self._net = net.to(self.device_, memory_format=torch.channels_last)
        self._transform_ = self.backbone_.preprocessing.eval_transform()

    def _forward(self, x):
        net = self._net
        x = x.to(self.device_, non_blocking=True).contiguous(memory_format=torch.channels_last)
        if self.layer is None and self.pooling == "avg":
            return net(x)
        if self.layer is None:  # re-pool the last feature map (the input of the pool stage)
            return pool_features(net[:-1](x), self.pooling)
        captured = {}

        def hook(module, inputs, output):
            captured["out"] = output
            raise _Stop

        handle = net.get_submodule(self.layer).register_forward_hook(hook)
        try:
            net(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        return pool_features(captured["out"], self.pooling)

    def _probe_width(self):
        size = self.backbone_.preprocessing.crop_size
        with torch.inference_mode():
            out = self._forward(torch.zeros(1, 3, size, size))
        return int(out.shape[1])

    def transform(self, X):
        """Return the features of the images in ``X``.

        Parameters
        ----------
        X : image input
            File paths, image arrays or PIL images.

        Returns
        -------
        features : ndarray of shape (n_samples, ``n_features_out_``), dtype float32
        """
        check_is_fitted(self)
        images = check_images(X, draft_size=self.backbone_.preprocessing.resize_size)
        out = np.empty((len(images), self.n_features_out_), dtype=np.float32)
        start = 0
        batches = iter_batches(
            images,
            self._transform_,
            self.batch_size,
            num_workers=self.num_workers,
            progress=self.progress,
            desc="features",
        )
        with torch.inference_mode():
            for batch in batches:
                feats = self._forward(batch)
                out[start : start + len(batch)] = feats.float().cpu().numpy()
                start += len(batch)
        return out

    @property
    def _n_features_out(self):
        return self.n_features_out_

    def __sklearn_clone__(self):
        new = super().__sklearn_clone__()
        if isinstance(getattr(self.backbone, "backbone_", None), Backbone):
            # A fitted source model is a parameter through its weights: cloning it (which
            # unfits it) would lose them, so the clone shares it (fit only reads it).
            new.backbone = self.backbone
        return new

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = []
        tags.non_deterministic = False
        return tags

    # --- persistence: parameters, not weights that can be reloaded -------------------------
    def _reloadable(self):
        return isinstance(self.backbone, str) and not (
            self.weights is not None and is_checkpoint_path(self.weights)
        )

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: never change the live object
        state.pop("_transform_", None)
        state.pop("_net", None)
        if "backbone_" in state:
            if self._reloadable():
                state["backbone_"] = None
            elif self.device_.type != "cpu":
                state["backbone_"] = copy.copy(self.backbone_)
                state["backbone_"].net = copy.deepcopy(self.backbone_.net).cpu()
            state["device_"] = None
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "backbone_" not in state:
            return
        self._restore(self.backbone_)
