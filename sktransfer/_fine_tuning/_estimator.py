"""Parameter transfer: fine-tune a pretrained backbone as a scikit-learn classifier or regressor.

:class:`FineTunedClassifier` and :class:`FineTunedRegressor` share everything but their
kind of target, which a task object (:mod:`._tasks`) owns: reading ``y``, the head's
width, the loss, and turning outputs into predictions.
"""

import math
from dataclasses import dataclass, replace
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch.dataset import Dataset

from .._base import TransferEstimator
from .._core.activations import shared_store_bytes
from .._core.device import resolve_device, seed_everything
from .._core.inference import run_batches, take_rows
from .._parameters import constraints
from ..backbones import DEFAULT_BACKBONE, frozen_stage_count
from ._auto import Recipe, choose_n_frozen, is_auto
from ._cache import (
    FrozenStages,
    ThenTrainable,
    frozen_prefix_outputs,
    frozen_segment,
    row_batches,
)
from ._docs import fill
from ._lr_find import range_test, valley
from ._network import TransferNet, make_head, to_device
from ._probe import copy_into_head, last_layer_inputs, probed_layer
from ._schedule import SCHEDULES, training_epochs
from ._skorch import OPTIMIZERS, build_net, release_training_state
from ._tasks import Regression, check_sample_weight, classification_task, pack
from ._views import VIEWS, ViewsForward, check_views, n_views, require_image_batches


@dataclass
class _Run:
    """What training starts from: the network, its data and what was resolved for it."""

    backbone: object
    task: object
    module: TransferNet
    train: object
    valid: object
    n_frozen: int
    n_cached: int
    frozen: object
    device: torch.device
    head_penalty: float

    def net(self, estimator, **kwargs):
        """Return the skorch net that trains :attr:`module` (see :func:`build_net`)."""
        return build_net(
            estimator,
            self.module,
            self.device,
            self.task,
            valid=self.valid,
            head_penalty=self.head_penalty,
            unfrozen_groups=self.backbone.layer_groups[self.n_frozen :],
            **kwargs,
        )


