"""The inference engine: the one place a forward pass that needs no gradient is compiled.

Extraction, the frozen stages of fine-tuning, the transferability scores and the frozen
part of prediction hand their forward function to :func:`frozen_forward` and call what it
returns as they would call the function. What runs it is the ``engine`` setting
(:func:`sktransfer.set_config`):

- ``"torch"``: the function itself, eager PyTorch (channels-last on 4-D inputs).
- ``"openvino"``: the function traced once and compiled by OpenVINO for the CPU, with a
  dynamic batch size (and a dynamic sequence length for token inputs), so that the last
  short batch and texts of any length reuse the compiled network.
- ``"auto"`` (the default): OpenVINO on a CPU when it is installed and the pass has at
  least :data:`AUTO_MIN_ROWS` rows (conversion costs seconds to a minute) or the network is
  already converted; PyTorch otherwise, and always on GPUs.

A converted network is used only after it agrees with the eager function on the first
real batch (and on the traced example): relative difference at most :data:`TOLERANCE` in
fp32, row cosine at least :data:`BF16_MIN_COSINE` in bf16. When it does not, or when
conversion fails, ``"auto"`` warns once (:class:`~sktransfer.exceptions.EngineWarning`,
saying why) and runs PyTorch; ``"openvino"`` raises. Compiled networks are kept per
process (the last :data:`CACHE_SIZE`), keyed by what the caller names (weights and
architecture digests, the input pipeline, the layer) and the input signature; with
``engine_disk_cache`` also under ``models_folder``.
"""

import functools
import hashlib
import threading
import warnings
from collections import OrderedDict

import torch

from .._config import get_config
from ..exceptions import EngineWarning

try:
    import openvino
except ImportError:  # the library runs every pass in PyTorch, exactly as before
    openvino = None

__all__ = ["AUTO_MIN_ROWS", "COMPILED", "FrozenForward", "engine_available", "frozen_forward"]

#: Rows a pass needs before ``engine="auto"`` converts a network it has not converted yet.
AUTO_MIN_ROWS = 256
#: Largest relative difference (to the eager output's largest magnitude) accepted in fp32.
TOLERANCE = 1e-4
#: Smallest cosine between a converted network's rows and the eager ones accepted in bf16.
BF16_MIN_COSINE = 0.999
#: Compiled networks kept per process.
CACHE_SIZE = 16


def engine_available():
    """Whether OpenVINO can be imported here."""
    return openvino is not None


class _Compiled:
    """A compiled OpenVINO network called on batches shaped like the traced function's."""

    def __init__(self, compiled, names, structure):
        self.compiled = compiled
        self.names = names  # the input dict's keys, or None for one tensor
        self.structure = structure  # how to rebuild the function's output
        self._local = threading.local()  # one infer request per thread

    def __call__(self, batch):
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        tensors = _inputs(batch, self.names)
        request.infer([t.contiguous().numpy() for t in tensors], share_inputs=True)
        outputs = [
            torch.from_numpy(request.get_output_tensor(i).data.copy())
            for i in range(len(self.compiled.outputs))
        ]
        return _rebuild(outputs, self.structure)


class _Cache:
    """Compiled networks by key (``None`` remembers a network that must run in torch)."""

    def __init__(self, maxsize):
        self.maxsize = maxsize
        self._items = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key):
        return key in self._items

    def get(self, key):
        with self._lock:
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key, value):
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def knows(self, name):
        """Whether a network named ``name`` (the caller's key) was compiled or tried."""
        with self._lock:
            return any(key[0] == name for key in self._items)

    def clear(self):
        """Forget every compiled network."""
        with self._lock:
            self._items.clear()


#: The process's compiled networks.
COMPILED = _Cache(CACHE_SIZE)


def _inputs(batch, names):
    if names is None:
        return [batch]
    return [batch[name] for name in names]


def _flatten(out):
    """Return ``(tensors, structure)`` for an output: a tensor, a dict or a tuple of them."""
    if torch.is_tensor(out):
        return [out], None
    if isinstance(out, dict):
        keys = list(out)
        return [out[key] for key in keys], ("dict", keys)
    return list(out), ("tuple", len(out))


def _rebuild(tensors, structure):
    if structure is None:
        return tensors[0]
    if structure[0] == "dict":
        return dict(zip(structure[1], tensors, strict=True))
    return tuple(tensors)


