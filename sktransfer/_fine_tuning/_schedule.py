"""How long training runs and at which learning rate: the budget and the schedule.

A fixed number of epochs collapses with little data: 32 texts at ``batch_size=32`` for
10 epochs are 10 optimiser steps, too few for any layer to move. ``max_epochs="auto"``
trains :data:`DEFAULT_EPOCHS` epochs, or more when the data is small, so that training
takes at least :data:`MIN_STEPS` optimiser steps. An integer ``max_epochs`` is taken as
given.

``lr_schedule`` sets every parameter group's learning rate at each optimiser step
(:class:`LRSchedule`): ``"constant"``; ``"warmup_cosine"``, a linear warm-up over the
first :data:`WARMUP_FRACTION` of the steps, then a cosine decay towards zero
(:func:`warmup_cosine`); or
``"one_cycle"``, :class:`torch.optim.lr_scheduler.OneCycleLR` with its defaults (from a
25th of each group's rate up to it over the first 30 % of the steps, then down to a
10,000th of the start, with the momentum cycled the other way), as fastai's
``fit_one_cycle``.

``unfreeze_after`` trains the head alone for that many epochs before the unfrozen layer
groups start to train (:class:`UnfreezeAfter`): gradual unfreezing, as ULMFiT and
Keras's transfer-learning guide train a new head until it settles before the body moves.
"""

import math

from skorch.callbacks import Callback
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR

__all__ = [
    "DEFAULT_EPOCHS",
    "MIN_STEPS",
    "SCHEDULES",
    "WARMUP_FRACTION",
    "LRSchedule",
    "UnfreezeAfter",
    "training_epochs",
    "warmup_cosine",
]

DEFAULT_EPOCHS = 10
# The steps a layer needs to move: Adam moves each weight by about the learning rate per
# step, so that 100 steps at the body's default 1e-4 move a pretrained weight by up to
# 0.01, the order of the weights themselves, where 10 steps move it by a tenth of that.
MIN_STEPS = 100


def training_epochs(max_epochs, n_rows, batch_size):
    """Return the epochs to train on ``n_rows`` rows in batches of ``batch_size``.

    Parameters
    ----------
    max_epochs : int or "auto"
        The estimator's parameter.
    n_rows : int
        Training rows (without a validation hold-out).
    batch_size : int
        Rows per optimiser step (the last batch of an epoch may be smaller).

    Returns
    -------
    int
        ``max_epochs`` if an integer; for ``"auto"``,
        ``max(DEFAULT_EPOCHS, ceil(MIN_STEPS / ceil(n_rows / batch_size)))``.

    Examples
    --------
    >>> training_epochs("auto", 32, 32), training_epochs("auto", 1000, 32)
    (100, 10)
    """
    if max_epochs != "auto":
        return int(max_epochs)
    steps_per_epoch = math.ceil(n_rows / batch_size)
    return max(DEFAULT_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch))


SCHEDULES = ("constant", "warmup_cosine", "one_cycle")
# The warm-up's share of the steps (Hugging Face's warmup_ratio is usually 0.06 to 0.1):
# Adam's first steps move every weight by the full rate, whatever its gradient.
WARMUP_FRACTION = 0.1


def warmup_cosine(step, total_steps):
    """Return the learning rate's factor at optimiser ``step`` (from 0) of ``total_steps``.

    As Hugging Face's ``get_cosine_schedule_with_warmup``: ``step / n_warmup`` over the
    first ``n_warmup = max(1, round(WARMUP_FRACTION * total_steps))`` steps (the first
    step, at rate 0, only starts Adam's averages), then ``(1 + cos(pi * t)) / 2`` as
    ``t = (step - n_warmup) / (total_steps - n_warmup)`` goes from 0 towards 1.

    Examples
    --------
    >>> [round(warmup_cosine(step, 20), 3) for step in (0, 1, 2, 11, 19)]
    [0.0, 0.5, 1.0, 0.5, 0.008]
    """
    n_warmup = max(1, round(WARMUP_FRACTION * total_steps))
    if step < n_warmup:
        return step / n_warmup
    progress = (step - n_warmup) / max(1, total_steps - n_warmup)
    return (1 + math.cos(math.pi * min(progress, 1.0))) / 2


class LRSchedule(Callback):
    """Set the learning rate of every parameter group at each training step.

    Parameters
    ----------
    schedule : {"warmup_cosine", "one_cycle"}
        The schedule (see the module's description).
    total_steps : int
        Optimiser steps in all of training (the epochs times the batches of an epoch).
    """

    def __init__(self, schedule, total_steps):
        self.schedule = schedule
        self.total_steps = total_steps

    def on_train_begin(self, net, **kwargs):
        optimizer = net.optimizer_
        if self.schedule == "one_cycle":
            peaks = [group["lr"] for group in optimizer.param_groups]
            self.scheduler_ = OneCycleLR(optimizer, max_lr=peaks, total_steps=self.total_steps)
        else:
            self.scheduler_ = LambdaLR(
                optimizer, lambda step: warmup_cosine(step, self.total_steps)
            )

    def on_batch_end(self, net, training=False, **kwargs):
        if training and self.scheduler_.last_epoch < self.total_steps:
            self.scheduler_.step()

    def on_train_end(self, net, **kwargs):
        self.scheduler_ = None  # it holds the optimizer: nothing of it outlives training


class UnfreezeAfter(Callback):
    """Hold the trunk's trainable parameters still for the first ``n_epochs`` epochs.

    At the start of training the trunk's parameters that train are set not to
    (``requires_grad=False``), so that they get no gradient, the optimizer leaves them
    (and their weight decay) alone, and :class:`~._network.TransferNet` keeps the norm
    layers and stages they make up in eval mode (their BatchNorm statistics do not move
    either); from epoch ``n_epochs + 1`` they train. They are set to train again when
    training ends, however it ends.

    Parameters
    ----------
    n_epochs : int
        Epochs of training with the head only.
    """

    def __init__(self, n_epochs):
        self.n_epochs = n_epochs

    def on_train_begin(self, net, **kwargs):
        trunk = net.module_.trunk
        self.held_ = [p for p in trunk.parameters() if p.requires_grad]
        self._set(False)

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) > self.n_epochs:  # the epoch that begins, counted from 1
            self._set(True)

    def on_train_end(self, net, **kwargs):
        self._set(True)
        self.held_ = []  # no reference to the weights outlives training

    def _set(self, trains):
        for parameter in self.held_:
            parameter.requires_grad_(trains)
