"""The one batched forward loop: extraction, the frozen-prefix cache and prediction use it.

Batches come from a backbone's input pipeline (``preprocessing.batches``): tensors, or
dicts/tuples of tensors for modalities whose inputs have several parts. Each batch moves
to the device (4-D image batches in the channels-last layout), runs under
:func:`torch.inference_mode` and, on GPUs that compute in bfloat16, under autocast; the
outputs are gathered as one float32 CPU tensor.
"""

from collections import OrderedDict

import torch

from .device import use_amp


class ProbeCache:
    """What probing learnt (output widths, row sizes), by the name of what was probed.

    One per process (:data:`PROBES`), bounded: the last ``maxsize`` answers are kept.
    """

    def __init__(self, maxsize=64):
        self.maxsize = maxsize
        self._answers = OrderedDict()

    def get(self, key, learn):
        """Return the answer for ``key``, calling ``learn()`` the first time."""
        if key in self._answers:
            self._answers.move_to_end(key)
            return self._answers[key]
        value = self._answers[key] = learn()
        if len(self._answers) > self.maxsize:
            self._answers.popitem(last=False)
        return value

    def clear(self):
        """Forget every answer."""
        self._answers.clear()


PROBES = ProbeCache()


def to_device(batch, device, channels_last=True):
    """Move a batch (a tensor, or a dict/tuple/list of them) to ``device``."""
    if torch.is_tensor(batch):
        batch = batch.to(device, non_blocking=True)
        if batch.ndim == 4 and channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, dict):
        return {key: to_device(value, device, channels_last) for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(value, device, channels_last) for value in batch)
    return batch


def _context(device):
    amp = use_amp(device)
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp)


def _as_float(out):
    """Floating outputs as float32 (dicts of stage outputs keep their integer masks)."""
    if isinstance(out, dict):
        return {key: _as_float(value) for key, value in out.items()}
    return out.float() if out.is_floating_point() else out


def _allocate(result, n):
    if isinstance(result, dict):
        return {key: _allocate(value, n) for key, value in result.items()}
    return torch.empty((n, *result.shape[1:]), dtype=result.dtype)


def _put(out, rows, start):
    if isinstance(out, dict):
        for key in out:
            _put(out[key], rows[key], start)
    else:
        out[start : start + len(rows)] = rows.cpu()


def take_rows(out, indices):
    """Rows ``indices`` of an output (a tensor, or a dict of tensors)."""
    if isinstance(out, dict):
        return {key: take_rows(value, indices) for key, value in out.items()}
    return out[indices]


def n_rows(out):
    """Count the rows of an output (a tensor, or a dict of tensors)."""
    return len(next(iter(out.values()))) if isinstance(out, dict) else len(out)


def run_batches(fn, batches, n, device):
    """Return ``fn(batch)`` for every batch, stacked as CPU tensors of ``n`` rows.

    Floating outputs come back as float32; an output that is a dict (a text stage's
    ``{"hidden", "mask"}``) comes back as a dict of stacked tensors. The result is
    allocated once (no concatenation copy) and outside inference mode, so it can feed
    training (the frozen-prefix cache). Batches that come in another order than the
    inputs (texts sorted by length) say so with an ``order`` attribute, and the rows are
    put back in the input order.
    """
    out, start = None, 0
    for batch in batches:
        with torch.inference_mode(), _context(device):
            # an engine's compiled network takes plain (NCHW) batches: it says so
            batch = to_device(batch, device, getattr(fn, "channels_last", True))
            result = _as_float(fn(batch))
            if out is None:
                with torch.inference_mode(False):
                    out = _allocate(result, n)
            _put(out, result, start)
        start += n_rows(result)
    if start != n:
        raise RuntimeError(f"Expected {n} rows from the batches, got {start}.")
    order = getattr(batches, "order", None)
    if order is None:
        return out
    inverse = torch.empty(n, dtype=torch.long)
    inverse[torch.as_tensor(order)] = torch.arange(n)
    return take_rows(out, inverse)


def probe(fn, preprocessing, device):
    """Run ``fn`` on one blank input and return its output (to learn shapes)."""
    with torch.inference_mode(), _context(device):
        return _as_float(fn(to_device(preprocessing.example_input(), device)))


def memoized_probe(key, learn):
    """Return ``learn()``, computed once per ``key`` in the process (the last 64 are kept).

    For what a probe learns (output widths, row sizes): ``key`` must name everything the
    answer depends on, such as the weights and architecture digests and the input
    pipeline, so that the many fits of a search probe a network once.
    """
    return PROBES.get(key, learn)


def nbytes(out):
    """Bytes of an output (a tensor, or a dict of tensors)."""
    if isinstance(out, dict):
        return sum(nbytes(value) for value in out.values())
    return out.numel() * out.element_size()
