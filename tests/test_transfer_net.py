"""TransferNet, the network fine-tuning trains: train/eval modes and gradient layouts."""

import copy
import pickle

import pytest
import torch
from torch import nn

from sktransfer import load_backbone
from sktransfer._fine_tuning._network import TransferNet, make_head, to_device


def _net(n_frozen):
    backbone = load_backbone()  # bundled EfficientNet-Lite0
    backbone.freeze(n_frozen)
    return TransferNet(backbone.net, make_head(None, 0.5, backbone.num_features, 3))


def _expected_modes(net):
    """The rule, walked plainly: frozen stages and frozen norm layers in eval, the rest train."""
    kept = set()
    for stage in net.trunk.children():
        if not any(p.requires_grad for p in stage.parameters()):
            kept.update(stage.modules())
    for module in net.trunk.modules():
        own = list(module.parameters(recurse=False))
        if isinstance(module, nn.BatchNorm2d) and own and not own[0].requires_grad:
            kept.update(module.modules())
    return [module not in kept for module in net.modules()]


def _modes(net):
    return [module.training for module in net.modules()]


@pytest.mark.parametrize("n_frozen", [0, -2, "all"])
def test_train_keeps_frozen_stages_and_norm_layers_in_eval_mode(n_frozen):
    net = _net(n_frozen)
    for _ in range(2):  # planned on the first call, reused on the second
        net.eval()
        assert not any(_modes(net))
        net.train()
        assert _modes(net) == _expected_modes(net)
    trunk = dict(net.trunk.named_children())
    assert net.head.training and net.head[0].training  # the head's dropout is on
    assert trunk["conv_head"].training == (n_frozen != "all")
    assert trunk["stem"].training == (n_frozen == 0)


def test_train_follows_changed_flags_and_replaced_modules():
    net = _net("all")
    net.train()
    assert not net.trunk.conv_head.training
    net.trunk.conv_head.requires_grad_(True)  # unfrozen after the first plan
    net.train()
    assert net.trunk.conv_head.training
    assert _modes(net) == _expected_modes(net)
    net.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 3))  # a new module
    net.head.eval()
    net.train()
    assert net.head[0].training
    assert _modes(net) == _expected_modes(net)


class _AlwaysEvalDropout(nn.Dropout):
    """A module with its own train(): it stays in eval mode (some own models do this)."""

    def train(self, mode=True):
        return super().train(False)


def test_a_module_with_its_own_train_keeps_its_rule():
    net = _net(-1)
    net.trunk.conv_head.append(_AlwaysEvalDropout(0.5))
    net.eval()
    net.train()
    assert not net.trunk.conv_head[-1].training  # its rule ran
    assert net.trunk.conv_head[0].training and not net.trunk.stem.training
    expected = _expected_modes(net)
    expected[list(net.modules()).index(net.trunk.conv_head[-1])] = False
    assert _modes(net) == expected


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_plans_its_modes_for_its_own_modules(how):
    net = _net(-1)
    net.train()
    twin = copy.deepcopy(net) if how == "deepcopy" else pickle.loads(pickle.dumps(net))
    twin.eval()
    twin.train()
    assert _modes(twin) == _expected_modes(twin)
    assert twin.trunk.conv_head.training and not twin.trunk.stem.training


def test_a_channels_last_stage_gets_its_gradient_channels_last_with_the_same_values():
    torch.manual_seed(0)
    net = to_device(_net(-1), torch.device("cpu"))  # channels-last, as fine-tuning runs it
    net.head[0].p = 0.0  # no dropout: the two passes below must compute the same thing
    net.train()
    x = torch.randn(4, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    layouts = []

    def record(module, args):  # the pooling stage's input: conv_head's output
        args[0].register_hook(lambda grad: layouts.append(grad.is_contiguous()))

    net.trunk[-1].register_forward_pre_hook(record)
    net.zero_grad()
    net(x).square().sum().backward()
    grads = [p.grad.clone() for p in net.trunk.conv_head.parameters()]
    assert layouts == [False]  # channels-last, not the default layout
    net.zero_grad()
    net.head(net.trunk(x)).square().sum().backward()  # the plain forward pass
    assert layouts == [False, True]
    for ours, plain in zip(grads, net.trunk.conv_head.parameters(), strict=True):
        torch.testing.assert_close(ours, plain.grad, rtol=1e-4, atol=1e-5)
