"""The skorch glue: the net that trains a :class:`TransferNet`, built from the estimator."""

import torch
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping
from skorch.helper import predefined_split

from .._core.device import fused_adam, use_amp
from .._core.inference import to_device
from ._mix import BatchMixer
from ._schedule import DEFAULT_EPOCHS, LRSchedule, UnfreezeAfter
from ._tasks import WeightedLoss

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


class _Net(NeuralNet):
    """skorch's net with bfloat16 mixed precision on CUDA and channels-last inputs.

    While training, the loss adds ``head_penalty`` times the squared norm of the head's
    last layer's weights: the L2 penalty of the linear probe that started that layer
    (0 when none did), so that training keeps the probe's regularisation.

    ``mixer`` (a :class:`~._mix.BatchMixer`, or None) mixes each training batch.
    ``layer_rates`` (see :func:`layer_rates`) gives the parameters of each unfrozen layer
    group a parameter group of its own rate; the trunk's other parameters train at
    ``backbone_lr``.

    When pickled, the network is stored once, through skorch's device-aware path (so a
    net trained on a GPU loads on a CPU-only machine): the ``module`` parameter is the
    trained ``module_`` itself and is restored from it.
    """

    amp = False
    head_penalty = 0.0
    layer_rates = ()
    mixer = None

    def train_step_single(self, batch, **fit_params):
        if self.mixer is not None:  # mixup or cutmix: on the CPU batch, before the step
            batch = self.mixer(*batch)
        return super().train_step_single(batch, **fit_params)

    def get_params_for_optimizer(self, prefix, named_parameters):
        named = list(named_parameters)
        grouped = {name for _, names in self.layer_rates for name in names}
        rest = [(name, p) for name, p in named if name not in grouped]
        (groups,), kwargs = super().get_params_for_optimizer(prefix, rest)
        if prefix != "optimizer" or not self.layer_rates:
            return (groups,), kwargs
        by_name = dict(named)
        own = [
            {"params": [by_name[name] for name in names], "lr": lr}
            for lr, names in self.layer_rates
        ]
        return ([*own, *[group for group in groups if group["params"]]],), kwargs

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = super().get_loss(y_pred, y_true, X=X, training=training)
        if training and self.head_penalty:
            weight = self.module_.head[-1].weight
            loss = loss + self.head_penalty * weight.float().square().sum()
        return loss

    def infer(self, x, **fit_params):
        x = to_device(x, self.device)
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
        self.amp = use_amp(self.device)  # fitted on a GPU, loaded on a CPU


def _callbacks(e, total_steps):
    """Return the skorch callbacks of the estimator ``e``'s settings, then the user's own."""
    callbacks = []
    if e.early_stopping:
        stopping = EarlyStopping(patience=e.n_iter_no_change, load_best=True)
        callbacks.append(("early_stopping", stopping))
    if e.lr_schedule != "constant" and total_steps:
        callbacks.append(("lr_schedule", LRSchedule(e.lr_schedule, total_steps)))
    if e.unfreeze_after and total_steps:
        callbacks.append(("unfreeze_after", UnfreezeAfter(e.unfreeze_after)))
    return callbacks + list(e.callbacks or [])


def _optimizer_options(e, device):
    """Return the optimizer's keyword arguments as skorch takes them (``optimizer__...``)."""
    kwargs = {"optimizer__weight_decay": e.weight_decay}
    if e.optimizer == "sgd":
        kwargs["optimizer__momentum"] = 0.9
    elif fused_adam(device):  # one kernel per step: 4-8x faster on a CPU
        kwargs["optimizer__fused"] = True
    return kwargs


