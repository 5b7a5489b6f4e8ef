"""Weight files: the local caches, offline mode, one quick download, and user checkpoints.

Pretrained weights are looked up in the cache their library uses (``$TORCH_HOME/hub/
checkpoints`` for torchvision, the Hugging Face hub cache for timm) without the network.
A missing file fails at once in offline mode; otherwise one download is tried, with a short
timeout and no retries, and its failure names the exact file and the folder it belongs in.
"""

import hashlib
import http.client
import os
import urllib.request
from pathlib import Path

import torch

from .._config import get_config
from .._core.files import atomic_write
from ..exceptions import WeightsUnavailableError

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
# Seconds a connection may stay silent before the download is given up.
DOWNLOAD_TIMEOUT = 10


def is_offline():
    """Tell whether downloads must not be attempted.

    ``sktransfer.set_config(offline=True)`` (by default ``SKTRANSFER_OFFLINE=1`` or
    ``HF_HUB_OFFLINE=1``) on machines without internet: a missing weight file then fails
    at once with a clear message instead of waiting for a connection.
    """
    return get_config()["offline"]


def is_checkpoint_path(weights):
    """Whether ``weights`` names a local checkpoint file rather than a weight tag."""
    if isinstance(weights, os.PathLike):
        return True
    return isinstance(weights, str) and (
        weights.lower().endswith(CHECKPOINT_SUFFIXES) or os.sep in weights
    )


def _unavailable(model_name, hint, exc=None):
    if exc is None:
        return WeightsUnavailableError(
            f"Pretrained weights for {model_name!r} are not cached and offline mode is on "
            f"(SKTRANSFER_OFFLINE/HF_HUB_OFFLINE). {hint}"
        )
    return WeightsUnavailableError(
        f"Pretrained weights for {model_name!r} are not cached on this machine and could "
        f"not be downloaded ({type(exc).__name__}: {exc}). {hint}"
    )


def _download(url, path):
    """Fetch ``url`` into ``path`` in one attempt: whole and checked, or not at all."""
    # torchvision's file names end with the first hex digits of their SHA-256, as torch.hub
    # checks them; a file in the cache is trusted from then on, so check it before.
    expected = torch.hub.HASH_REGEX.search(os.path.basename(url))
    digest = hashlib.sha256()
    with (
        urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response,
        atomic_write(path) as file,
    ):
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            file.write(chunk)
        if expected and not digest.hexdigest().startswith(expected.group(1)):
            raise ValueError(
                f"the file arrived damaged: its SHA-256 does not start with {expected.group(1)}"
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
        raise _unavailable(model_name, hint)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _download(url, path)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # urllib, ssl, socket
        raise _unavailable(model_name, hint, exc) from exc
    return path


# The safetensors variants timm looks for first (the rest: same name, other ending).
_SAFE_NAMES = {
    "pytorch_model.bin": "model.safetensors",
    "open_clip_pytorch_model.bin": "open_clip_model.safetensors",
}


def _weight_file_names(filename):
    """List the file names to look for, the safetensors variant first, as timm does."""
    if not filename.endswith(".bin"):
        return [filename]
    return [_SAFE_NAMES.get(filename, f"{filename[:-4]}.safetensors"), filename]


def hub_checkpoint(repo_id, filename, model_name):
    """Path of a weight file of a Hugging Face repository, from the hub cache if it is there.

    Parameters
    ----------
    repo_id : str
        The repository, ``"owner/name"`` or ``"owner/name@revision"``.
    filename : str
        The weight file timm names; its ``.safetensors`` variant is preferred.
    model_name : str
        The backbone spec, for messages.

    Returns
    -------
    pathlib.Path
        The cached file.

    Raises
    ------
    WeightsUnavailableError
        Not cached, and offline mode is on or the one download attempt failed; the message
        names the repository, the file and the cache folder.
    """
    from huggingface_hub import constants, try_to_load_from_cache

    repo, _, revision = repo_id.partition("@")
    revision = revision or None
    names = _weight_file_names(filename)
    for name in names:
        found = try_to_load_from_cache(repo, name, revision=revision)  # no network
        if isinstance(found, str):
            return Path(found)
    cache = constants.HF_HUB_CACHE
    hint = (
        f"timm loads them from the Hugging Face repository {repo_id!r} (file "
        f"{' or '.join(names)}), which is not in the hub cache {cache} (set HF_HUB_CACHE or "
        f"HF_HOME to move it). Load the backbone once on a machine with internet and copy "
        f"its folder models--{repo.replace('/', '--')} into {cache}, or pass "
        f"weights='path/to/model.safetensors', or weights=None for random initialisation."
    )
    if is_offline():
        raise _unavailable(model_name, hint)
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.utils import EntryNotFoundError

    for name in names:
        try:
            # One request without retries: an unreachable hub fails in seconds, not minutes.
            url = hf_hub_url(repo, name, revision=revision)
            get_hf_file_metadata(url, timeout=DOWNLOAD_TIMEOUT)
        except EntryNotFoundError:
            continue  # the repository has no file of this name: try the next one
        except Exception as exc:  # network, HTTP and authentication errors alike
            raise _unavailable(model_name, hint, exc) from exc
        try:
            return Path(
                hf_hub_download(repo, name, revision=revision, etag_timeout=DOWNLOAD_TIMEOUT)
            )
        except Exception as exc:
            raise _unavailable(model_name, hint, exc) from exc
    raise WeightsUnavailableError(
        f"The Hugging Face repository {repo_id!r} has no weight file {' or '.join(names)} "
        f"for {model_name!r}; pass weights='path/to/model.safetensors' or weights=None."
    )


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
