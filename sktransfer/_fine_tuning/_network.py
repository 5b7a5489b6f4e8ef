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

    On a CPU the trunk runs in the channels-last layout (see :func:`to_device`). A stage
    that ends the spatial layout (the global pooling) hands back a gradient in the
    default layout, and BatchNorm's backward pass on a channels-last input with such a
    gradient takes a slow path (about 5 times slower for the last feature map of an
    EfficientNet). While training, each stage's channels-last input therefore receives
    its gradient in that layout: the same values, the fast kernels.
    """

    def __init__(self, trunk, head):
        super().__init__()
        self.trunk = trunk
        self.head = head
        self.start = 0
        self._modes = None  # (what they were planned for, modules kept in eval mode)

    def forward(self, x=None, **parts):
        # skorch passes a dict batch (a text stage's {"hidden", "mask"}, or token ids) as
        # keyword arguments: the stages take it as one dict
        x = parts if x is None else x
        trunk = self.trunk[self.start :] if self.start else self.trunk
        if not torch.is_grad_enabled() or type(trunk) is not nn.Sequential:
            return self.head(trunk(x))
        for stage in trunk:
            x = stage(_channels_last_gradient(x))
        return self.head(x)

    @contextmanager
    def starting_at(self, stage):
        """Run the forward pass from ``stage`` (its input is cached) inside the block."""
        self.start = stage
        try:
            yield self
        finally:
            self.start = 0

    def train(self, mode=True):
        if not mode:
            return super().train(False)
        # skorch calls train() before every batch: the modes are planned once for the
        # modules and their requires_grad flags, and only the flags that differ are set
        modules = list(self.modules())
        key = (tuple(modules), tuple(p.requires_grad for p in self.parameters()))
        if getattr(self, "_modes", None) is None or self._modes[0] != key:
            self._modes = (key, self._frozen_modules())
        kept_in_eval = self._modes[1]
        if kept_in_eval is None:  # a module with its own train(): called, as torch does
            super().train(True)
            for module in self._frozen_roots():
                module.eval()
            return self
        for module in modules:
            wanted = module not in kept_in_eval
            if module.training != wanted:
                module.training = wanted
        return self

    def _frozen_roots(self):
        """Yield the modules kept in eval mode: frozen norm layers and frozen stages."""
        for module in self.trunk.modules():
            own = list(module.parameters(recurse=False))
            is_norm = isinstance(module, nn.modules.batchnorm._NormBase)
            if is_norm and own and not any(p.requires_grad for p in own):
                yield module
        for stage in self.trunk.children():
            if not any(p.requires_grad for p in stage.parameters()):
                yield stage

    def _frozen_modules(self):
        """Return the set of modules in eval mode while training (None: not plannable).

        None when a module overrides ``train()``: its own rule then has to run.
        """
        if any(type(m).train is not nn.Module.train for m in self.modules() if m is not self):
            return None
        return {module for root in self._frozen_roots() for module in root.modules()}

    def __getstate__(self):
        state = super().__getstate__()
        state["_modes"] = None  # planned again on the first train()
        return state


def _channels_last_gradient(x):
    """Have a channels-last activation receive its gradient in the channels-last layout."""
    if (
        torch.is_tensor(x)
        and x.requires_grad
        and x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        x.register_hook(_to_channels_last)
    return x


def _to_channels_last(grad):
    return grad.contiguous(memory_format=torch.channels_last)


def make_head(head, dropout, num_features, n_outputs):
    """Build the new head: ``n_outputs`` logits or values from ``num_features`` features.

    Linear for ``head=None``, an MLP with ``head`` hidden units for an int, or the module
    built by ``head(num_features, n_outputs)`` for a callable. The last linear layer of
    the first two starts at zero: a random start leaves a random component in the
    directions the few training inputs do not span, which training never removes (on 48
    photos, a regression head's test R² was 0.19 from a random start and 0.62 from zero,
    where ridge regression on the same features scores 0.67). With ``head_init="probe"``
    the estimator then fits that layer (:mod:`._probe`).
    """
    drop = [nn.Dropout(dropout)] if dropout > 0 else []
    if head is None:
        return _zero_last(nn.Sequential(*drop, nn.Linear(num_features, n_outputs)))
    if isinstance(head, Integral):
        return _zero_last(
            nn.Sequential(
                *drop,
                nn.Linear(num_features, int(head)),
                nn.ReLU(),
                *[nn.Dropout(dropout)] * bool(drop),
                nn.Linear(int(head), n_outputs),
            )
        )
    module = head(num_features, n_outputs)
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"head(num_features, n_outputs) must return a torch.nn.Module; got {type(module)}."
        )
    return module


def _zero_last(head):
    last = head[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return head


def to_device(module, device):
    """Move a module to ``device``, in the channels-last layout on a CPU."""
    module = module.to(device)
    if device.type == "cpu":
        module = module.to(memory_format=torch.channels_last)
    return module
