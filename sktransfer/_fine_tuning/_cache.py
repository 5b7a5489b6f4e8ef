"""The frozen-prefix cache: the output of the leading frozen stages, computed once.

Without augmentation the frozen stages compute the same thing every epoch, so fine-tuning
runs them once over the training inputs and trains the rest on their output. The cache
is bounded by the estimator's ``cache_size``; it gives the same losses as running the
whole network every epoch, up to float rounding.

The output also goes to the process's shared activation store
(:mod:`sktransfer._core.activations`), keyed by each input's content and by the weights
of the stages that computed it, so that the folds, candidates and refit of a search run
the frozen stages once per input: a candidate that freezes fewer groups continues from a
shallower stage output left by an earlier one (the deepest output is stored, and, within
half of the store, the shallower ones where a fit that freezes fewer groups would start,
when no larger than an input: see :class:`FrozenStages`), and prediction starts from the
stored output too. Outputs that come in several parts (a text encoder's token states and
mask, whose length follows the batch) are not shared.
"""

from dataclasses import dataclass

import numpy as np
import torch

from .._core.activations import (
    input_keys,
    make_namespace,
    module_digest,
    prefix_rows,
    shared_store_bytes,
)
from .._core.device import use_amp
from .._core.engine import frozen_forward
from .._core.inference import memoized_probe, probe, run_batches, take_rows
from ..backbones import fold_batchnorm, has_batchnorm

# On a CPU the cache pass runs a copy of the frozen stages with BatchNorm folded into the
# convolutions (about 1.4x faster at 224 px) when it covers this many inputs: folding
# costs about as much as one pass over a few dozen.
FOLD_MIN_INPUTS = 128


@dataclass(frozen=True)
class FrozenStages:
    """What the shared store needs to know of the leading frozen stages (probed once).

    Attributes
    ----------
    digests : tuple of str
        The SHA-256 of each stage's weights: the output of the first ``i + 1`` stages is
        named by the first ``i + 1`` digests, so every fit that freezes them names it
        alike.
    row_bytes : tuple of int
        Bytes of one input's output after each stage (float32).
    shareable : tuple of bool
        Whether each stage's output can be stored: a plain tensor (a text encoder's
        ``{"hidden", "mask"}`` is as long as the batch's longest text, so it is not).
    worth_keeping : tuple of bool
        Whether a shallower stage's output is worth storing for the fits that freeze
        less: shareable, where a frozen prefix can end (the next stage has parameters:
        a parameter-free stage such as pooling is frozen with the one before it), and no
        larger than the input itself (the early, wide outputs cost more memory than
        their few stages cost time).
    """

    digests: tuple
    row_bytes: tuple
    shareable: tuple
    worth_keeping: tuple

    @classmethod
    def probe(cls, trunk, n_stages, preprocessing, device):
        """Probe the first ``n_stages`` stages of ``trunk`` on one blank input."""
        prefix = trunk[:n_stages].eval()
        digests = tuple(module_digest(stage) for stage in prefix)

        def learn():
            outputs = []

            def run(x):
                for stage in prefix:
                    x = stage(x)
                    outputs.append(x)
                return x

            probe(run, preprocessing, device)
            row_bytes = tuple(_float32_bytes(out) for out in outputs)
            return row_bytes, tuple(torch.is_tensor(out) for out in outputs)

        key = ("stages", digests, repr(preprocessing), device.type)
        row_bytes, shareable = memoized_probe(key, learn)
        input_bytes = _float32_bytes(preprocessing.example_input())
        ends = [i + 1 < len(trunk) and _has_parameters(trunk[i + 1]) for i in range(n_stages)]
        return cls(
            digests=digests,
            row_bytes=row_bytes,
            shareable=shareable,
            worth_keeping=tuple(
                ok and end and size <= input_bytes
                for ok, end, size in zip(shareable, ends, row_bytes, strict=True)
            ),
        )

    def __len__(self):
        return len(self.digests)

    def namespaces(self, n_inputs, preprocessing, device, shared_bytes):
        """Name the stage outputs to store: the deepest, and shallower ones in half the store.

        Entry ``i`` names the output of the first ``i + 1`` stages, or is None (not
        stored). None when the deepest output cannot be shared; its entry is None when it
        alone exceeds the store.
        """
        if not self.shareable[-1]:
            return None
        names, spent, last = [None] * len(self), 0, len(self) - 1
        for i in reversed(range(len(self))):
            size = self.row_bytes[i] * n_inputs
            if i == last:
                wanted = size <= shared_bytes
            else:
                wanted = self.worth_keeping[i] and spent + size <= shared_bytes // 2
            if wanted:
                names[i], spent = self.namespace(i + 1, preprocessing, device), spent + size
        return names

    def namespace(self, n_stages, preprocessing, device):
        """Return the namespace of the output of the first ``n_stages`` stages."""
        return make_namespace(
            "stage output",
            *self.digests[:n_stages],
            repr(preprocessing),
            device.type,
            use_amp(device),
        )


def _has_parameters(module):
    return any(True for _ in module.parameters())


def _float32_bytes(out):
    if isinstance(out, dict):
        return sum(_float32_bytes(value) for value in out.values())
    return out.numel() * (4 if out.is_floating_point() else out.element_size())


