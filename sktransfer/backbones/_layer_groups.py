"""Layer groups: the units fine-tuning freezes, from the input to the output.

A staged network (an ``nn.Sequential`` of stages) has one group per stage that holds
parameters; a network that cannot be cut into stages is one stage whose groups are sets
of parameters inside it.
"""

from collections import OrderedDict

from torch import nn

__all__ = ["frozen_stage_count", "parameter_groups", "single_stage", "stage_groups"]


def stage_groups(net):
    """Layer groups of a staged net: one per stage that holds parameters."""
    groups = []
    for stage_name, stage in net.named_children():
        params = [f"{stage_name}.{n}" for n, _ in stage.named_parameters()]
        if params:
            groups.append((stage_name, params))
    return groups


def parameter_groups(module):
    """Split a module that is not sequential into ordered parameter groups.

    The child holding more than half the parameters is opened up (a transformer's encoder,
    then its list of blocks) until no child dominates; every child with parameters is then
    a group, in registration order. Parameters that belong directly to an opened module
    (class tokens, position embeddings) join the first group.
    """
    groups, loose = _split(module, "")
    if loose and groups:
        groups[0] = (groups[0][0], loose + groups[0][1])
    elif loose:
        groups = [("params", loose)]
    return groups


def _split(module, prefix):
    total = sum(p.numel() for p in module.parameters())
    groups = []
    loose = [f"{prefix}{n}" for n, _ in module.named_parameters(recurse=False)]
    for name, child in module.named_children():
        size = sum(p.numel() for p in child.parameters())
        if size == 0:
            continue
        n_children = sum(1 for c in child.children() if any(True for _ in c.parameters()))
        if size > total / 2 and n_children > 1:
            inner, inner_loose = _split(child, f"{prefix}{name}.")
            groups += inner
            loose += inner_loose
        else:
            params = [f"{prefix}{name}.{n}" for n, _ in child.named_parameters()]
            groups.append((f"{prefix}{name}", params))
    return groups, loose


def single_stage(trunk, name="trunk"):
    """Wrap a module that maps images to features as a one-stage net with finer groups."""
    net = nn.Sequential(OrderedDict([(name, trunk)]))
    groups = [(g, [f"{name}.{p}" for p in params]) for g, params in parameter_groups(trunk)]
    return net, groups


def frozen_stage_count(net, layer_groups, n_frozen):
    """Count the leading stages of ``net`` held whole by the first ``n_frozen`` groups.

    What freezing ``n_frozen`` groups leaves frozen whole, without touching the
    parameters (for a fitted or loaded model too). A parameter-free stage (pooling) is
    frozen with the stages before it.
    """
    frozen = {name for _, names in layer_groups[:n_frozen] for name in names}
    count = 0
    for stage_name, stage in net.named_children():
        if any(f"{stage_name}.{name}" not in frozen for name, _ in stage.named_parameters()):
            break
        count += 1
    return count
