"""Where a backbone spec's network comes from: one table of sources.

A source is a name, a test that says whether a spec string belongs to it, and a builder
``build(spec, weights) -> dict`` that returns the fields of a
:class:`~sktransfer.Backbone`. The first source whose test accepts the spec builds it;
:func:`register_source` adds one (a new modality's networks, a model zoo of your own)
before the built-in ones.

========================= ============================== ===============================
source                    specs                          weights
========================= ============================== ===============================
``bundled``               ``efficientnet_lite0..2``      inside a package (offline)
``text``                  ``all-MiniLM-L6-v2``,          the bundled package, a model
                          ``hf:<name or folder>``        folder or the hub cache
``timm``                  ``timm:<name>``                the hub cache (timm's)
``torchvision``           torchvision model names        ``$TORCH_HOME/hub/checkpoints``
========================= ============================== ===============================
"""

from torchvision import models

from . import _text_models, _vision

__all__ = [
    "DEFAULT_BACKBONE",
    "build",
    "build_module",
    "known_names",
    "register_source",
    "source_state",
]

DEFAULT_BACKBONE = _vision.BUNDLED[0]

build_module = _vision.build_module


def _torchvision_names():
    return models.list_models(module=models)


# name, whether a spec belongs to it, builder, the names it lists for suggestions
_BUILT_IN = (
    ("bundled", lambda spec: spec in _vision.BUNDLED, _vision.bundled, lambda: _vision.BUNDLED),
    ("text", _text_models.is_text_spec, _text_models.build_text,
     lambda: _text_models.TEXT_BUNDLED),
    ("timm", lambda spec: spec.startswith("timm:"), _vision.timm_model, tuple),
    ("torchvision", lambda spec: spec in _torchvision_names(), _vision.torchvision_model,
     _torchvision_names),
)  # fmt: skip

_REGISTERED = []  # sources added by register_source, searched first


def register_source(prefix, build):
    """Add a source of networks for the specs ``"<prefix>:<name>"``.

    Parameters
    ----------
    prefix : str
        Names the source; specs that start with ``prefix + ":"`` are built by ``build``.
    build : callable
        ``build(spec, weights)`` returns the fields of a :class:`~sktransfer.Backbone`
        as a dict (``name``, ``net``, ``preprocessing``, ``num_features``, and
        optionally ``head``, ``layer_groups``, ``spec``, ``weights``). ``weights`` is
        ``"DEFAULT"``, None (random initialisation: the loader seeds it) or a
        checkpoint path.

    Notes
    -----
    A saved model whose backbone comes from a registered source loads in a process
    that registered the same source; elsewhere loading says which source is missing.
    """
    if not isinstance(prefix, str) or not prefix.isidentifier():
        raise ValueError(f"prefix must be a name such as 'audio'; got {prefix!r}.")
    if not callable(build):
        raise TypeError("build must be a callable build(spec, weights) -> dict.")
    _REGISTERED[:] = [entry for entry in _REGISTERED if entry[0] != prefix]
    _REGISTERED.append((prefix, lambda spec: spec.startswith(f"{prefix}:"), build, tuple))


def source_state(spec):
    """Return a stamp of what a spec's files look like now (None: they cannot change)."""
    return _text_models.folder_state(spec)


def known_names():
    """Every name :func:`~sktransfer.load_backbone` accepts without a prefix."""
    return [name for *_, names in _BUILT_IN for name in names()]


def build(spec, weights):
    """Return the fields of a fresh :class:`~sktransfer.Backbone` for a string spec."""
    for _, accepts, builder, _ in (*_REGISTERED, *_BUILT_IN):
        if accepts(spec):
            fields = builder(spec, weights)
            return {"spec": spec, "weights": weights, **fields}
    prefix = spec.split(":", 1)[0] if ":" in spec else None
    if prefix is not None and prefix not in ("timm", "hf"):
        raise ValueError(
            f"Unknown backbone source {prefix!r} in {spec!r}: register it with "
            "sktransfer.backbones.register_source in this process first."
        )
    raise ValueError(
        f"Unknown backbone {spec!r}.{_vision.suggest(spec, known_names())} Use "
        f"'efficientnet_lite0' (bundled, works offline), a torchvision model name such as "
        f"'resnet18', 'timm:<name>' for any timm model, or a torch.nn.Module."
    )