class _FineTuned(TransferEstimator):
    """The fine-tuning recipe every kind of target shares (private base).

    A subclass says which task reads its ``y`` (:meth:`_make_task`) and turns the
    network's outputs into its predictions.
    """

    _parameter_constraints: dict = {
        **TransferEstimator._parameter_constraints,
        "n_frozen": [StrOptions({"all", "auto"}), Integral],
        "head": [None, Interval(Integral, 1, None, closed="left"), callable],
        "head_init": [StrOptions({"probe", "zeros"})],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "lr_schedule": [StrOptions(set(SCHEDULES))],
        "backbone_lr": [Interval(Real, 0, None, closed="left"), None],
        "lr_decay": [None, Interval(Real, 0, 1, closed="right")],
        "unfreeze_after": [Interval(Integral, 0, None, closed="left")],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "augment": [None, StrOptions({"default"}), "boolean", callable],
        "tta": ["boolean", Interval(Integral, 1, len(VIEWS), closed="both")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        **constraints("random_state", "verbose", "memory"),
        "callbacks": [list, None],
        "cache_size": [Interval(Real, 0, None, closed="left")],
    }
    # the parameters every fine-tuned estimator has, set by this class's __init__
    _shared = (
        "backbone", "weights", "n_frozen", "head", "head_init", "dropout", "max_epochs",
        "batch_size", "lr", "lr_schedule", "backbone_lr", "lr_decay", "unfreeze_after",
        "optimizer", "weight_decay", "augment", "tta", "image_size", "max_length",
        "early_stopping", "validation_fraction", "n_iter_no_change", "device", "random_state",
        "verbose", "callbacks", "num_workers", "cache_size", "memory",
    )  # fmt: skip

    def __init__(self, **params):
        for name in self._shared:
            setattr(self, name, params[name])

    def fit(self, X, y, sample_weight=None):
        """Fine-tune on inputs ``X`` (images or texts) with targets ``y``.

        Parameters
        ----------
        X : images or texts
            Image file paths, image arrays or PIL images; or texts, for a text backbone.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The targets (see the class's description of what ``y`` may be).
        sample_weight : array-like of shape (n_samples,), default=None
            Each row's weight in the loss (multiplied by the class weight, if any); None
            weighs every row 1. Integer weights train as that many copies of the row would.

        Returns
        -------
        self : estimator
        """
        self._validate_params()
        self._require_y(y)
        if is_auto(self.n_frozen):
            recipe = choose_n_frozen(self, X, y, sample_weight)
        else:
            recipe = Recipe.given(self.n_frozen)
        run = self._prepare(X, y, sample_weight, recipe.n_frozen)
        epochs = training_epochs(self.max_epochs, len(run.train), self.batch_size)
        steps = epochs * math.ceil(len(run.train) / self.batch_size)
        self.net_ = run.net(self, max_epochs=epochs, total_steps=steps)
        with run.module.starting_at(run.n_cached):
            self.net_.fit(run.train, None)
        release_training_state(self.net_)
        self._set_fitted(
            run.backbone, run.task, run.n_frozen, run.n_cached, run.device, frozen=run.frozen,
            recipe=recipe,
        )  # fmt: skip
        return self

    def find_lr(self, X, y, sample_weight=None, *, start_lr=1e-7, end_lr=10.0, num_it=100):
        """Find a learning rate by a range test (fastai's ``lr_find``); fit nothing.

        From the start ``fit`` would train from (the same network, frozen groups, head
        start and data), one optimiser step per batch at a rate that grows exponentially
        from ``start_lr`` to ``end_lr``, recording the loss, until it diverges (4 times
        its lowest). The head's rate is the one tested; the unfrozen groups' rates keep
        their ratios to it (``backbone_lr / lr``, ``lr_decay``). ``lr_schedule`` and
        ``unfreeze_after`` do not apply; augmentation, mixup and the probe's penalty do.
        With the frozen-prefix cache (no augmentation), the frozen stages run once and
        the steps cost what head-only training costs; their output stays in the shared
        store, for the ``fit`` that follows. With ``n_frozen="auto"`` (the default) it
        tests the head alone (``"all"``), the climb's first candidate: every candidate's
        head trains at ``lr``. The estimator is left as it was: not fitted, its
        parameters unchanged (set ``lr`` yourself).

        Parameters
        ----------
        X : images or texts
            The training inputs, as ``fit`` takes them.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Each row's weight in the loss.
        start_lr, end_lr : float, default=1e-7 and 10.0
            The first and the last rate of the head.
        num_it : int, default=100
            Optimiser steps (batches, over as many epochs as it takes), unless the loss
            diverges before.

        Returns
        -------
        result : :class:`~sklearn.utils.Bunch`
            ``rates`` and ``losses`` (ndarrays: the head's rate and the smoothed
            training loss at each step), and ``suggestion``, the rate at fastai's
            *valley*: within the longest stretch where the loss keeps falling.

        Examples
        --------
        >>> import numpy as np
        >>> from sktransfer import FineTunedClassifier
        >>> X = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
        >>> clf = FineTunedClassifier(image_size=32, batch_size=4, random_state=0)
        >>> found = clf.find_lr(X, ["cat", "dog"] * 4, num_it=20)
        >>> len(found.rates) == len(found.losses) <= 20, hasattr(clf, "net_")
        (True, False)
        """
        self._validate_params()
        _check_range(start_lr, end_lr, num_it)
        n_frozen = "all" if is_auto(self.n_frozen) else self.n_frozen
        run = self._prepare(X, y, sample_weight, n_frozen)
        net = run.net(self, max_epochs=1)
        with run.module.starting_at(run.n_cached):
            rates, losses = range_test(net, run.train, start_lr, end_lr, num_it)
        return Bunch(rates=rates, losses=losses, suggestion=valley(rates, losses))

    def _require_y(self, y):
        """Refuse a missing ``y`` as scikit-learn's estimators do (before any search)."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )

    def _prepare(self, X, y, sample_weight, n_frozen):
        """Load, freeze and start the network and make the data, as training needs them.

        Everything ``fit`` does before skorch trains (and :meth:`find_lr` too), with
        ``n_frozen`` groups frozen ("all" or an integer: ``"auto"`` resolved); sets no
        attribute of the estimator. Returns a :class:`_Run`.
        """
        self._require_y(y)
        backbone = self._load_backbone()
        self._check_image_tools(backbone.preprocessing)
        inputs = backbone.preprocessing.check(X)
        task = self._make_task(y)
        encoded, weights = task.fit(
            y,
            len(inputs),
            getattr(self, "class_weight", None),
            check_sample_weight(sample_weight, len(inputs)),
        )
        targets = pack(encoded, weights)
        n_frozen = backbone.freeze(n_frozen)
        device = resolve_device(self.device)
        split = self._validation_split(encoded, task) if self.early_stopping else None
        seed_everything(self.random_state)
        head = make_head(self.head, self.dropout, backbone.num_features, task.n_outputs)
        module = to_device(TransferNet(backbone.net, head), device)
        frozen = _probe_frozen(module.trunk, backbone, n_frozen, device)
        train, valid, cached = self._datasets(
            backbone, module, inputs, targets, split, device, frozen
        )
        penalty = 0.0
        if self.head_init == "probe":
            rows = None if split is None else split[0]
            data = (inputs, backbone.preprocessing, cached, frozen)
            penalty = self._start_head(module, task, data, rows, (encoded, weights), device)
        n_cached = 0 if cached is None else len(frozen)
        return _Run(
            backbone, task, module, train, valid, n_frozen, n_cached, frozen, device, penalty
        )

    def _check_image_tools(self, preprocessing):
        """Refuse the tools that only images take (``tta``, ``mixup``, ``cutmix``) for texts."""
        check_views(self.tta, preprocessing)
        if self._mixes():
            require_image_batches(
                f"mixup={self.mixup!r}, cutmix={self.cutmix!r}",
                "blends images",
                preprocessing,
                "mixup=0.0 and cutmix=0.0",
            )

    def _mixes(self):
        """Whether training batches are mixed (a classifier's ``mixup`` or ``cutmix``)."""
        return getattr(self, "mixup", 0) > 0 or getattr(self, "cutmix", 0) > 0

    def _validation_split(self, encoded, task):
        """Train/validation indices for early stopping (stratified for single labels)."""
        n = len(encoded)
        try:
            return train_test_split(
                np.arange(n),
                test_size=self.validation_fraction,
                stratify=encoded if task.stratified else None,
                random_state=self.random_state,
            )
        except ValueError as exc:
            raise ValueError(
                f"early_stopping cannot hold out a validation_fraction="
                f"{self.validation_fraction} of {n} inputs ({exc}). Raise "
                "validation_fraction, add inputs, or turn early_stopping off."
            ) from None

    def _datasets(self, backbone, module, inputs, targets, split, device, frozen):
        """Training and validation data: cached frozen-prefix outputs, or the inputs.

        Returns ``(train, valid, cached)``; ``valid`` is None without early stopping and
        ``cached`` the output of the frozen stages for every input (None: not cached).
        """
        preprocessing = backbone.preprocessing
        cached = None
        if frozen is not None and self.augment in (None, False) and not self._mixes():
            cached = self._frozen_outputs(module.trunk, frozen, inputs, preprocessing, device)

        def part(indices, augment):
            rows = targets if indices is None else targets[indices]
            if cached is not None:
                return Dataset(cached if indices is None else take_rows(cached, indices), rows)
            subset = inputs if indices is None else inputs.take(indices)
            return preprocessing.dataset(subset, rows, augment=augment)

        if split is None:
            return part(None, self.augment), None, cached
        train_idx, valid_idx = (torch.from_numpy(i) for i in split)
        return part(train_idx, self.augment), part(valid_idx, None), cached

    def _start_head(self, module, task, data, rows, targets, device):
        """Fit the head's last layer on what reaches it (``head_init="probe"``).

        ``rows`` are the training rows (None: all), ``targets`` the encoded targets and
        row weights of every input. A head the probe cannot start keeps its own start.
        Returns the probe's L2 penalty, which training keeps (0: no probe).
        """
        layer = probed_layer(module.head)
        if layer is None:
            return 0.0
        features = self._probe_features(module, data, rows, device)
        encoded, weights = (a if rows is None else a[rows] for a in targets)
        start = task.probe(features, encoded, weights)
        if start is None:
            return 0.0
        weight, bias, penalty = start
        copy_into_head(layer, weight, bias)
        return penalty

    def _probe_features(self, module, data, rows, device):
        """Return what reaches the head's last layer for the training ``rows`` (None: all).

        From the frozen-prefix cache when training has one; else from the frozen stages'
        output computed for this pass when it fits in ``cache_size``; else from a pass
        of the whole network. Unaugmented, in eval mode.
        """
        inputs, preprocessing, cached, frozen = data
        subset = inputs if rows is None else inputs.take(rows)
        if cached is None and frozen is not None:  # not cached for training: for this pass
            cached = self._frozen_outputs(module.trunk, frozen, subset, preprocessing, device)
        elif cached is not None and rows is not None:
            cached = take_rows(cached, torch.from_numpy(rows))
        if cached is None:
            batches = self._batches(subset, preprocessing)
            return last_layer_inputs(module, 0, batches, len(subset), device)
        batches = row_batches(cached, self.batch_size)
        return last_layer_inputs(module, len(frozen), batches, len(subset), device)

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

    def _set_fitted(self, backbone, task, n_frozen, n_cached, device, *, frozen=None, recipe=None):
        """Set every fitted attribute but ``net_`` (after fit and after loading).

        The trunk's weights live in ``net_.module_`` only; ``_backbone`` keeps the rest of
        the backbone's record, from which :attr:`backbone_` is a view. ``_frozen_stages``
        describes the frozen stages for the shared cache (probed here unless given).
        ``recipe`` is how ``n_frozen`` was chosen (None: the parameter, as given).
        """
        recipe = Recipe.given(self.n_frozen) if recipe is None else recipe
        self.best_recipe_ = recipe.best
        self.recipe_results_ = recipe.results
        if frozen is None:
            frozen = _probe_frozen(self.net_.module_.trunk, backbone, n_frozen, device)
        self._frozen_stages = frozen
        trained = n_frozen < backbone.n_layer_groups
        changed = {"weights": "fine-tuned", "origin": None} if trained else {}
        self._backbone = replace(backbone, net=None, head=None, **changed)
        self._task = task
        self.n_layer_groups_ = backbone.n_layer_groups
        self.n_frozen_ = n_frozen
        self.n_cached_stages_ = n_cached
        self.device_ = device

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_task")

    @property
    def backbone_(self):
        """The fine-tuned :class:`~sktransfer.Backbone`: a view of the trunk in ``net_``."""
        check_is_fitted(self)  # NotFittedError is an AttributeError too
        return replace(self._backbone, net=self.net_.module_.trunk)

    def _outputs(self, X):
        """Return the head's raw outputs for ``X`` (float32, on the CPU).

        From the shared store's frozen-stage outputs when they are there. With ``tta``,
        outputs whose predictions are the mean of the views' (the task averages them).
        """
        check_is_fitted(self)
        preprocessing = self._backbone.preprocessing
        check_views(self.tta, preprocessing)
        inputs = preprocessing.check(X)
        module = self.net_.module_.eval()
        frozen = self._frozen_stages
        views = n_views(self.tta)
        if views > 1:
            forward = ViewsForward(self._forward(module, frozen, len(inputs)), views)
            batches = self._batches(
                inputs, preprocessing, progress=self.verbose > 0, desc="predict"
            )
            outputs = run_batches(forward, batches, len(inputs), self.device_)
            return self._task.average_views(outputs)
        if frozen is not None and (shared_store_bytes() or self.memory is not None):
            rows = self._frozen_outputs(
                module.trunk, frozen, inputs, preprocessing, self.device_, for_prediction=True
            )
            if rows is not None:
                with module.starting_at(len(frozen)):
                    batches = row_batches(rows, self.batch_size)
                    return run_batches(module, batches, len(inputs), self.device_)
        batches = self._batches(inputs, preprocessing, progress=self.verbose > 0, desc="predict")
        forward = self._forward(module, frozen, len(inputs))
        return run_batches(forward, batches, len(inputs), self.device_)

    def _forward(self, module, frozen, n_rows):
        """Return the network for prediction batch by batch (the frozen stages by the engine)."""
        if frozen is None:
            return module
        preprocessing = self._backbone.preprocessing
        prefix = frozen_segment(
            module.trunk[: len(frozen)].eval(),
            0,
            preprocessing,
            self.device_,
            n_rows,
            preprocessing.example_input(2, random=True),
        )
        return ThenTrainable(prefix, module, len(frozen))

    def predict(self, X):
        """Predict each input's target.

        Parameters
        ----------
        X : images or texts
            Inputs of the kind ``fit`` took.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            A classifier's most probable class, or for a multi-label ``y`` its 0/1
            indicator matrix (1 where a label's probability reaches ``threshold``); a
            regressor's targets, in their unit (1-D when ``y`` was).
        """
        check_is_fitted(self)
        return self._task.predict(self._outputs(X), getattr(self, "threshold", None))

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


class FineTunedClassifier(ClassifierMixin, _FineTuned):
    """Fine-tune a pretrained backbone with a new head (parameter transfer).

    The backbone's layer groups (``n_layer_groups_``, counted from the input) below
    ``n_frozen`` stay frozen; the rest train at ``backbone_lr`` and the new head at
    ``lr``. Training runs on :mod:`skorch`. Without augmentation, the output of the
    frozen stages is the same every epoch: it is computed once per ``fit`` and only the
    trainable part runs in the epochs, which makes head-only training (and a grid
    search over ``n_frozen``) cheap on a CPU.

    ``y`` is one label per input (binary or multiclass: a softmax head and cross-entropy)
    or a 2-D 0/1 indicator matrix, as :class:`~sklearn.preprocessing.MultiLabelBinarizer`
    gives it (multi-label: one sigmoid per label and binary cross-entropy; ``predict``
    returns the indicator matrix, ``predict_proba`` each label's probability).

    Parameters
    ----------
    [parameters: backbone weights n_frozen head head_init dropout max_epochs batch_size lr]
    [parameters: lr_schedule backbone_lr lr_decay unfreeze_after]
    [parameters: optimizer weight_decay augment tta image_size max_length early_stopping]
    [parameters: validation_fraction n_iter_no_change class_weight]
    label_smoothing : float in [0, 1), default=0.0
        Moves that share of each row's target from its class to all the classes evenly
        (multi-label: each 0/1 target towards 1/2), as
        :class:`torch.nn.CrossEntropyLoss`'s ``label_smoothing``. The probe that starts
        the head fits the labels as they are.
    mixup : float, default=0.0
        Mixup, images only: each training batch becomes ``lam * X + (1 - lam) * X[perm]``
        for a random permutation ``perm`` of its rows and ``lam`` drawn from
        ``Beta(mixup, mixup)``, and its targets the same mixture of the one-hot labels
        (0/1 labels for multi-label) and of the row weights. 0 turns it off; 0.2 to 0.4
        are usual. The frozen-prefix cache is then not used (the inputs change every
        batch), nor are the mixed inputs seen by the probe or by early stopping.
    cutmix : float, default=0.0
        Cutmix, images only: a box of a ``1 - lam`` share of each image (``lam`` from
        ``Beta(cutmix, cutmix)``) is pasted from ``X[perm]``, and the targets mixed by
        the share of pixels each image keeps. 0 turns it off; 1.0 is usual. With
        ``mixup`` too, each batch takes one of the two at random.
    threshold : float, default=0.5
        Multi-label ``y`` only: a label is predicted when its probability reaches this.
    [parameters: device random_state verbose callbacks num_workers cache_size memory]

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels; with a multi-label ``y``, the column indices ``0 .. n_labels-1``.
    backbone_ : Backbone
        The fine-tuned backbone (reusable: ``FineTunedClassifier(backbone=clf)``). A view:
        its ``net`` is the trunk inside ``net_``, which owns the weights.
    [attributes]
    history_ : skorch.History
        Losses per epoch.
    device_ : torch.device
        Where the network runs (the CPU when a model fitted on a GPU is loaded on a
        machine without one).

    See Also
    --------
    FineTunedRegressor : The same for real-valued targets.
    PretrainedFeatureExtractor : Frozen features for any scikit-learn estimator.
    sktransfer.save : Save a fitted model in a format that runs no pickle on load.

    [notes]

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
        **_FineTuned._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "mixup": [Interval(Real, 0, None, closed="left")],
        "cutmix": [Interval(Real, 0, None, closed="left")],
        "threshold": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(
        self, backbone=DEFAULT_BACKBONE, *, weights="DEFAULT", n_frozen="auto", head=None,
        head_init="probe", dropout=0.0, max_epochs="auto", batch_size=32, lr=1e-3,
        lr_schedule="constant", backbone_lr=None, lr_decay=None, unfreeze_after=0,
        optimizer="adamw", weight_decay=1e-4, augment=None, tta=False, image_size=None,
        max_length=None,
        early_stopping=False, validation_fraction=0.1, n_iter_no_change=3, class_weight=None,
        label_smoothing=0.0, mixup=0.0, cutmix=0.0, threshold=0.5, device="auto",
        random_state=None, verbose=0, callbacks=None, num_workers=0, cache_size=2048,
        memory=None,
    ):  # fmt: skip
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing
        self.mixup = mixup
        self.cutmix = cutmix
        self.threshold = threshold
        _FineTuned.__init__(self, **{name: value for name, value in locals().items()
                                     if name in self._shared})  # fmt: skip

    def _make_task(self, y):
        return classification_task(y, self.label_smoothing)

    @property
    def classes_(self):
        """The class labels (the column indices for a multi-label ``y``)."""
        check_is_fitted(self)
        return self._task.classes_

    def predict_proba(self, X):
        """Class probabilities of each input.

        Parameters
        ----------
        X : images or texts

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1 (each label's own probability for a multi-label ``y``); columns
            follow ``classes_``.
        """
        check_is_fitted(self)
        return self._task.proba(self._outputs(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class FineTunedRegressor(RegressorMixin, _FineTuned):
    """Fine-tune a pretrained backbone for real-valued targets (parameter transfer).

    As :class:`FineTunedClassifier` does, with a linear head of one output per target and
    a regression loss. ``y`` is ``(n_samples,)`` or ``(n_samples, n_outputs)``; each
    target is standardised for training (mean 0, standard deviation 1, learnt in
    ``fit``) and predictions are mapped back to the targets' unit, so ``lr`` means the
    same whatever the unit. ``score`` is the coefficient of determination (R²).

    Parameters
    ----------
    [parameters: backbone weights n_frozen head head_init dropout max_epochs batch_size lr]
    [parameters: lr_schedule backbone_lr lr_decay unfreeze_after]
    [parameters: optimizer weight_decay augment tta image_size max_length early_stopping]
    [parameters: validation_fraction n_iter_no_change]
    loss : {"squared_error", "huber", "absolute_error"}, default="squared_error"
        The training loss, named as scikit-learn names them; the Huber loss turns linear
        beyond one standard deviation of the (standardised) targets.
    [parameters: device random_state verbose callbacks num_workers cache_size memory]

    Attributes
    ----------
    n_outputs_ : int
        Number of targets per input.
    backbone_ : Backbone
        The fine-tuned backbone (reusable: ``FineTunedRegressor(backbone=reg)``). A view:
        its ``net`` is the trunk inside ``net_``, which owns the weights.
    [attributes]
    history_ : skorch.History
        Losses per epoch (on the standardised targets).
    device_ : torch.device
        Where the network runs.

    See Also
    --------
    FineTunedClassifier : The same for class labels.

    [notes]

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import FineTunedRegressor
    >>> images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    >>> brightness = images.mean(axis=(1, 2, 3))
    >>> reg = FineTunedRegressor(image_size=32, max_epochs=2, random_state=0)
    >>> reg.fit(images, brightness).predict(images[:2]).shape
    (2,)
    """

    _parameter_constraints: dict = {
        **_FineTuned._parameter_constraints,
        "loss": [StrOptions({"squared_error", "huber", "absolute_error"})],
    }

    def __init__(
        self, backbone=DEFAULT_BACKBONE, *, weights="DEFAULT", n_frozen="auto", head=None,
        head_init="probe", dropout=0.0, max_epochs="auto", batch_size=32, lr=1e-3,
        lr_schedule="constant", backbone_lr=None, lr_decay=None, unfreeze_after=0,
        optimizer="adamw", weight_decay=1e-4, augment=None, tta=False, image_size=None,
        max_length=None,
        early_stopping=False, validation_fraction=0.1, n_iter_no_change=3,
        loss="squared_error", device="auto", random_state=None, verbose=0, callbacks=None,
        num_workers=0, cache_size=2048, memory=None,
    ):  # fmt: skip
        self.loss = loss
        _FineTuned.__init__(self, **{name: value for name, value in locals().items()
                                     if name in self._shared})  # fmt: skip

    def _make_task(self, y):
        return Regression(self.loss)

    @property
    def n_outputs_(self):
        """Number of targets per input."""
        check_is_fitted(self)
        return self._task.n_outputs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


FineTunedClassifier.__doc__ = fill(FineTunedClassifier.__doc__)
FineTunedRegressor.__doc__ = fill(FineTunedRegressor.__doc__)


def _check_range(start_lr, end_lr, num_it):
    """Refuse a range test's bad arguments, naming them."""
    if not (isinstance(start_lr, Real) and isinstance(end_lr, Real) and 0 < start_lr < end_lr):
        raise ValueError(
            f"find_lr needs 0 < start_lr < end_lr; got start_lr={start_lr!r}, end_lr={end_lr!r}."
        )
    if not isinstance(num_it, Integral) or isinstance(num_it, bool) or num_it < 2:
        raise ValueError(f"find_lr needs num_it, an integer of at least 2; got {num_it!r}.")


def _probe_frozen(trunk, backbone, n_frozen, device):
    """Describe the leading stages of ``trunk`` that ``n_frozen`` groups freeze (None: none)."""
    n_stages = frozen_stage_count(trunk, backbone.layer_groups, n_frozen)
    if not n_stages:
        return None
    return FrozenStages.probe(trunk, n_stages, backbone.preprocessing, device)
