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
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from .._extractor import PretrainedFeatureExtractor
from .._fine_tuning import FineTunedClassifier, FineTunedRegressor
from .._modalities import ImagePipeline
from ..backbones import FINAL_INPUT, LayerTaps

__all__ = ["explain"]


def _unit(maps):
    """Scale each map to [0, 1] by its maximum (an all-zero map stays zero)."""
    top = maps.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    return (maps / top).clamp(0, 1)


def _target_index(model, scores, target):
    """Column of ``scores`` to explain for each row: ``target``'s, or the top one."""
    if target is None:
        return scores.argmax(1)
    classes = getattr(model, "classes_", None)
    if isinstance(classes, np.ndarray) and classes.ndim == 1:
        where = np.flatnonzero(classes == target)
        if not len(where):
            raise ValueError(f"target {target!r} is not one of the classes {classes.tolist()}.")
        return torch.full((len(scores),), int(where[0]))
    if not (isinstance(target, (int, np.integer)) and 0 <= target < scores.shape[1]):
        raise ValueError(
            f"target must be an output index from 0 to {scores.shape[1] - 1} for this "
            f"model; got {target!r}."
        )
    return torch.full((len(scores),), int(target))


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
            index = _target_index(model, scores.detach(), target)
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
    index = _target_index(pipeline, positions.mean((2, 3)), target)
    maps = positions[torch.arange(len(batch)), index]
    return maps - maps.flatten(1).amin(1)[:, None, None]


def _check_model(model):
    """Return ``(how, image pipeline)`` for a fitted model, or refuse it clearly."""
    if isinstance(model, (FineTunedClassifier, FineTunedRegressor)):
        check_is_fitted(model)
        how, pipeline = "gradcam", model.backbone_.preprocessing
    elif isinstance(model, Pipeline) and isinstance(model.steps[0][1], PretrainedFeatureExtractor):
        extractor, linear = model.steps[0][1], model.steps[-1][1]
        check_is_fitted(extractor)
        if len(model.steps) != 2 or not hasattr(linear, "coef_"):
            raise ValueError(
                "explain maps a Pipeline of exactly a PretrainedFeatureExtractor and a fitted "
                "linear classifier (with coef_)."
            )
        if extractor.layer_ is not None or extractor._pooling != "avg":
            raise ValueError(
                "The class activation map is exact for the final layer with average "
                "pooling; this extractor has layer="
                f"{extractor.layer_!r}, pooling={extractor._pooling!r}."
            )
        how, pipeline = "cam", extractor.backbone_.preprocessing
    else:
        raise TypeError(
            "explain takes a fitted FineTunedClassifier, FineTunedRegressor, or Pipeline("
            f"PretrainedFeatureExtractor, linear classifier); got {type(model).__name__}."
        )
    if not isinstance(pipeline, ImagePipeline):
        raise ValueError("explain maps images; this model takes another kind of input.")
    return how, pipeline


def explain(model, X, *, target=None, layer=None, batch_size=16):
    """Return where a fitted image model looks: one map per image, in [0, 1].

    Parameters
    ----------
    model : fitted estimator
        A :class:`~sktransfer.FineTunedClassifier` or
        :class:`~sktransfer.FineTunedRegressor` (Grad-CAM), or a ``Pipeline`` of a
        :class:`~sktransfer.PretrainedFeatureExtractor` (final layer, average pooling) and
        a linear classifier (the class activation map).
    X : images
        As the model takes them (paths, arrays, PIL images).
    target : class label, int or None, default=None
        What to explain: a class label (a multi-label model's or a regressor's output
        index), the same for every image; None explains each image's top class.
    layer : str or None, default=None
        Grad-CAM's layer, a name of ``model.backbone_.layer_names``; None is the final
        feature map (the stage before the pooling).
    batch_size : int, default=16
        Images per pass.

    Returns
    -------
    maps : list of ndarray of shape (height, width), float32
        One per image, the size of the original image (the resize and centre crop are
        undone; outside the crop the map is 0), scaled so that its maximum is 1.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sktransfer import PretrainedFeatureExtractor
    >>> from sktransfer.inspection import explain
    >>> X = np.random.default_rng(0).integers(0, 255, (4, 120, 90, 3), dtype=np.uint8)
    >>> pipe = make_pipeline(PretrainedFeatureExtractor(), LogisticRegression())
    >>> pipe = pipe.fit(X, [0, 1, 0, 1])
    >>> [m.shape for m in explain(pipe, X[:2])]
    [(120, 90), (120, 90)]
    """
    how, pipeline = _check_model(model)
    inputs = pipeline.check(X)
    if how == "gradcam":
        module = model.net_.module_
        was_training = module.training
        module.eval()
    maps = []
    try:
        for start in range(0, len(inputs), batch_size):
            part = inputs.take(np.arange(start, min(start + batch_size, len(inputs))))
            batch = torch.stack([pipeline.eval_transform()(part[i]) for i in range(len(part))])
            if how == "gradcam":
                batch = batch.to(model.device_)
                raw = _gradcam(model, batch, target, layer).cpu()
            else:
                raw = _cam(model, batch, target)
            for i, heat in enumerate(_unit(raw)):
                size = part[i].shape[-2:]
                maps.append(pipeline.to_original(heat, size).clamp(0, 1).numpy())
    finally:
        if how == "gradcam":
            module.train(was_training)
    return maps
