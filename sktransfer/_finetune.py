"""Parameter transfer: fine-tune a pretrained backbone as a scikit-learn classifier."""

import copy
import os
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d
from skorch import NeuralNetClassifier
from skorch.callbacks import EarlyStopping
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch import nn

from ._images import ImageDataset, check_images, iter_batches, n_images
from .backbones import Backbone, load_backbone
from .backbones._optimize import fold_batchnorm
from ._core.device import device_available, resolve_device, seed_everything

# Activations of frozen stages are cached when they fit in this many bytes.
CACHE_MAX_BYTES = int(os.environ.get("SKTRANSFER_CACHE_MAX_BYTES", 2 * 1024**3))
# On a CPU the cache pass runs a copy of the frozen stages with BatchNorm folded into the
# convolutions (about 1.4x faster at 224 px) when it covers this many images: folding
# costs about as much as one pass over a few dozen.
FOLD_MIN_IMAGES = 128

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


class TransferNet(nn.Module):
    """Backbone stages followed by a new head, with frozen parts kept in eval mode.

    ``train()`` leaves the frozen stages and the norm layers of frozen groups in eval
    mode, so their BatchNorm running statistics never change and their dropout is off.
    """

    def __init__(self, trunk, head):
        super().__init__()
        self.trunk = trunk
        self.head = head

    def forward(self, x):
        return self.head(self.trunk(x))

    def train(self, mode=True):
        super().train(mode)
        if mode:
            for module in self.trunk.modules():
                own = list(module.parameters(recurse=False))
                is_norm = isinstance(module, nn.modules.batchnorm._NormBase)
                if is_norm and own and not any(p.requires_grad for p in own):
                    module.eval()
            for stage in self.trunk.children():
                if not any(p.requires_grad for p in stage.parameters()):
                    stage.eval()
        return self


def make_head(head, dropout, num_features, n_classes):
    """Build the new classification head.

    Linear for ``head=None``, an MLP with ``head`` hidden units for an int, or the module
    built by ``head(num_features, n_classes)`` for a callable.
    """
    drop = [nn.Dropout(dropout)] if dropout > 0 else []
    if head is None:
        return nn.Sequential(*drop, nn.Linear(num_features, n_classes))
    if isinstance(head, Integral):
        return nn.Sequential(
            *drop,
            nn.Linear(num_features, int(head)),
            nn.ReLU(),
            *[nn.Dropout(dropout)] * bool(drop),
            nn.Linear(int(head), n_classes),
        )
    module = head(num_features, n_classes)
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"head(num_features, n_classes) must return a torch.nn.Module; got {type(module)}."
        )
    return module


def resolve_n_frozen(n_frozen, n_groups, backbone_name):
    """Turn ``"all"``/negative counts into the number of frozen groups, or a clear error."""
    if isinstance(n_frozen, str) and n_frozen == "all":
        return n_groups
    if isinstance(n_frozen, Integral) and not isinstance(n_frozen, bool):
        if -n_groups <= n_frozen <= n_groups:
            return n_frozen if n_frozen >= 0 else n_groups + n_frozen
    raise ValueError(
        f"n_frozen must be 'all' or an integer in [-{n_groups}, {n_groups}] for backbone "
        f"{backbone_name!r}, which has {n_groups} layer groups; got {n_frozen!r}."
    )


def use_amp(device):
    """Whether to run in bfloat16 mixed precision: on CUDA devices that support it natively.

    Older GPUs (before Ampere) would emulate bfloat16 slowly; they run in float32.
    """
    if torch.device(device).type != "cuda":
        return False
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.4 has no emulation and no argument
        return torch.cuda.is_bf16_supported()


class _Net(NeuralNetClassifier):
    """skorch's classifier with bfloat16 mixed precision on CUDA and channels-last inputs.

    When pickled, the network is stored once, through skorch's device-aware path (so a
    net trained on a GPU loads on a CPU-only machine): the ``module`` parameter is the
    trained ``module_`` itself and is restored from it.
    """

    amp = False

    def infer(self, x, **fit_params):
        if torch.is_tensor(x) and x.ndim == 4:
            x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            return super().infer(x, **fit_params).float()

    def __getstate__(self):
        state = super().__getstate__()
        if self.__dict__.get("module") is self.__dict__.get("module_", False):
            state["module"] = None
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if self.__dict__.get("module") is None and "module_" in self.__dict__:
            self.module = self.module_


