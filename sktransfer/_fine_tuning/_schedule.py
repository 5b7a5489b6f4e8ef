"""How long training runs: the epochs of ``max_epochs="auto"``.

A fixed number of epochs collapses with little data: 32 texts at ``batch_size=32`` for
10 epochs are 10 optimiser steps, too few for any layer to move. ``"auto"`` trains
:data:`DEFAULT_EPOCHS` epochs, or more when the data is small, so that training takes
at least :data:`MIN_STEPS` optimiser steps. An integer ``max_epochs`` is taken as given.
"""

import math

__all__ = ["DEFAULT_EPOCHS", "MIN_STEPS", "training_epochs"]

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
