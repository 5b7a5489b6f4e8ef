"""Inference-only rewrites of a frozen network: BatchNorm folded into the preceding conv."""

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights


def _bn_replacement(bn):
    """Return what is left of a folded BatchNorm: nothing, or the activation timm fuses in."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    if hasattr(bn, "act") and hasattr(bn, "drop"):  # timm's BatchNormAct2d
        return nn.Sequential(bn.drop, bn.act)
    return None


def has_batchnorm(net):
    """Whether ``net`` holds a BatchNorm layer that folding could remove."""
    return any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def fold_batchnorm(net, example, *, atol=1e-4):
    """Return a copy of ``net`` (eval mode) with each BatchNorm folded into its conv.

    ``example`` is an input batch of at least two rows (or an image side, for random
    images of that size) used to trace the network and to check the result.

    Pairs are found by running the network once and watching which BatchNorm consumes
    the output of which convolution; a conv whose output is used by anything else stays
    as it is. The folded copy is checked against the original on random input and
    ``net`` itself is returned if they disagree, so this never changes results.
    """
    if not has_batchnorm(net):
        return net
    fused = copy.deepcopy(net).eval()
    modules = dict(fused.named_modules())
    produced, consumers, pairs, keep = {}, {}, [], []

    def record_output(name):
        def hook(module, inputs, output):
            produced[id(output)] = name
            keep.append(output)

        return hook

    def record_input(name):
        def hook(module, inputs):
            for x in inputs:
                if id(x) in produced:
                    consumers.setdefault(produced[id(x)], []).append(name)

        return hook

    handles = []
    for name, module in modules.items():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(record_output(name)))
        if not list(module.children()) or isinstance(module, nn.BatchNorm2d):
            handles.append(module.register_forward_pre_hook(record_input(name)))
    x = torch.randn(2, 3, example, example) if isinstance(example, int) else example
    try:
        with torch.inference_mode():
            fused(x)
    finally:
        for h in handles:
            h.remove()
    for conv_name, users in consumers.items():
        bns = [u for u in users if isinstance(modules[u], nn.BatchNorm2d)]
        if len(bns) == 1 and set(users) <= {bns[0]} | _ancestors(bns[0]):
            pairs.append((conv_name, bns[0]))
    for conv_name, bn_name in pairs:
        conv, bn = modules[conv_name], modules[bn_name]
        replacement = _bn_replacement(bn)
        if replacement is None or not bn.track_running_stats:
            continue
        weight, bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
        )
        conv.weight, conv.bias = weight, bias
        parent_name, _, child = bn_name.rpartition(".")
        setattr(modules[parent_name] if parent_name else fused, child, replacement)
    with torch.inference_mode():
        expected, got = net.eval()(x), fused(x)
    if not torch.allclose(expected, got, atol=atol, rtol=atol):
        return net
    return fused


def _ancestors(name):
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}
