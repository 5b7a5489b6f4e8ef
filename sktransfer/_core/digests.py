"""Digests: what names an input's content, a network's weights, and what it computes.

One home for every hash the package keys things by: the activation cache's input keys
and namespaces, the weights a file or pickle checks on loading, the probes' memo.
"""

import hashlib
import types

import torch

__all__ = ["content_digest", "module_digest", "weights_digest"]


def content_digest(*chunks):
    """Hash ``chunks`` (bytes, or anything whose ``str`` names it) to 40 hex digits.

    Each chunk's length goes first, so no two splits of the same bytes collide. The
    modalities make their inputs' content keys with it (``inputs.content_keys()``).
    """
    h = hashlib.blake2b(digest_size=20)
    for chunk in chunks:
        data = chunk if isinstance(chunk, (bytes, memoryview)) else str(chunk).encode()
        h.update(len(data).to_bytes(8, "little"))  # lengths first: no two splits collide
        h.update(data)
    return h.hexdigest()


def _hash_tensors(digest, module):
    for name, tensor in module.state_dict().items():
        data = tensor.detach().cpu().contiguous()
        digest.update(name.encode() + str(data.dtype).encode() + str(tuple(data.shape)).encode())
        digest.update(data.view(-1).view(torch.uint8).numpy().tobytes())


def weights_digest(module):
    """Return the SHA-256 of a module's tensors (parameters and buffers, names included).

    Names the weights only, as files store it to check them on loading; see
    :func:`module_digest` to name what a network computes.
    """
    digest = hashlib.sha256()
    _hash_tensors(digest, module)
    return digest.hexdigest()


def module_digest(module):
    """Return the SHA-256 of a module's structure and tensors: what names its output.

    The tensors are the state dict (parameters and buffers, names included), as
    :func:`weights_digest` hashes them; the
    structure is the module's ``repr`` (layers, strides, padding, activations), the class
    of every submodule and their plain settings (numbers, strings, functions such as a
    transformer layer's activation, which the ``repr`` leaves out). Networks with equal
    weights but another activation, stride or pooling thus get different digests, and
    never share rows; a copy of a network (``copy.deepcopy``, a clone's backbone, the
    same network loaded again) gets the same one.

    Name a computation by this digest, not by :func:`weights_digest`: that one names the
    weights only (it is stored in files to check them on loading).

    Parameters
    ----------
    module : torch.nn.Module
        A network, or one stage of it (the namespace of a prefix's output then names
        the stages of that prefix only).

    Returns
    -------
    digest : str
        64 hex digits.

    Examples
    --------
    >>> from torch import nn
    >>> conv = nn.Conv2d(3, 4, 3)
    >>> module_digest(nn.Sequential(conv, nn.ReLU())) == module_digest(
    ...     nn.Sequential(conv, nn.Tanh()))
    False
    """
    digest = hashlib.sha256()
    structure = _structure(module).encode()
    digest.update(len(structure).to_bytes(8, "little") + structure)
    _hash_tensors(digest, module)
    return digest.hexdigest()


def _structure(module):
    """Describe what a module computes besides its tensors, in a text stable across copies."""
    lines = [repr(module)]
    for name, sub in module.named_modules(remove_duplicate=False):
        kind = type(sub)
        settings = (
            (attr, _setting(value))
            for attr, value in sorted(vars(sub).items())
            if not attr.startswith("_") and attr != "training"  # eval mode is always used
        )
        settings = ", ".join(f"{attr}={text}" for attr, text in settings if text is not None)
        lines.append(f"{name}: {kind.__module__}.{kind.__qualname__}({settings})")
    return "\n".join(lines)


_PLAIN = (bool, int, float, complex, str, bytes, type(None), torch.dtype)
_FUNCTIONS = (types.FunctionType, types.BuiltinFunctionType, types.MethodType)


def _setting(value):
    """Return the text of a plain setting (number, string, function...); None otherwise."""
    if isinstance(value, _PLAIN):
        return repr(value)
    if isinstance(value, (tuple, list)):
        parts = [_setting(item) for item in value]
        return None if None in parts else f"{type(value).__name__}({', '.join(parts)})"
    if isinstance(value, _FUNCTIONS):  # by name: an address would differ in every process
        function = getattr(value, "__func__", value)
        return f"{getattr(function, '__module__', None)}.{function.__qualname__}"
    return None
