"""Parameter transfer: fine-tune a pretrained backbone as a scikit-learn classifier."""

from dataclasses import replace
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d
from skorch.dataset import Dataset

from .._base import TransferEstimator
from .._core.activations import shared_store_bytes
from .._core.device import resolve_device, seed_everything
from .._core.inference import run_batches, take_rows
from .._parameters import constraints
from ..backbones import DEFAULT_BACKBONE, frozen_stage_count
from ._cache import FrozenStages, frozen_prefix_outputs, row_batches
from ._network import TransferNet, make_head, to_device
from ._skorch import OPTIMIZERS, build_net, release_training_state


class FineTunedClassifier(ClassifierMixin, TransferEstimator):
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
        The pretrained network (see :func:`sktransfer.load_backbone`): an image network,
        or a text encoder (``"all-MiniLM-L6-v2"``, bundled, or ``"hf:<name>"``), whose
        layer groups are its embeddings and each encoder layer. Transformers want a small
        learning rate for their body: with ``n_frozen`` other than ``"all"`` on text, set
        ``backbone_lr`` between 1e-5 and 5e-5. A fitted
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
        Inputs per step.
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
        transform applied to each decoded image before resizing and normalisation. The
        image reaches it as a ``(3, H, W)`` tensor (uint8, or float32 in [0, 1] for
        high-bit-depth files), as torchvision's v2 transforms take it.
    image_size : int, default=None
        Image backbones: side of the square crop the network sees; None uses the
        backbone's own.
    max_length : int, default=None
        Text backbones: tokens per text (longer texts are truncated, with a warning that
        counts them); None uses the model's own (256 for all-MiniLM-L6-v2).
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
        1 prints skorch's table of epochs and shows progress bars while caching and
        predicting.
    callbacks : list of skorch callbacks, default=None
        Passed to the skorch net, after the ones this estimator adds.
    num_workers : int, default=0
        Worker processes that decode images.
    cache_size : float, default=2048
        Megabytes the frozen-prefix cache may hold (the float32 output of the frozen
        stages for every training input). When the cache would be larger, or with
        ``cache_size=0``, every epoch runs the whole network instead (the same losses up
        to float rounding, and slower).
    memory : str, path-like, joblib.Memory or None, default=None
        A folder (or a :class:`joblib.Memory`) where frozen-stage outputs are also kept
        on disk, for other processes (a search with ``n_jobs``, a later session), as
        :class:`~sklearn.pipeline.Pipeline`'s ``memory`` keeps fitted transformers.
        None keeps nothing on disk. Delete the folder to free the space.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    backbone_ : Backbone
        The fine-tuned backbone (reusable: ``FineTunedClassifier(backbone=clf)``). A view:
        its ``net`` is the trunk inside ``net_``, which owns the weights.
    net_ : skorch.NeuralNetClassifier
        The skorch net; its module (``net_.module_``) is the backbone's trunk followed by
        the new head.
    n_layer_groups_ : int
        Number of layer groups of the backbone.
    n_frozen_ : int
        Number of frozen groups, ``n_frozen`` resolved.
    n_cached_stages_ : int
        Leading backbone stages whose output was cached (0: none).
    history_ : skorch.History
        Losses (and validation scores) per epoch.
    device_ : torch.device
        Where the network runs (the CPU when a model fitted on a GPU is loaded on a
        machine without one).

    See Also
    --------
    PretrainedFeatureExtractor : Frozen features for any scikit-learn estimator.
    sktransfer.save : Save a fitted model in a format that runs no pickle on load.

    Notes
    -----
    Frozen means frozen: frozen parameters get no gradient and the norm layers of frozen
    groups stay in eval mode, so their BatchNorm running statistics do not change either.

    The frozen-prefix cache holds the output of the leading, entirely frozen stages for
    every training image (float32); it is used when it fits in ``cache_size``, else every
    epoch runs the whole network. It gives the same losses as the uncached path up to
    float rounding. On a CPU, from 128 training images on, the cache pass runs a copy of
    the frozen stages with BatchNorm folded into the convolutions (checked to agree).

    The outputs are also shared between fits (``memory`` and the process's store, whose size is the
    ``shared_cache_size`` of :func:`sktransfer.set_config`), keyed
    by each input's content (a file's path, size and modification time; an array's or
    a text's bytes) and by the weights of the stages that computed them. A candidate of
    a search that freezes fewer groups continues from a shallower stage output stored by
    an earlier one: the deepest frozen output is stored and, within half of
    the store, the shallower outputs where a fit that freezes fewer groups
    would start (those no larger than an input image). Outputs that come in several
    parts (a text encoder's token states, whose length follows the batch) are not
    shared. A stored output is the one computed first, perhaps in another batch: it may
    differ from a fresh one in the last bits, as results on different hardware do.

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
        **TransferEstimator._parameter_constraints,
        "n_frozen": [StrOptions({"all"}), Integral],
        "head": [None, Interval(Integral, 1, None, closed="left"), callable],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "backbone_lr": [Interval(Real, 0, None, closed="left"), None],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "augment": [None, StrOptions({"default"}), "boolean", callable],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        **constraints("random_state", "verbose", "memory"),
        "callbacks": [list, None],
        "cache_size": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self, backbone=DEFAULT_BACKBONE, *, weights="DEFAULT", n_frozen="all", head=None,
        dropout=0.0, max_epochs=10, batch_size=32, lr=1e-3, backbone_lr=None,
        optimizer="adamw", weight_decay=1e-4, augment=None, image_size=None, max_length=None,
        early_stopping=False, validation_fraction=0.1, n_iter_no_change=3, class_weight=None,
        device="auto", random_state=None, verbose=0, callbacks=None, num_workers=0,
        cache_size=2048, memory=None,
    ):  # fmt: skip
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
        self.max_length = max_length
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.class_weight = class_weight
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.num_workers = num_workers
        self.cache_size = cache_size
        self.memory = memory

    def fit(self, X, y):
        """Fine-tune on inputs ``X`` (images or texts) with labels ``y``.

        Parameters
        ----------
        X : images or texts
            Image file paths, image arrays or PIL images; or texts, for a text backbone.
        y : array-like of shape (n_samples,)
            Class labels of any type.

        Returns
        -------
        self : FineTunedClassifier
        """
        self._validate_params()
        if y is None:
            raise ValueError(
                "FineTunedClassifier requires y to be passed, but the target y is None."
            )
        backbone = self._load_backbone()
        inputs = backbone.preprocessing.check(X)
        encoder = LabelEncoder().fit(_check_targets(y, len(inputs)))
        y_enc = encoder.transform(column_or_1d(y)).astype(np.int64)
        n_frozen = backbone.freeze(self.n_frozen)
        device = resolve_device(self.device)
        split = self._validation_split(y_enc) if self.early_stopping else None
        seed_everything(self.random_state)
        head = make_head(self.head, self.dropout, backbone.num_features, len(encoder.classes_))
        module = to_device(TransferNet(backbone.net, head), device)
        frozen = _probe_frozen(module.trunk, backbone, n_frozen, device)
        train, valid, n_cached = self._datasets(
            backbone, module, inputs, y_enc, split, device, frozen
        )
        weights = self._class_weights(encoder.classes_, y)
        n_classes = len(encoder.classes_)
        self.net_ = build_net(self, module, device, n_classes, class_weights=weights, valid=valid)
        with module.starting_at(n_cached):
            self.net_.fit(train, None)
        release_training_state(self.net_)
        self._set_fitted(backbone, encoder.classes_, n_frozen, n_cached, device, frozen=frozen)
        return self

    def _validation_split(self, y_enc):
        """Stratified train/validation indices for early stopping, seeded by random_state."""
        try:
            return train_test_split(
                np.arange(len(y_enc)),
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

    def _datasets(self, backbone, module, inputs, y_enc, split, device, frozen):
        """Training and validation data: cached frozen-prefix outputs, or the inputs.

        Returns ``(train, valid, n_cached)``; ``valid`` is None without early stopping and
        ``n_cached`` is the number of leading stages whose output the data holds.
        """
        preprocessing, targets = backbone.preprocessing, torch.from_numpy(y_enc)
        cached = None
        if frozen is not None and self.augment in (None, False):
            cached = self._frozen_outputs(module.trunk, frozen, inputs, preprocessing, device)
        n_cached = 0 if cached is None else len(frozen)

        def part(indices, augment):
            rows = targets if indices is None else targets[indices]
            if cached is not None:
                return Dataset(cached if indices is None else take_rows(cached, indices), rows)
            subset = inputs if indices is None else inputs.take(indices)
            return preprocessing.dataset(subset, rows, augment=augment)

        if split is None:
            return part(None, self.augment), None, n_cached
        train_idx, valid_idx = (torch.from_numpy(i) for i in split)
        return part(train_idx, self.augment), part(valid_idx, None), n_cached

    def _frozen_outputs(self, trunk, frozen, inputs, preprocessing, device, for_prediction=False):
        """Return the output of the ``frozen`` stages (shared if it can be), or None."""

        def batches_of(subset):
            progress, desc = self.verbose > 0, "predict" if for_prediction else "frozen layers"
            return self._batches(
                subset, preprocessing, progress=progress, desc=desc, one_shape=not for_prediction
            )

        return frozen_prefix_outputs(
            trunk,
            frozen,
            inputs,
            batches_of,
            preprocessing,
            device,
            max_bytes=int(self.cache_size * 2**20),
            batch_size=self.batch_size,
            memory=self.memory,
            for_prediction=for_prediction,
        )

    def _class_weights(self, classes, y):
        if self.class_weight is None:
            return None
        return compute_class_weight(self.class_weight, classes=classes, y=column_or_1d(y))

    def _set_fitted(self, backbone, classes, n_frozen, n_cached, device, *, frozen=None):
        """Set every fitted attribute but ``net_`` (after fit and after loading).

        The trunk's weights live in ``net_.module_`` only; ``_backbone`` keeps the rest of
        the backbone's record, from which :attr:`backbone_` is a view. ``_frozen_stages``
        describes the frozen stages for the shared cache (probed here unless given).
        """
        if frozen is None:
            frozen = _probe_frozen(self.net_.module_.trunk, backbone, n_frozen, device)
        self._frozen_stages = frozen
        trained = n_frozen < backbone.n_layer_groups
        changed = {"weights": "fine-tuned", "origin": None} if trained else {}
        self._backbone = replace(backbone, net=None, head=None, **changed)
        self.classes_ = classes
        self.n_layer_groups_ = backbone.n_layer_groups
        self.n_frozen_ = n_frozen
        self.n_cached_stages_ = n_cached
        self.device_ = device

    @property
    def backbone_(self):
        """The fine-tuned :class:`~sktransfer.Backbone`: a view of the trunk in ``net_``."""
        check_is_fitted(self)  # NotFittedError is an AttributeError too
        return replace(self._backbone, net=self.net_.module_.trunk)

    # --- predict -------------------------------------------------------------------------
    def predict_proba(self, X):
        """Class probabilities of each input.

        Parameters
        ----------
        X : images or texts

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        check_is_fitted(self)
        preprocessing = self._backbone.preprocessing
        inputs = preprocessing.check(X)
        module = self.net_.module_.eval()
        logits, frozen = None, self._frozen_stages
        if frozen is not None and (shared_store_bytes() or self.memory is not None):
            rows = self._frozen_outputs(
                module.trunk, frozen, inputs, preprocessing, self.device_, for_prediction=True
            )
            if rows is not None:
                with module.starting_at(len(frozen)):
                    batches = row_batches(rows, self.batch_size)
                    logits = run_batches(module, batches, len(inputs), self.device_)
        if logits is None:
            batches = self._batches(
                inputs, preprocessing, progress=self.verbose > 0, desc="predict"
            )
            logits = run_batches(module, batches, len(inputs), self.device_)
        proba = logits.softmax(dim=1).numpy().astype(np.float64)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X):
        """Predicted class of each input.

        Parameters
        ----------
        X : images or texts

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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True  # bit-identical only on the CPU with random_state
        return tags

    def __setstate__(self, state):
        super().__setstate__(state)
        if "net_" in state:  # skorch mapped a GPU-fitted net to this machine's device
            self.device_ = torch.device(self.net_.device)


def _probe_frozen(trunk, backbone, n_frozen, device):
    """Describe the leading stages of ``trunk`` that ``n_frozen`` groups freeze (None: none)."""
    n_stages = frozen_stage_count(trunk, backbone.layer_groups, n_frozen)
    if not n_stages:
        return None
    return FrozenStages.probe(trunk, n_stages, backbone.preprocessing, device)


def _check_targets(y, n_samples):
    """Validate classification labels for ``n_samples`` inputs; return them as 1-D."""
    y = column_or_1d(y, warn=True)
    if len(y) != n_samples:
        raise ValueError(f"X and y have different lengths: {n_samples} inputs, {len(y)} labels.")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError("y contains NaN: every input needs a class label.")
    if y.dtype == object and any(v is None or v != v for v in y):
        raise ValueError("y contains missing labels (None or NaN).")
    check_classification_targets(y)
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(
            f"FineTunedClassifier needs at least 2 classes; y has one: {classes.tolist()[0]!r}."
        )
    return y