def build_net(
    estimator,
    module,
    device,
    task,
    *,
    valid=None,
    max_epochs=DEFAULT_EPOCHS,
    total_steps=None,
    head_penalty=0.0,
    unfrozen_groups=(),
):
    """Build the skorch net that trains ``module`` with the estimator's settings.

    Unfrozen backbone groups (``trunk.*``) train at ``backbone_lr`` (default ``lr / 10``),
    the head at ``lr``, for ``max_epochs`` epochs (the estimator's, resolved: see
    :func:`~._schedule.training_epochs`); the loss is the task's, weighted per row
    (:class:`WeightedLoss`: targets arrive packed with their weights, inside the
    datasets), plus ``head_penalty`` times the squared norm of the head's last weights
    (the probe's L2 penalty: see :class:`_Net`); ``valid`` is a held-out dataset for
    early stopping; the unfrozen groups start to train after ``unfreeze_after`` epochs
    (:class:`~._schedule.UnfreezeAfter`). The learning rates follow the estimator's
    ``lr_schedule`` over ``total_steps`` optimiser steps (None: a net that will not
    train, as a loaded one). ``unfrozen_groups`` are the backbone's unfrozen layer
    groups, from the input: with the estimator's ``lr_decay``, each is a parameter group
    of its own rate (:func:`layer_rates`). A classifier's ``mixup`` and ``cutmix`` mix
    each training batch (:class:`~._mix.BatchMixer`).
    """
    e = estimator
    callbacks = _callbacks(e, total_steps)
    kwargs = _optimizer_options(e, device)
    backbone_lr = e.lr / 10 if e.backbone_lr is None else e.backbone_lr
    net = _Net(
        module,
        criterion=WeightedLoss,
        criterion__task=task,
        optimizer=OPTIMIZERS[e.optimizer],
        optimizer__param_groups=[("trunk.*", {"lr": backbone_lr})],
        lr=e.lr,
        max_epochs=max_epochs,
        batch_size=e.batch_size,
        iterator_train__shuffle=True,
        iterator_train__num_workers=e.num_workers,
        iterator_valid__num_workers=e.num_workers,
        train_split=predefined_split(valid) if valid is not None else None,
        callbacks=callbacks or None,
        device=device,
        verbose=e.verbose,
        **kwargs,
    )
    net.amp = use_amp(device)
    net.head_penalty = float(head_penalty)
    if e.lr_decay is not None:
        net.layer_rates = layer_rates(unfrozen_groups, backbone_lr, e.lr_decay)
    mixup, cutmix = getattr(e, "mixup", 0.0), getattr(e, "cutmix", 0.0)
    if mixup > 0 or cutmix > 0:
        net.mixer = BatchMixer(mixup, cutmix, task)
    return net


def layer_rates(unfrozen_groups, backbone_lr, lr_decay):
    """Return each unfrozen layer group's rate and parameter names, from the top.

    Layer-wise learning-rate decay (ULMFiT's discriminative rates, BEiT's and ELECTRA's
    layer decay): the group ``k`` places below the top one trains at
    ``backbone_lr * lr_decay ** k``.

    Parameters
    ----------
    unfrozen_groups : list of (str, list of str)
        The unfrozen layer groups, from the input, with the names of their parameters in
        the backbone's network (the trunk's).
    backbone_lr : float
        The top group's rate.
    lr_decay : float
        The factor between a group's rate and the rate of the group above it.

    Returns
    -------
    tuple of (float, tuple of str)
        The rate and the parameter names (``trunk.*``) of each group, the top one first.

    Examples
    --------
    >>> groups = [("stem", ["stem.weight"]), ("blocks0", ["blocks.0.weight"])]
    >>> layer_rates(groups, 1e-3, 0.5)
    ((0.001, ('trunk.blocks.0.weight',)), (0.0005, ('trunk.stem.weight',)))
    """
    return tuple(
        (backbone_lr * lr_decay**k, tuple(f"trunk.{name}" for name in names))
        for k, (_, names) in enumerate(reversed(unfrozen_groups))
    )


def release_training_state(net):
    """Drop what only training needs, so a fitted model holds (and pickles) its weights once.

    skorch's EarlyStopping keeps a copy of the best weights (already restored) and the
    optimizer keeps its moments; the held-out data of ``predefined_split`` is not kept.
    """
    for _, callback in net.callbacks_:
        if isinstance(callback, EarlyStopping):
            callback.best_model_weights_ = None
    net.optimizer_.state.clear()
    net.train_split = None
