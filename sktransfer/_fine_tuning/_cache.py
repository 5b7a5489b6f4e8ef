"""The frozen-prefix cache: the output of the leading frozen stages, computed once per fit.

Without augmentation the frozen stages compute the same thing every epoch, so fine-tuning
runs them once over the training inputs and trains the rest on their output. The cache
is bounded by the estimator's ``cache_size``; it gives the same losses as running the
whole network every epoch, up to float rounding.
"""

import torch

from .._core.inference import nbytes, probe, run_batches
from ..backbones._optimize import fold_batchnorm, has_batchnorm

# On a CPU the cache pass runs a copy of the frozen stages with BatchNorm folded into the
# convolutions (about 1.4x faster at 224 px) when it covers this many inputs: folding
# costs about as much as one pass over a few dozen.
FOLD_MIN_INPUTS = 128


def frozen_prefix_outputs(prefix, n_inputs, preprocessing, batches, device, max_bytes):
    """Run ``prefix`` once over the inputs; None when the output would exceed ``max_bytes``.

    Parameters
    ----------
    prefix : torch.nn.Module
        The leading frozen stages (eval mode).
    n_inputs : int
        Number of inputs ``batches`` yields.
    preprocessing : input pipeline
        The backbone's, to probe the output size.
    batches : iterable
        The inputs' batches, unaugmented, all of one shape (consumed only if the cache
        fits).
    device : torch.device
        Where the prefix runs.
    max_bytes : int
        The memory the cache may take.

    Returns
    -------
    torch.Tensor, dict of torch.Tensor, or None
        On the CPU, ``n_inputs`` rows, in the inputs' order.
    """
    prefix.eval()
    row = probe(prefix, preprocessing, device)
    if nbytes(row) * n_inputs > max_bytes:
        return None
    if device.type == "cpu" and n_inputs >= FOLD_MIN_INPUTS and has_batchnorm(prefix):
        # a folded copy, checked against the original on random input drawn from a
        # forked RNG (the training's random stream stays that of the uncached path)
        with torch.random.fork_rng(devices=[]):
            example = preprocessing.example_input(2, random=True)
            prefix = fold_batchnorm(prefix, example).to(memory_format=torch.channels_last)
    return run_batches(prefix, batches, n_inputs, device)
