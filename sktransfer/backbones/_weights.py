"""Weight files: the local cache, offline mode, downloads, and user checkpoints."""

import os
import tempfile
from pathlib import Path

import torch

from ..exceptions import WeightsUnavailableError

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


def is_offline():
    """Tell whether downloads must not be attempted.

    Set ``SKTRANSFER_OFFLINE=1`` (``HF_HUB_OFFLINE=1`` is honoured too) on machines without
    internet: a missing weight file then fails at once with a clear message instead of
    waiting for a connection.
    """
    flags = (os.environ.get("SKTRANSFER_OFFLINE"), os.environ.get("HF_HUB_OFFLINE"))
    return any(f not in (None, "", "0", "false", "False") for f in flags)


def is_checkpoint_path(weights):
    """Whether ``weights`` names a local checkpoint file rather than a weight tag."""
    if isinstance(weights, os.PathLike):
        return True
    return isinstance(weights, str) and (
        weights.lower().endswith(CHECKPOINT_SUFFIXES) or os.sep in weights
    )


def torch_checkpoint(url, model_name):
    """Path of the cached copy of ``url`` under ``$TORCH_HOME``, downloading it if allowed."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    path = folder / os.path.basename(url)
    if path.exists():
        return path
    hint = (
        f"Download {url} and save it as {path} (the folder is $TORCH_HOME/hub/checkpoints; "
        f"set TORCH_HOME to move it), or pass weights='path/to/file.pth', "
        f"or weights=None for random initialisation."
    )
    if is_offline():
        raise WeightsUnavailableError(
            f"Pretrained weights for {model_name!r} are not cached and offline mode is on "
            f"(SKTRANSFER_OFFLINE/HF_HUB_OFFLINE). {hint}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    # Download to a temporary name first: an interrupted download leaves nothing behind.
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".partial")
    os.close(fd)
    try:
        torch.hub.download_url_to_file(url, tmp, progress=False)
        os.replace(tmp, path)
    except Exception as exc:  # urllib, ssl and socket errors all mean the same here
        raise WeightsUnavailableError(
            f"Pretrained weights for {model_name!r} are not cached on this machine and "
            f"could not be downloaded ({type(exc).__name__}: {exc}). {hint}"
        ) from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_state_dict(path):
    """Read a ``.safetensors`` or torch checkpoint file as a flat state dict.

    Checkpoints that wrap the weights (``{"state_dict": ...}``, ``{"model": ...}``) and
    keys saved from ``DataParallel`` (``module.`` prefix) are unwrapped. Torch files are
    read with ``weights_only=True``: no pickled code runs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"Could not read checkpoint {path}: {exc}") from exc
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"Checkpoint {path} does not hold a state dict of tensors.")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_checkpoint(model, path, model_name):
    """Load a user checkpoint into ``model`` (the full architecture, head included)."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    # A checkpoint saved without its classification head is fine: the head is replaced.
    if unexpected or len(missing) > 2:
        raise ValueError(
            f"Checkpoint {path} does not match the architecture {model_name!r}: "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})."
        )
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise ValueError(
                f"Checkpoint {path} does not match {model_name!r}: {key} has shape "
                f"{tuple(value.shape)}, the architecture expects {tuple(own[key].shape)}."
            )
    model.load_state_dict(state, strict=False)
    return model
