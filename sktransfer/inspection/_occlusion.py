"""Where any fitted image model looks: a grey patch slid over the image (occlusion).

Zeiler and Fergus (2014): a square patch of the mean colour (what the network's
normalisation maps to zero) covers each position of a grid over the part of the image the
network sees (the centre crop), and the model scores every such variant with the images
it already has (``predict_proba``, else ``decision_function``, else ``predict``). A pixel's
value is the mean fall of the target's score over the patches that cover it, rectified,
and the map is scaled to [0, 1] and placed on the original image as the other maps are.
It needs neither gradients nor a linear head, so it explains any pipeline; it costs one
score per patch position (49 with the default patch).
"""

import torch

from .._core.progress import progress_bar
from ._scores import scored, target_index, unit

__all__ = ["occlusion_maps"]


def _crop_coordinates(pipeline, size):
    """Return where each original pixel falls in the network's input: rows, columns, inside.

    Two ``(height, width)`` float tensors of crop coordinates and a boolean one that says
    which pixels the crop holds, from :meth:`ImagePipeline.to_original` of two ramps.
    """
    crop = pipeline.crop_size
    ramp = torch.arange(crop, dtype=torch.float32) + 0.5
    inside = pipeline.to_original(torch.ones(crop, crop), size)
    held = inside.clamp_min(1e-6)
    rows = pipeline.to_original(ramp[:, None].expand(crop, crop), size) / held
    cols = pipeline.to_original(ramp[None, :].expand(crop, crop), size) / held
    return rows, cols, inside > 0.5


def _patches(pipeline, size, patch_size):
    """Return the patch grids over the network's input and their masks on the image.

    ``(grids, masks)``: ``(n, crop, crop)`` float 0/1 tensors and ``(n, height, width)``
    booleans. Patches of ``patch_size`` times the crop's side, half a patch apart, the
    last flush with the edge.
    """
    crop = pipeline.crop_size
    side = max(1, int(round(patch_size * crop)))
    starts = sorted({*range(0, crop - side + 1, max(1, side // 2)), crop - side})
    starts = torch.tensor(starts, dtype=torch.float32)[:, None]
    rows, cols, inside = _crop_coordinates(pipeline, size)
    pixel = torch.arange(crop, dtype=torch.float32) + 0.5
    on = ((pixel >= starts) & (pixel < starts + side)).float()  # (k, crop)
    grids = (on[:, None, :, None] * on[None, :, None, :]).flatten(0, 1)
    starts = starts[:, :, None]
    in_rows = inside & (rows >= starts) & (rows < starts + side)  # (k, height, width)
    in_cols = (cols >= starts) & (cols < starts + side)
    masks = (in_rows[:, None] & in_cols[None, :]).flatten(0, 1)
    return grids, masks


def _fill(pipeline, image):
    """Return the mean colour in ``image``'s scale: ``(3, 1, 1)``, uint8 or float in [0, 1]."""
    mean = torch.tensor(pipeline.mean, dtype=torch.float32)[:, None, None]
    return (mean * 255).round().to(torch.uint8) if image.dtype == torch.uint8 else mean


def _one_map(model, pipeline, image, target, patch_size, batch_size):
    size = tuple(image.shape[-2:])
    grids, masks = _patches(pipeline, size, patch_size)
    masks = torch.cat([torch.zeros_like(masks[:1]), masks])  # the whole image first
    fill = _fill(pipeline, image)

    def make(start, stop):
        covered = torch.where(masks[start:stop, None], fill, image[None])
        return list(covered.permute(0, 2, 3, 1).numpy())  # the (H, W, 3) arrays they take

    table = scored(model, len(masks), make, batch_size, unit="img")
    column = int(target_index(model, table[:1], target)[0])
    drops = torch.as_tensor(table[0, column] - table[1:, column], dtype=torch.float32)
    heat = (drops[:, None, None] * grids).sum(0) / grids.sum(0).clamp_min(1)
    heat = unit(torch.relu(heat)[None])[0]
    return pipeline.to_original(heat, size).clamp(0, 1).numpy()


def occlusion_maps(model, pipeline, inputs, target, *, patch_size, batch_size, verbose=0):
    """Return the occlusion map of each image of ``inputs`` (a checked ImageList)."""
    bar = progress_bar(verbose > 0, len(inputs), "explain", unit="img")
    maps = []
    try:
        for i in range(len(inputs)):
            maps.append(_one_map(model, pipeline, inputs[i], target, patch_size, batch_size))
            bar.update(1)
    finally:
        bar.close()
    return maps
