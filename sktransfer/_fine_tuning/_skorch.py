"""The skorch glue: the net that trains a :class:`TransferNet`, built from the estimator."""

import torch
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping
from skorch.helper import predefined_split

from .._core.device import use_amp
from .._core.inference import to_device
from ._schedule import DEFAULT_EPOCHS, LRSchedule
from ._tasks import WeightedLoss

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


class _Net(NeuralNet):
    """skorch's net with bfloat16 mixed precision on CUDA and channels-last inputs.

    While training, the loss adds ``head_penalty`` times the squared norm of the head's
    last layer's weights: the L2 penalty of the linear probe that started that layer
    (0 when none did), so that training keeps the probe's regularisation.

    When pickled, the network is stored once, through skorch's device-aware path (so a
    net trained on a GPU loads on a CPU-only machine): the ``module`` parameter is the
    trained ``module_`` itself and is restored from it.
    """

    amp = False
    head_penalty = 0.0

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
):
    """Build the skorch net that trains ``module`` with the estimator's settings.

    Unfrozen backbone groups (``trunk.*``) train at ``backbone_lr`` (default ``lr / 10``),
    the head at ``lr``, for ``max_epochs`` epochs (the estimator's, resolved: see
    :func:`~._schedule.training_epochs`); the loss is the task's, weighted per row
    (:class:`WeightedLoss`: targets arrive packed with their weights, inside the
    datasets), plus ``head_penalty`` times the squared norm of the head's last weights
    (the probe's L2 penalty: see :class:`_Net`); ``valid`` is a held-out dataset for
    early stopping. The learning rates follow the estimator's ``lr_schedule`` over
    ``total_steps`` optimiser steps (None: a net that will not train, as a loaded one).
    """
    e = estimator
    callbacks = []
    if e.early_stopping:
        stopping = EarlyStopping(patience=e.n_iter_no_change, load_best=True)
        callbacks.append(("early_stopping", stopping))
    if e.lr_schedule != "constant" and total_steps:
        callbacks.append(("lr_schedule", LRSchedule(e.lr_schedule, total_steps)))
    callbacks += list(e.callbacks or [])
    kwargs = {"optimizer__weight_decay": e.weight_decay}
    if e.optimizer == "sgd":
        kwargs["optimizer__momentum"] = 0.9
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
    return net


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
