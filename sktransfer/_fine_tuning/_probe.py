"""The linear probe: the head's last layer fitted to convergence before gradient training.

``head_init="probe"`` runs the network once, in eval mode and without augmentation, over
the training rows, up to the head's last linear layer, and fits that layer as a convex
model of those features (the task's :meth:`~._tasks.SingleLabel.probe`: a logistic
regression, one per label, or a ridge regression). Training then starts from where a
linear probe ends ("linear probing, then fine-tuning", Kumar et al., ICLR 2022): the
head no longer needs the many steps that a zero start takes to move, and the first
gradients that reach unfrozen layers are those of a sensible head, not of a blank one.

The features come from the frozen-prefix cache when training uses it (only the trainable
stages run); otherwise from the frozen stages' output computed for this pass (as the
cache would, within ``cache_size``), or from a pass of the whole network.
"""

import numpy as np
import torch
from torch import nn

from .._core.inference import run_batches

__all__ = ["copy_into_head", "last_layer_inputs", "probed_layer"]


def probed_layer(head):
    """Return the head's last linear layer, if the probe can start it (else None).

    The built-in heads (``head=None`` or an int) and a callable's
    :class:`torch.nn.Sequential` that ends in a :class:`torch.nn.Linear` with a bias
    (the probe fits an intercept) qualify.
    """
    if isinstance(head, nn.Sequential) and len(head) and isinstance(head[-1], nn.Linear):
        return head[-1] if head[-1].bias is not None else None
    return None


def last_layer_inputs(module, start, batches, n_rows, device):
    """Return what reaches the head's last layer for each row (eval mode, float64).

    Parameters
    ----------
    module : TransferNet
        The network: ``module.head`` ends in the probed layer.
    start : int
        The stage the batches enter at (the number of stages whose output they hold).
    batches : iterable
        Unaugmented batches of the rows (inputs, or stage outputs).
    n_rows : int
        Rows in all batches.
    device : torch.device
        Where the network runs.

    Returns
    -------
    ndarray of shape (n_rows, n_features)
    """
    module.eval()  # skorch puts it back in training mode when it trains
    trunk = module.trunk[start:] if start else module.trunk
    before = module.head[:-1]

    def forward(batch):
        return before(trunk(batch))

    features = run_batches(forward, batches, n_rows, device)
    return features.numpy().astype(np.float64)


def copy_into_head(layer, weight, bias):
    """Set the linear ``layer`` to ``weight`` and ``bias`` (numpy arrays)."""
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype))
        layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))