def _release_training_state(net):
    """Drop what only training needs, so a fitted model holds (and pickles) its weights once.

    skorch's EarlyStopping keeps a copy of the best weights (already restored) and the
    optimizer keeps its moments; the held-out data of ``predefined_split`` is not kept.
    """
    for _, callback in net.callbacks_:
        if isinstance(callback, EarlyStopping):
            callback.best_model_weights_ = None
    net.optimizer_.state.clear()
    net.train_split = None


class FineTunedClassifier(ClassifierMixin, BaseEstimator):
    """Fine-tune a pretrained backbone with a new head (parameter transfer).

    The backbone's layer groups (``n_layer_groups_``, counted from the input) below
    ``n_frozen`` stay frozen; the rest train at ``backbone_lr`` and the new head at
    ``lr``. Training runs on :mod:`skorch`. Without augmentation, the output of the
    frozen stages is the same every epoch: it is computed once per ``fit`` and only the
    trainable part runs in the epochs, which makes head-only training (and a grid
    search over ``n_frozen``) cheap on a CPU.

    Parameters
    ----------
    backbone : str, torch.nn.Module, Backbone or fitted estimator, default="efficientnet_lite0"
        The pretrained network (see :func:`sktransfer.load_backbone`). A fitted
        FineTunedClassifier transfers its fine-tuned backbone to a new task; ``clone``
        (and so a grid search) keeps such a fitted source as it is.
    weights : str, path or None, default="DEFAULT"
        Pretrained weights; None trains the same architecture from scratch.
    n_frozen : "all" or int, default="all"
        Layer groups kept frozen, counted from the input. ``"all"`` trains the head only,
        ``0`` fine-tunes everything, ``-1`` all but the last group, and so on.
    head : None, int or callable, default=None
        None: one linear layer. An int: a hidden layer of that width. A callable:
        ``head(num_features, n_classes)`` returning a module.
    dropout : float, default=0.0
        Dropout before the head's linear layers.
    max_epochs : int, default=10
        Training epochs.
    batch_size : int, default=32
        Images per step.
    lr : float, default=1e-3
        Learning rate of the new head.
    backbone_lr : float, default=None
        Learning rate of the unfrozen backbone groups; None means ``lr / 10``.
    optimizer : {"adamw", "adam", "sgd"}, default="adamw"
        The optimizer (SGD with momentum 0.9).
    weight_decay : float, default=1e-4
        Weight decay.
    augment : None, "default" or callable, default=None
        Training augmentation: None for none (the frozen prefix is then cached),
        ``"default"`` for random resized crops and horizontal flips, or a torchvision
        transform applied to each decoded image before resizing and normalisation.
    image_size : int, default=None
        Side of the square crop the network sees; None uses the backbone's own.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified, drawn with
        ``random_state``, not augmented) and stop when the validation loss has not
        improved for ``n_iter_no_change`` epochs, keeping the best weights.
    validation_fraction : float, default=0.1
        Held-out share when ``early_stopping`` is on.
    n_iter_no_change : int, default=3
        Patience of early stopping.
    class_weight : "balanced", dict or None, default=None
        Weights of the classes in the loss.
    device : str, default="auto"
        ``"auto"`` takes CUDA when present, else the CPU; or ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``. On GPUs that compute in bfloat16 (Ampere and later) training and
        prediction run in bfloat16 mixed precision.
    random_state : int, RandomState or None, default=None
        Seeds head initialisation, shuffling and augmentation: a CPU fit is reproducible.
    verbose : int, default=0
        1 prints skorch's table of epochs and a progress bar while caching.
    callbacks : list of skorch callbacks, default=None
        Passed to the skorch net, after the ones this estimator adds.
    num_workers : int, default=0
        Worker processes that decode images.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    backbone_ : Backbone
        The fine-tuned backbone (reusable: ``FineTunedClassifier(backbone=clf)``).
    net_ : skorch.NeuralNetClassifier
        The skorch net; its module is the backbone followed by the head.
    n_layer_groups_ : int
        Number of layer groups of the backbone.
    n_frozen_ : int
        Number of frozen groups, ``n_frozen`` resolved.
    n_cached_stages_ : int
        Leading backbone stages whose output was cached (0: none).
    history_ : skorch.History
        Losses (and validation scores) per epoch.

    See Also
    --------
    PretrainedFeatureExtractor : Frozen features for any scikit-learn estimator.
    sktransfer.save : Save a fitted model in a format that runs no pickle on load.

    Notes
    -----
    Frozen means frozen: frozen parameters get no gradient and the norm layers of frozen
    groups stay in eval mode, so their BatchNorm running statistics do not change either.

    The frozen-prefix cache holds the output of the leading, entirely frozen stages for
    every training image (float32); it is used when it fits in
    ``SKTRANSFER_CACHE_MAX_BYTES`` (environment variable, default 2 GiB), else every
    epoch runs the whole network. It gives the same losses as the uncached path up to
    float rounding. On a CPU, from 128 training images on, the cache pass runs a copy of
    the frozen stages with BatchNorm folded into the convolutions (checked to agree).

    After ``fit`` the model keeps its weights only: the optimizer's moments and early
    stopping's copy of the best weights are released (``fit`` always starts afresh), so
    a :mod:`joblib` file holds the network once. A model fitted on a GPU unpickles on a
    CPU-only machine.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import FineTunedClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    >>> y = ["cat", "dog"] * 4
    >>> clf = FineTunedClassifier(image_size=32, max_epochs=2, random_state=0).fit(X, y)
    >>> clf.classes_.tolist(), clf.predict_proba(X[:1]).shape
    (['cat', 'dog'], (1, 2))
    """

    _parameter_constraints: dict = {
        "backbone": [str, nn.Module, Backbone, BaseEstimator],
        "weights": [str, os.PathLike, None],
        "n_frozen": [StrOptions({"all"}), Integral],
        "head": [None, Interval(Integral, 1, None, closed="left"), callable],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "backbone_lr": [Interval(Real, 0, None, closed="left"), None],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "augment": [None, StrOptions({"default"}), "boolean", callable],
        "image_size": [Interval(Integral, 16, None, closed="left"), None],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        backbone="efficientnet_lite0",
        *,
        weights="DEFAULT",
        n_frozen="all",
        head=None,
        dropout=0.0,
        max_epochs=10,
        batch_size=32,
        lr=1e-3,
        backbone_lr=None,
        optimizer="adamw",
        weight_decay=1e-4,
        augment=None,
        image_size=None,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=3,
        class_weight=None,
        device="auto",
        random_state=None,
        verbose=0,
        callbacks=None,
        num_workers=0,
    ):
        self.backbone = backbone
        self.weights = weights
        self.n_frozen = n_frozen
        self.head = head
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.backbone_lr = backbone_lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.augment = augment
        self.image_size = image_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.class_weight = class_weight
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.num_workers = num_workers

    # --- fit -----------------------------------------------------------------------------
    def _check_targets(self, X, y):
        if y is None:
            raise ValueError(
                "FineTunedClassifier requires y to be passed, but the target y is None."
            )
        check_images(X)  # empty or malformed input fails before anything else
        y = column_or_1d(y, warn=True)
        if len(y) != n_images(X):
            raise ValueError(
                f"X and y have different lengths: {n_images(X)} images, {len(y)} labels."
            )
        if y.dtype.kind == "f" and np.isnan(y).any():
            raise ValueError("y contains NaN: every image needs a class label.")
        if y.dtype == object and any(v is None or v != v for v in y):
            raise ValueError("y contains missing labels (None or NaN).")
        check_classification_targets(y)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(
                "FineTunedClassifier needs at least 2 classes; "
                f"y has one: {classes.tolist()[0]!r}."
            )
        return y

    def fit(self, X, y):
        """Fine-tune on images ``X`` with labels ``y``.

        Parameters
        ----------
        X : image input
            File paths, image arrays or PIL images.
        y : array-like of shape (n_samples,)
            Class labels of any type.

        Returns
        -------
        self : FineTunedClassifier
        """
        self._validate_params()
        y = self._check_targets(X, y)
        device = resolve_device(self.device)
        backbone = load_backbone(self.backbone, self.weights)
        preprocessing = backbone.preprocessing.with_image_size(self.image_size)
        backbone.preprocessing = preprocessing
        images = check_images(X, draft_size=preprocessing.resize_size)
        n_groups = backbone.n_layer_groups
        n_frozen = resolve_n_frozen(self.n_frozen, n_groups, backbone.name)

        encoder = LabelEncoder().fit(y)
        y_enc = encoder.transform(y).astype(np.int64)
        valid_idx = None
        if self.early_stopping:
            train_idx, valid_idx = self._split(y_enc)
        seed_everything(self.random_state)

        net = backbone.net.to(device)
        if device.type == "cpu":
            net = net.to(memory_format=torch.channels_last)
        net.requires_grad_(True)
        frozen = {p for _, params in backbone.layer_groups[:n_frozen] for p in params}
        for name, param in net.named_parameters():
            param.requires_grad_(name not in frozen)
        stages = list(net.children())
        n_cached = 0
        if self.augment in (None, False):
            for stage in stages:
                if any(p.requires_grad for p in stage.parameters()):
                    break
                n_cached += 1
        head = make_head(self.head, self.dropout, backbone.num_features, len(encoder.classes_))

        targets = torch.from_numpy(y_enc)
        cached = None
        if n_cached:
            cached = self._cache(images, net[:n_cached], preprocessing, device)
            if cached is None:
                n_cached = 0
        if cached is not None:
            inputs, valid = cached, None
            if valid_idx is not None:
                inputs = cached[torch.from_numpy(train_idx)]
                valid = Dataset(cached[torch.from_numpy(valid_idx)], targets[valid_idx])
        else:
            train_transform = preprocessing.train_transform(self.augment)
            inputs, valid = ImageDataset(images, train_transform, targets), None
            if valid_idx is not None:
                inputs = ImageDataset(images.take(train_idx), train_transform, targets[train_idx])
                eval_transform = preprocessing.eval_transform()  # validation sees no augmentation
                valid = ImageDataset(images.take(valid_idx), eval_transform, targets[valid_idx])
        if valid_idx is not None:
            targets = targets[train_idx]
        module = TransferNet(net[n_cached:], head).to(device)

        class_weights = None
        if self.class_weight is not None:
            class_weights = compute_class_weight(self.class_weight, classes=encoder.classes_, y=y)
        train_split = predefined_split(valid) if valid is not None else None
        skorch_net = self._make_skorch_net(module, device, class_weights, train_split)
        skorch_net.fit(inputs, targets)
        _release_training_state(skorch_net)

        full = TransferNet(net, head).eval()
        skorch_net.module = skorch_net.module_ = full  # predictions run the whole network
        backbone.head = head  # the fine-tuned network's own head
        self.net_ = skorch_net
        self.backbone_ = backbone
        self.classes_ = encoder.classes_
        self.n_layer_groups_ = n_groups
        self.n_frozen_ = n_frozen
        self.n_cached_stages_ = n_cached
        self.device_ = device
        self._eval_transform = preprocessing.eval_transform()
        return self

    def _split(self, y_enc):
        """Stratified train/validation indices for early stopping, seeded by random_state."""
        indices = np.arange(len(y_enc))
        try:
            return train_test_split(
                indices,
                test_size=self.validation_fraction,
                stratify=y_enc,
                random_state=self.random_state,
            )
        except ValueError as exc:
            raise ValueError(
                f"early_stopping cannot hold out a stratified validation_fraction="
                f"{self.validation_fraction} of {len(y_enc)} images with "
                f"{len(np.unique(y_enc))} classes ({exc}). Raise validation_fraction, add "
                "images, or turn early_stopping off."
            ) from None

    def _restore(self, backbone, classes, n_frozen, state):
        """Set the fitted state from saved weights (used by :func:`sktransfer.load`)."""
        head = make_head(self.head, self.dropout, backbone.num_features, len(classes))
        full = TransferNet(backbone.net, head)
        full.load_state_dict(state)
        device = resolve_device(self.device if device_available(self.device) else "cpu")
        full = full.to(device).eval()
        if device.type == "cpu":
            full = full.to(memory_format=torch.channels_last)
        net = self._make_skorch_net(full, device, None)
        net.initialize()  # module_ is `full` itself
        backbone.head = head
        self.net_ = net
        self.backbone_ = backbone
        self.classes_ = classes
        self.n_layer_groups_ = backbone.n_layer_groups
        self.n_frozen_ = n_frozen
        self.n_cached_stages_ = 0
        self.device_ = device
        self._eval_transform = backbone.preprocessing.eval_transform()

    def _cache(self, images, prefix, preprocessing, device):
        """Run the frozen stages once over the training images; None if too big."""
        prefix.eval()
        size = preprocessing.crop_size
        amp = use_amp(device)  # as the uncached path runs the frozen stages
        with torch.inference_mode():
            probe = prefix(torch.zeros(1, 3, size, size, device=device)).float()
        if probe.numel() * probe.element_size() * len(images) > CACHE_MAX_BYTES:
            return None
        if device.type == "cpu" and len(images) >= FOLD_MIN_IMAGES:
            # a folded copy, checked against the original on random input drawn from a
            # forked RNG (the training's random stream stays that of the uncached path)
            with torch.random.fork_rng(devices=[]):
                prefix = fold_batchnorm(prefix, size).to(memory_format=torch.channels_last)
        out = torch.empty((len(images), *probe.shape[1:]), dtype=probe.dtype)
        start = 0
        batches = iter_batches(
            images,
            preprocessing.eval_transform(),
            self.batch_size,
            num_workers=self.num_workers,
            progress=self.verbose > 0,
            desc="frozen layers",
        )
        with (
            torch.inference_mode(),
            torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp),
        ):
            for batch in batches:
                x = batch.to(device).contiguous(memory_format=torch.channels_last)
                out[start : start + len(batch)] = prefix(x).float().cpu()
                start += len(batch)
        return out  # allocated outside inference mode, so training can use it

    def _make_skorch_net(self, module, device, class_weights, train_split=None):
        callbacks = []
        if self.early_stopping:
            callbacks.append(
                (
                    "early_stopping",
                    EarlyStopping(patience=self.n_iter_no_change, load_best=True),
                )
            )
        callbacks += list(self.callbacks or [])
        criterion_kwargs = {}
        if class_weights is not None:
            criterion_kwargs["criterion__weight"] = torch.tensor(
                class_weights, dtype=torch.float32
            )
        backbone_lr = self.lr / 10 if self.backbone_lr is None else self.backbone_lr
        optimizer_kwargs = {"optimizer__weight_decay": self.weight_decay}
        if self.optimizer == "sgd":
            optimizer_kwargs["optimizer__momentum"] = 0.9
        net = _Net(
            module,
            criterion=nn.CrossEntropyLoss,
            optimizer=OPTIMIZERS[self.optimizer],
            optimizer__param_groups=[("trunk.*", {"lr": backbone_lr})],
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            iterator_train__shuffle=True,
            iterator_train__num_workers=self.num_workers,
            iterator_valid__num_workers=self.num_workers,
            train_split=train_split,
            callbacks=callbacks or None,
            device=device,
            verbose=self.verbose,
            **criterion_kwargs,
            **optimizer_kwargs,
        )
        net.amp = use_amp(device)
        return net

    # --- predict -------------------------------------------------------------------------
    def predict_proba(self, X):
        """Class probabilities of each image.

        Parameters
        ----------
        X : image input

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        check_is_fitted(self)
        module = self.net_.module_.eval()
        images = check_images(X, draft_size=self.backbone_.preprocessing.resize_size)
        out = []
        batches = iter_batches(
            images, self._eval_transform, self.batch_size, num_workers=self.num_workers
        )
        with torch.inference_mode():
            for batch in batches:
                x = batch.to(self.device_).contiguous(memory_format=torch.channels_last)
                amp = self.net_.amp
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    logits = module(x)
                out.append(logits.float().softmax(dim=1).cpu().numpy())
        proba = np.concatenate(out).astype(np.float64)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X):
        """Predicted class of each image.

        Parameters
        ----------
        X : image input

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    @property
    def history_(self):
        """Per-epoch losses and scores (a :class:`skorch.history.History`)."""
        check_is_fitted(self)
        return self.net_.history

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
        tags.non_deterministic = True  # bit-identical only on the CPU with random_state
        return tags

    # --- persistence ---------------------------------------------------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_eval_transform", None)
        if "backbone_" in state:
            # trunk and head live in net_.module_: store them once, where skorch maps
            # CUDA tensors to the CPU on a machine without a GPU
            state["backbone_"] = copy.copy(self.backbone_)
            state["backbone_"].net = state["backbone_"].head = None
            state["device_"] = None
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "backbone_" in state:
            self.backbone_.net = self.net_.module_.trunk
            self.backbone_.head = self.net_.module_.head
            self.device_ = torch.device(self.net_.device)
            self.net_.amp = use_amp(self.device_)  # fitted on a GPU, loaded on a CPU
            self._eval_transform = self.backbone_.preprocessing.eval_transform()