class _Traceable(torch.nn.Module):
    """``fn`` as a module of positional tensors returning a tuple (what tracing needs)."""

    def __init__(self, fn, names):
        super().__init__()
        self.fn = fn
        self.names = names

    def forward(self, *tensors):
        batch = tensors[0] if self.names is None else dict(zip(self.names, tensors, strict=True))
        return tuple(_flatten(self.fn(batch))[0])


def _shape(tensor):
    """Return the input's shape family: a dynamic batch; dynamic lengths for sequences.

    Token ids and masks (integers) are dynamic in every dimension; token states
    ``(n, length, width)`` in all but the width; images and vectors only in the batch.
    """
    dims = [-1] * tensor.ndim
    if tensor.is_floating_point():
        static = 2 if tensor.ndim == 3 else 1
        dims[static:] = tensor.shape[static:]
    return dims


def _signature(example):
    names = sorted(example) if isinstance(example, dict) else None
    return names, tuple((str(t.dtype), tuple(_shape(t))) for t in _inputs(example, names))


def _core_config(precision):
    threads = torch.get_num_threads()
    return {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads,
    }


@functools.cache
def bf16_supported():
    """Whether this CPU computes in bfloat16 natively (as OpenVINO reports it)."""
    if openvino is None:
        return False
    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "BF16" in capabilities


def _convert(fn, example, names, precision, disk_path):
    """Trace ``fn`` on ``example`` and compile it; return a :class:`_Compiled`."""
    core = openvino.Core()
    with torch.no_grad(), torch.inference_mode(False), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing's own deprecation and constant warnings
        tensors = [t.clone() for t in _inputs(example, names)]
        structure = _flatten(fn(example))[1]
        if disk_path is not None and disk_path.exists():
            model = core.read_model(disk_path)
        else:
            shapes = [
                (openvino.PartialShape(_shape(t)), openvino.Type.i64 if not t.is_floating_point()
                 else openvino.Type.f32)
                for t in tensors
            ]  # fmt: skip
            model = openvino.convert_model(
                _Traceable(fn, names).eval(), example_input=tuple(tensors), input=shapes
            )
            if disk_path is not None:
                _save(model, disk_path)
    compiled = core.compile_model(model, "CPU", _core_config(precision))
    return _Compiled(compiled, names, structure)


