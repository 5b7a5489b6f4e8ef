"""Process-wide settings: :func:`set_config`, :func:`config_context`, :func:`get_config`.

Every switch that is not an estimator's parameter lives here, and this is the one module
that reads environment variables: an unset setting (``None``) takes its value from the
environment when it is read, so that a variable exported before a run (or in a Dask
worker's environment) still works. No estimator parameter changes what another estimator
sees.

- ``offline``: never download weights or models; a missing file fails at once, naming
  it. Default: ``SKTRANSFER_OFFLINE`` or ``HF_HUB_OFFLINE`` set (and not "0").
- ``models_folder``: where the bundled text models are unpacked. Default:
  ``SKTRANSFER_HOME``, else ``$XDG_CACHE_HOME/sktransfer``, else ``~/.cache/sktransfer``.
- ``shared_cache_size``: MiB of computed rows the process keeps for every estimator (0
  turns the store off). Default: 1024.
- ``debug``: the command line prints tracebacks. Default: ``SKTRANSFER_DEBUG`` set (and
  not "0").
- ``engine``: what runs the forward passes that need no gradient: ``"auto"`` (OpenVINO
  on a CPU when it is installed and agrees with PyTorch), ``"torch"`` or ``"openvino"``.
  Default: ``SKTRANSFER_ENGINE``, else ``"auto"``.
- ``inference_precision``: ``"fp32"`` (results equal to PyTorch's within 1e-4) or
  ``"bf16"`` (faster on CPUs with bfloat16 instructions, less exact). Default: ``"fp32"``.
- ``engine_disk_cache``: keep converted networks in ``models_folder`` so that the next
  process does not convert them again. Default: False.
"""

import math
import os
import threading
from contextlib import contextmanager
from numbers import Real
from pathlib import Path

__all__ = ["config_context", "get_config", "set_config"]

_DEFAULTS = {
    "offline": None,
    "models_folder": None,
    "shared_cache_size": 1024,
    "debug": None,
    "engine": None,
    "inference_precision": "fp32",
    "engine_disk_cache": False,
}
ENGINES = ("auto", "torch", "openvino")
PRECISIONS = ("fp32", "bf16")
_global = dict(_DEFAULTS)
_local = threading.local()


def _flag(*names):
    return any(os.environ.get(name, "") not in ("", "0", "false", "False") for name in names)


def _from_environment(name):
    if name == "offline":
        return _flag("SKTRANSFER_OFFLINE", "HF_HUB_OFFLINE")
    if name == "debug":
        return _flag("SKTRANSFER_DEBUG")
    if name == "models_folder":
        home = os.environ.get("SKTRANSFER_HOME")
        if home:
            return Path(home)
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        return Path(cache) / "sktransfer"
    if name == "engine":
        engine = os.environ.get("SKTRANSFER_ENGINE") or "auto"
        if engine not in ENGINES:
            raise ValueError(
                f"SKTRANSFER_ENGINE must be one of {', '.join(ENGINES)}; got {engine!r}."
            )
        return engine
    raise KeyError(name)


def environment_value(name, default=None):
    """Read an environment variable that describes the process rather than sktransfer.

    For facts such as the C library's allocator settings, which the library must respect
    but does not own; every other variable is a setting of :func:`get_config`.
    """
    return os.environ.get(name, default)


def _thread_config():
    if not hasattr(_local, "config"):
        _local.config = dict(_global)
    return _local.config


def get_config():
    """Return the current settings, with unset ones read from the environment.

    Returns
    -------
    config : dict
        A copy: changing it changes nothing. See :func:`set_config` for the keys.

    Examples
    --------
    >>> import sktransfer
    >>> sktransfer.get_config()["shared_cache_size"]
    1024
    """
    config = dict(_thread_config())
    for name, value in config.items():
        if value is None:
            config[name] = _from_environment(name)
    return config


def _check(name, value):
    if name == "shared_cache_size":
        if (
            isinstance(value, bool)
            or not isinstance(value, Real)
            or not (value >= 0 and math.isfinite(value))
        ):
            raise ValueError(f"shared_cache_size must be a number of MiB >= 0; got {value!r}.")
    elif name in ("engine", "inference_precision"):
        allowed = ENGINES if name == "engine" else PRECISIONS
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}.")
    elif name in ("offline", "debug", "engine_disk_cache"):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False; got {value!r}.")
    elif name == "models_folder":
        if not isinstance(value, (str, os.PathLike)):
            raise ValueError(f"models_folder must be a path; got {value!r}.")
        value = Path(value)
    return value


def set_config(**settings):
    """Change process-wide settings (for this thread and, when set from it, new threads).

    Parameters
    ----------
    offline : bool, optional
        Never download: a missing weight file or model fails at once with a message that
        names it and the folder it belongs in.
    models_folder : str or path, optional
        Where the bundled text models are unpacked.
    shared_cache_size : float, optional
        Size in MiB of the store of computed features and frozen-stage outputs that every
        estimator of the process shares (``0`` turns it off). It has one size for the
        whole process, so no estimator can empty another's rows.
    debug : bool, optional
        The command line prints the whole traceback of an unexpected error.
    engine : {"auto", "torch", "openvino"}, optional
        What runs every forward pass that needs no gradient (extraction, frozen stages,
        scores, prediction's frozen part). ``"auto"`` converts a network to OpenVINO on a
        CPU when OpenVINO is installed, the pass has enough rows to repay the conversion
        (or the network is already converted) and the converted network agrees with
        PyTorch on a probe batch; otherwise PyTorch runs it. ``"openvino"`` always converts
        (an error if it cannot); ``"torch"`` never does. Training always runs in PyTorch.
    inference_precision : {"fp32", "bf16"}, optional
        The converted network's arithmetic. ``"bf16"`` needs a CPU with bfloat16
        instructions (on others it runs in fp32, with a warning).
    engine_disk_cache : bool, optional
        Keep converted networks under ``models_folder`` for the next process.

    A setting given as ``None`` goes back to its default (the environment's value).

    See Also
    --------
    config_context : change settings inside a ``with`` block only.
    get_config : read them.
    """
    unknown = sorted(set(settings) - set(_DEFAULTS))
    if unknown:
        raise TypeError(
            f"Unknown setting(s) {', '.join(unknown)}; the settings are "
            f"{', '.join(sorted(_DEFAULTS))}."
        )
    checked = {
        name: _DEFAULTS[name] if value is None else _check(name, value)
        for name, value in settings.items()
    }
    _thread_config().update(checked)
    if threading.current_thread() is threading.main_thread():
        _global.update(checked)


@contextmanager
def config_context(**settings):
    """Change settings inside a ``with`` block, restoring them on leaving it.

    Parameters
    ----------
    **settings
        As :func:`set_config` takes them.

    Examples
    --------
    >>> import sktransfer
    >>> with sktransfer.config_context(shared_cache_size=0):
    ...     sktransfer.get_config()["shared_cache_size"]
    0
    """
    before = dict(_thread_config())
    set_config(**settings)
    try:
        yield
    finally:
        _thread_config().clear()
        _thread_config().update(before)
        if threading.current_thread() is threading.main_thread():  # only it sets _global
            _global.clear()
            _global.update(before)
