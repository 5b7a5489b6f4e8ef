"""Class activation maps for fitted image models, aligned to the original images.

- A fine-tuned model (:class:`~sktransfer.FineTunedClassifier` or
  :class:`~sktransfer.FineTunedRegressor`): Grad-CAM (Selvaraju et al., 2017) on a layer
  of the trunk, by default its final feature map: the map's channels weighted by the
  mean gradient of the target's score, rectified.
- A ``Pipeline`` of a :class:`~sktransfer.PretrainedFeatureExtractor` (final layer,
  average pooling) and a linear classifier: the class activation map (Zhou et al., 2016),
  the linear model's coefficients applied to each position of the final feature map,
  which is exact for average pooling: its mean over the positions is the decision value
  minus the intercept.

Neither changes the model: no weight, gradient buffer or mode is left different.
"""

import numpy as np
import torch

from ..backbones import FINAL_INPUT, LayerTaps
from ._scores import target_index, unit

__all__ = ["cam_maps", "cam_positions", "check_cam", "gradcam_maps"]


def _last_map_layer(trunk):
    """Return the name of the trunk's stage before its pooling: the final feature map."""
    names = [name for name, _ in trunk.named_children()]
    return names[-2]


def _gradcam(model, batch, target, layer):
    module = model.net_.module_
    trunk = module.trunk
    layer = _last_map_layer(trunk) if layer is None else layer
    named = dict(trunk.named_modules())
    if layer not in named:
        raise ValueError(f"Unknown layer {layer!r}; see model.backbone_.layer_names.")
    captured = []

    def hook(_, __, output):  # a leaf from here on: gradients reach this map only
        leaf = output.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf

    handle = named[layer].register_forward_hook(hook)
    try:
        with torch.enable_grad():
            scores = module(batch).float()
            index = target_index(model, scores.detach(), target)
            chosen = scores.gather(1, index[:, None]).sum()
            (grad,) = torch.autograd.grad(chosen, captured[0])
    finally:
        handle.remove()
    fmap = captured[0].detach()
    weights = grad.mean((2, 3), keepdim=True)
    return torch.relu((weights * fmap).sum(1))


def cam_positions(pipeline, batch):
    """Return each class's linear score at each position of the final feature map.

    ``(n, n_classes, h, w)``: their mean over the positions is the linear model's
    decision value minus its intercept (exact for average pooling). A binary model's two
    classes are its weights negated and as they are.
    """
    extractor, linear = pipeline.steps[0][1], pipeline.steps[-1][1]
    with torch.inference_mode():
        _, outputs = LayerTaps(extractor.backbone_.net, [FINAL_INPUT])(batch)
    fmap = outputs[FINAL_INPUT].float()
    coef = torch.as_tensor(np.atleast_2d(linear.coef_), dtype=torch.float32)
    if coef.shape[1] != fmap.shape[1]:
        raise ValueError("The linear model's coefficients do not match the feature map.")
    if len(coef) == 1:
        coef = torch.cat([-coef, coef])
    return torch.einsum("kc,nchw->nkhw", coef, fmap)


def _cam(pipeline, batch, target):
    positions = cam_positions(pipeline, batch)
    index = target_index(pipeline, positions.mean((2, 3)), target)
    maps = positions[torch.arange(len(batch)), index]
    return maps - maps.flatten(1).amin(1)[:, None, None]


def check_cam(model):
    """Refuse a model whose class activation map would not be exact, saying why."""
    extractor, linear = model.steps[0][1], model.steps[-1][1]
    if len(model.steps) != 2 or not hasattr(linear, "coef_"):
        raise ValueError(
            "method='cam' maps a Pipeline of exactly a PretrainedFeatureExtractor and a "
            "fitted linear classifier (with coef_); method='occlusion' maps any other."
        )
    if extractor.layer_ is not None or extractor._pooling != "avg":
        raise ValueError(
            "The class activation map is exact for the final layer with average "
            f"pooling; this extractor has layer={extractor.layer_!r}, "
            f"pooling={extractor._pooling!r}. Use method='occlusion'."
        )


def _batches(pipeline, inputs, batch_size):
    """Yield ``(images, transformed batch)``, ``batch_size`` images at a time."""
    for start in range(0, len(inputs), batch_size):
        part = inputs.take(np.arange(start, min(start + batch_size, len(inputs))))
        images = [part[i] for i in range(len(part))]
        yield images, torch.stack([pipeline.eval_transform()(image) for image in images])


def _on_originals(pipeline, images, raw):
    """Scale each raw map to [0, 1] and place it on its original image."""
    return [
        pipeline.to_original(heat, image.shape[-2:]).clamp(0, 1).numpy()
        for image, heat in zip(images, unit(raw), strict=True)
    ]


def gradcam_maps(model, inputs, target, *, layer, batch_size):
    """Grad-CAM of a fine-tuned model for each image of ``inputs``; the model is restored."""
    pipeline, module = model.backbone_.preprocessing, model.net_.module_
    was_training = module.training
    module.eval()
    maps = []
    try:
        for images, batch in _batches(pipeline, inputs, batch_size):
            raw = _gradcam(model, batch.to(model.device_), target, layer).cpu()
            maps += _on_originals(pipeline, images, raw)
    finally:
        module.train(was_training)
    return maps


def cam_maps(model, inputs, target, *, batch_size):
    """Return the class activation map of ``Pipeline(extractor, linear)`` per image."""
    pipeline = model.steps[0][1].backbone_.preprocessing
    maps = []
    for images, batch in _batches(pipeline, inputs, batch_size):
        maps += _on_originals(pipeline, images, _cam(model, batch, target))
    return maps
