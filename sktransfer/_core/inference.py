"""The one batched forward loop: extraction, the frozen-prefix cache and prediction use it.

Batches come from a backbone's input pipeline (``preprocessing.batches``): tensors, or
dicts/tuples of tensors for modalities whose inputs have several parts. Each batch moves
to the device (4-D image batches in the channels-last layout), runs under
:func:`torch.inference_mode` and, on GPUs that compute in bfloat16, under autocast; the
outputs are gathered as one float32 CPU tensor.
"""

import torch

from .device import use_amp


def to_device(batch, device):
    """Move a batch (a tensor, or a dict/tuple/list of them) to ``device``."""
    if torch.is_tensor(batch):
        batch = batch.to(device, non_blocking=True)
        if batch.ndim == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


def _context(device):
    amp = use_amp(device)
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp)


def run_batches(fn, batches, n, device):
    """Return ``fn(batch)`` for every batch, stacked as a float32 CPU tensor of ``n`` rows.

    The result is allocated once (no concatenation copy) and outside inference mode, so
    it can feed training (the frozen-prefix cache).
    """
    out, start = None, 0
    for batch in batches:
        with torch.inference_mode(), _context(device):
            result = fn(to_device(batch, device)).float()
            if out is None:
                with torch.inference_mode(False):
                    out = torch.empty((n, *result.shape[1:]), dtype=torch.float32)
            out[start : start + len(result)] = result.cpu()
        start += len(result)
    if start != n:
        raise RuntimeError(f"Expected {n} rows from the batches, got {start}.")
    return out


def probe(fn, preprocessing, device):
    """Run ``fn`` on one blank input and return its output (to learn shapes)."""
    with torch.inference_mode(), _context(device):
        return fn(to_device(preprocessing.example_input(), device)).float()