def _save(model, path):
    """Write the converted network (weights in fp32) atomically: no half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.xml")
    openvino.save_model(model, partial, compress_to_fp16=False)
    partial.with_suffix(".bin").replace(path.with_suffix(".bin"))
    partial.replace(path)


def _disagreement(expected, got, precision):
    """Why ``got`` does not match ``expected`` (None when it does)."""
    expected, _ = _flatten(expected)
    got, _ = _flatten(got)
    for want, have in zip(expected, got, strict=True):
        if tuple(want.shape) != tuple(have.shape):
            return f"output shape {tuple(have.shape)} instead of {tuple(want.shape)}"
        if not want.is_floating_point():
            if not torch.equal(want.cpu(), have.to(want.dtype)):
                return "integer outputs differ"
            continue
        want, have = want.float().cpu().flatten(1), have.float().flatten(1)
        if precision == "bf16":
            cosine = torch.nn.functional.cosine_similarity(want, have, dim=1).min().item()
            if not cosine >= BF16_MIN_COSINE:
                return f"row cosine {cosine:.6f} < {BF16_MIN_COSINE}"
            continue
        scale = want.abs().max().clamp_min(1e-12)
        relative = ((want - have).abs().max() / scale).item()
        if not relative <= TOLERANCE:
            return f"relative difference {relative:.2e} > {TOLERANCE:g}"
    return None


class FrozenForward:
    """A frozen forward pass, run by the configured engine; called like the function.

    Made by :func:`frozen_forward`. The first call decides (and, where OpenVINO runs it,
    converts and checks); ``engine_`` then says what ran: ``"torch"`` or ``"openvino"``.
    ``channels_last`` tells :func:`~sktransfer._core.inference.run_batches` the layout the
    batches should come in.
    """

    def __init__(self, fn, key, example, engine, precision, strict=False):
        self.fn = fn
        self.strict = strict  # engine="openvino" asked for: a failure raises
        self.key = key
        self.example = example
        self.engine = engine
        self.precision = precision
        self.engine_ = None
        self._compiled = None

    @property
    def channels_last(self):
        return self.engine == "torch" or self.engine_ == "torch"

    def __call__(self, batch):
        if self.engine_ is None:
            return self._first(batch)
        if self._compiled is None:
            return self.fn(_channels_last(batch))
        return self._compiled(batch)

    def _first(self, batch):
        if self.engine == "torch":
            self.engine_ = "torch"
            return self.fn(_channels_last(batch))
        names, signature = _signature(self.example)
        key = (self.key, signature, self.precision, torch.get_num_threads())
        if key in COMPILED:
            self._compiled = COMPILED.get(key)
            if self._compiled is None and self.strict:
                raise RuntimeError(
                    "engine='openvino' cannot run this network: an earlier attempt in this "
                    "process failed (its warning said why)."
                )
            self.engine_ = "torch" if self._compiled is None else "openvino"
            return self(batch)
        expected = self.fn(_channels_last(batch))
        self._compiled, why = self._converted(names, key, batch, expected)
        COMPILED.put(key, self._compiled)
        self.engine_ = "torch" if self._compiled is None else "openvino"
        if why is not None:
            if self.strict:
                raise RuntimeError(f"engine='openvino' cannot run this network: {why}.")
            warnings.warn(
                f"The OpenVINO engine was not used for this network ({why}); it runs in "
                "PyTorch. Set sktransfer.set_config(engine='torch') to skip the attempt.",
                EngineWarning,
                stacklevel=3,
            )
        return expected

    def _converted(self, names, key, batch, expected):
        """Return ``(compiled or None, why not)``, checked on ``batch`` and the example."""
        try:
            compiled = _convert(self.fn, self.example, names, self.precision, _disk_path(key))
        except Exception as error:  # noqa: BLE001 - any conversion failure falls back
            return None, f"conversion failed: {type(error).__name__}: {error}"
        why = _disagreement(expected, compiled(batch), self.precision)
        if why is None:
            with torch.no_grad():
                example = self.fn(_channels_last(self.example))
            why = _disagreement(example, compiled(self.example), self.precision)
        return (compiled, None) if why is None else (None, f"it disagrees with PyTorch: {why}")


def _channels_last(batch):
    if torch.is_tensor(batch) and batch.ndim == 4:
        return batch.contiguous(memory_format=torch.channels_last)
    return batch


def _disk_path(key):
    config = get_config()
    if not config["engine_disk_cache"]:
        return None
    digest = hashlib.sha256(repr((key, openvino.__version__)).encode()).hexdigest()[:32]
    return config["models_folder"] / "engine" / f"{digest}.xml"


def _engine(device, n_rows, key):
    """Return the engine for a pass of ``n_rows`` on ``device``: "torch" or one to try."""
    config = get_config()
    engine = config["engine"]
    if engine == "openvino" and openvino is None:
        raise ImportError(
            "engine='openvino' was asked for, but OpenVINO is not installed: "
            "pip install openvino (or set engine='auto')."
        )
    if engine == "torch" or torch.device(device).type != "cpu" or openvino is None:
        return "torch"
    if engine == "auto" and n_rows < AUTO_MIN_ROWS and not COMPILED.knows(key):
        return "torch"
    return "openvino"


def frozen_forward(fn, *, key, example, device, n_rows):
    """Return ``fn`` as the configured engine runs it (see the module's description).

    Parameters
    ----------
    fn : callable
        The forward pass: a batch (a tensor, or a dict of tensors) to a tensor, a dict or
        a tuple of tensors. It must need no gradient and depend on nothing but its input.
    key : hashable
        Names everything ``fn`` computes with: digests of the weights and architecture,
        the input pipeline, the layer and pooling. Equal keys must mean equal functions.
    example : tensor or dict of tensors
        A small input batch to trace with (a few rows; for token inputs, with padding).
    device : torch.device
        Where the batches are; OpenVINO runs only on CPUs.
    n_rows : int
        How many rows the pass will compute (``"auto"`` converts for enough of them).

    Returns
    -------
    forward : FrozenForward
    """
    config = get_config()
    engine = _engine(device, n_rows, key)
    precision = config["inference_precision"]
    if engine == "openvino" and precision == "bf16" and not bf16_supported():
        warnings.warn(
            "inference_precision='bf16' needs a CPU with bfloat16 instructions; this one "
            "has none, so the network runs in fp32.",
            EngineWarning,
            stacklevel=2,
        )
        precision = "fp32"
    return FrozenForward(fn, key, example, engine, precision, config["engine"] == "openvino")