def frozen_prefix_outputs(
    trunk,
    stages,
    inputs,
    batches_of,
    preprocessing,
    device,
    *,
    max_bytes,
    batch_size,
    memory=None,
    for_prediction=False,
):
    """Return the output of the first ``len(stages)`` stages for every input, or None.

    None when that output would take more than ``max_bytes`` (or, with
    ``for_prediction``, when it cannot be shared).

    Parameters
    ----------
    trunk : torch.nn.Sequential
        The backbone's stages.
    stages : FrozenStages
        The leading frozen stages to run, probed.
    inputs : ImageList or TextList
        Checked inputs.
    batches_of : callable
        ``batches_of(inputs)`` yields the unaugmented batches of (a subset of) inputs.
    preprocessing : input pipeline
        The backbone's, to name the outputs.
    device : torch.device
        Where the stages run.
    max_bytes : int
        The memory the output may take.
    batch_size : int
        Rows per forward pass when continuing from a stored stage output.
    memory : str, path-like, joblib.Memory or None, default=None
        A folder that keeps stage outputs across processes.
    for_prediction : bool, default=False
        Return None when the output cannot be shared (prediction then runs the network
        batch by batch instead).

    Returns
    -------
    torch.Tensor, dict of torch.Tensor, or None
        On the CPU, one row per input, in the inputs' order.
    """
    n, n_stages = len(inputs), len(stages)
    if stages.row_bytes[-1] * n > max_bytes:
        return None
    run_stages = _StageRunner(trunk, inputs, batches_of, preprocessing, device, batch_size)
    names, shared_bytes = None, shared_store_bytes()
    if shared_bytes or memory is not None:
        names = stages.namespaces(n, preprocessing, device, shared_bytes)
    if names is None or (names[-1] is None and memory is None):
        return None if for_prediction else run_stages(0, n_stages, None, np.arange(n))
    if names[-1] is None:  # too large for the store: kept in the memory folder only
        names = [None] * (n_stages - 1) + [stages.namespace(n_stages, preprocessing, device)]
        shared_bytes = 0
    keys = input_keys(inputs)
    return prefix_rows(names, keys, run_stages, shared=shared_bytes > 0, memory=memory)


class _StageRunner:
    """``run_stages`` for :func:`~sktransfer._core.activations.prefix_rows`.

    Runs ``trunk[start:stop]`` (eval mode) on the inputs at ``indices``, from the raw
    inputs or from the stored output of the first ``start`` stages; on a CPU, over
    ``FOLD_MIN_INPUTS`` inputs or more, a copy with BatchNorm folded into the convolutions.
    """

    def __init__(self, trunk, inputs, batches_of, preprocessing, device, batch_size):
        self.trunk = trunk
        self.inputs = inputs
        self.batches_of = batches_of
        self.preprocessing = preprocessing
        self.device = device
        self.batch_size = batch_size

    def __call__(self, start, stop, rows, indices):
        segment = self.trunk[start:stop].eval()
        if rows is None:
            whole = len(indices) == len(self.inputs)  # indices are increasing: all, in order
            batches = self.batches_of(self.inputs if whole else self.inputs.take(indices))
        else:
            batches = row_batches(rows, self.batch_size)
        # examples from a forked RNG: the training's random stream stays that of the
        # uncached path
        with torch.random.fork_rng(devices=[]):
            if rows is None:
                example = self.preprocessing.example_input(2, random=True)
            else:
                example = take_rows(rows, slice(0, 2))
        forward = frozen_segment(
            segment, start, self.preprocessing, self.device, len(indices), example
        )
        fold = len(indices) >= FOLD_MIN_INPUTS and has_batchnorm(segment)
        if forward.engine == "torch" and self.device.type == "cpu" and fold:
            # a folded copy, checked against the original on the example
            folded = fold_batchnorm(segment, example).to(memory_format=torch.channels_last)
            forward.fn = folded
        return run_batches(forward, batches, len(indices), self.device)


def frozen_segment(segment, start, preprocessing, device, n_rows, example):
    """Return the frozen stages ``segment`` (from stage ``start``) as the engine runs them."""
    key = ("stages", start, module_digest(segment), repr(preprocessing))
    return frozen_forward(segment, key=key, example=example, device=device, n_rows=n_rows)


class ThenTrainable:
    """A frozen prefix run by the engine, then the rest of the network in PyTorch.

    For prediction without a stored prefix output: batch by batch, so no more than one
    batch of the prefix's output is held.
    """

    def __init__(self, frozen, module, n_frozen):
        self.frozen = frozen
        self.module = module
        self.n_frozen = n_frozen

    @property
    def channels_last(self):
        return self.frozen.channels_last

    def __call__(self, batch):
        out = self.frozen(batch)
        if torch.is_tensor(out) and out.ndim == 4:
            out = out.contiguous(memory_format=torch.channels_last)
        with self.module.starting_at(self.n_frozen):
            return self.module(out)


def row_batches(rows, batch_size):
    """Yield ``rows`` (a tensor or a dict of tensors) in batches of ``batch_size``."""
    n = len(next(iter(rows.values()))) if isinstance(rows, dict) else len(rows)
    for start in range(0, n, batch_size):
        yield take_rows(rows, slice(start, start + batch_size))
