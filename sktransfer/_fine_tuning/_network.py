"""The network fine-tuning trains: the backbone's trunk followed by a new head."""

from contextlib import contextmanager
from numbers import Integral

import torch
from torch import nn


class TransferNet(nn.Module):
    """Backbone stages followed by a new head, with frozen parts kept in eval mode.

    ``train()`` leaves the frozen stages and the norm layers of frozen groups in eval
    mode, so their BatchNorm running statistics never change and their dropout is off.
    While training on cached activations (:meth:`starting_at`), the forward pass starts at
    the first stage that was not cached; otherwise it runs the whole trunk.
    """

    def __init__(self, trunk, head):
        super().__init__()
        self.trunk = trunk
        self.head = head
        self.start = 0

    def forward(self, x=None, **parts):
        # skorch passes a dict batch (a text stage's {"hidden", "mask"}, or token ids) as
        # keyword arguments: the stages take it as one dict
        x = parts if x is None else x
        trunk = self.trunk[self.start :] if self.start else self.trunk
        return self.head(trunk(x))

    @contextmanager
    def starting_at(self, stage):
        """Run the forward pass from ``stage`` (its input is cached) inside the block."""
        self.start = stage
        try:
            yield self
        finally:
            self.start = 0

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


def to_device(module, device):
    """Move a module to ``device``, in the channels-last layout on a CPU."""
    module = module.to(device)
    if device.type == "cpu":
        module = module.to(memory_format=torch.channels_last)
    return module
