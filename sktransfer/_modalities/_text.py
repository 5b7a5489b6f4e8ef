"""Text inputs, in one place: validation, tokenisation and batching for every estimator.

Accepted ``X``: a list, a 1-D array, a :class:`pandas.Series` or a one-column
:class:`pandas.DataFrame` of ``str``. An empty (or blank) string, a missing text (``None``,
NaN or ``pd.NA``) or a value that is not a string is an error that names its row.

Texts are tokenised once per call, batched by length (similar lengths together, so little
padding is computed) with each batch padded to its own longest text, and the results are
put back in the input order. Texts longer than ``max_length`` tokens are truncated, and
the number of truncated texts is reported in a :class:`UserWarning`: truncation is never
silent.
"""

import os
import re
import warnings
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from functools import lru_cache
from numbers import Integral

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .._core.activations import content_digest
from .._core.progress import progress_bar
from ._base import InputPipeline
from ._images import IMG_EXTENSIONS


class TextList:
    """A validated sequence of texts (the text counterpart of ``images.ImageList``)."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def take(self, indices):
        """Return the texts at ``indices`` as a new TextList."""
        return TextList([self.items[int(i)] for i in indices])

    def content_keys(self):
        """Return one key per text, from its UTF-8 bytes (for caching)."""
        return [content_digest("text", t.encode("utf-8", "surrogatepass")) for t in self.items]


def check_texts(X):
    """Validate text input ``X`` and return a :class:`TextList`.

    Raises
    ------
    ValueError
        Empty input, an empty or missing text or one that is not valid Unicode (the row is
        named), a 2-D container with more than one column, or texts that are evidently the
        names of files or folders (see :func:`refuse_paths`).
    TypeError
        A single string, a dict or a set (no order), or rows that are not strings (the first
        is named).
    """
    if isinstance(X, TextList):
        return X
    if isinstance(X, (str, bytes)):
        raise TypeError("X must be a collection of texts; wrap a single text in a list.")
    if isinstance(X, Mapping):
        raise TypeError(
            f"X is a {type(X).__name__}: a mapping gives its keys, not its values. Pass a list "
            "of texts, such as list(X.values())."
        )
    if isinstance(X, AbstractSet):
        raise TypeError(
            f"X is a {type(X).__name__}: a set has no order, so its rows could not be matched "
            "with labels or outputs. Pass a list of texts (sorted(X) gives a fixed order)."
        )
    if sp.issparse(X):
        raise TypeError("Sparse input is not supported: pass texts, not a sparse matrix.")
    if hasattr(X, "iloc"):  # pandas
        if getattr(X, "ndim", 1) == 2:
            if X.shape[1] != 1:
                raise ValueError(
                    f"A DataFrame of texts must have exactly one column; got {X.shape[1]} columns."
                )
            X = X.iloc[:, 0]
        X = X.to_numpy()
    if isinstance(X, np.ndarray) and X.ndim != 1:
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        else:
            raise ValueError(f"Texts must be a 1-D sequence; got an array of shape {X.shape}.")
    try:
        items = list(X)
    except TypeError:
        raise TypeError(
            f"X must be a list, array or Series of texts; got {type(X).__name__}."
        ) from None
    if not items:
        raise ValueError("No texts: X is empty (0 samples).")
    for i, text in enumerate(items):
        _check_text(i, text)
    items = [str(t) for t in items]
    refuse_paths(items)
    return TextList(items)


def _check_text(i, text):
    """Refuse text ``i`` if it is missing, not a string, blank or not encodable."""
    if text is None or text is pd.NA or (isinstance(text, (float, np.floating)) and text != text):
        raise ValueError(f"Text {i} is missing (None, NaN or pd.NA).")
    if not isinstance(text, str):
        raise TypeError(f"Text {i} is a {type(text).__name__}, not a string: {text!r:.60}")
    if not text.strip():
        raise ValueError(f"Text {i} is empty.")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"Text {i} is not valid Unicode: it holds a lone surrogate "
                f"{text[exc.start]!r} at position {exc.start}, which no tokenizer can encode. "
                "Remove it, or decode the text's bytes with errors='replace'."
            ) from None


# Files that a text is evidently the name of, rather than a text
TABLE_EXTENSIONS = (".csv", ".tsv", ".parquet", ".feather", ".json", ".jsonl", ".xls", ".xlsx")
_READERS = {".parquet": "pd.read_parquet({!r})", ".tsv": "pd.read_csv({!r}, sep='\\t')"}
_PLURALS = {"image file": "image files", "table file": "table files", "folder": "folders"}


def _path_kind(text, alone):
    """``"image file"``, ``"table file"`` or ``"folder"`` if ``text`` names one, else None.

    A bare name (no separator) counts as a folder only when it is the only text: a short
    text such as ``"cat"`` may name a folder of the working directory by chance.
    """
    if len(text) > 4096 or "\n" in text:  # longer than any path: no file system call
        return None
    suffix = os.path.splitext(text)[1].lower()
    if suffix in IMG_EXTENSIONS or suffix in TABLE_EXTENSIONS:
        if not os.path.isfile(text):
            return None
        return "image file" if suffix in IMG_EXTENSIONS else "table file"
    named = alone or "/" in text or os.sep in text
    if named and any(c.isalnum() for c in text) and os.path.isdir(text):
        return "folder"
    return None


def refuse_paths(texts):
    """Refuse texts that are all names of existing folders, image files or table files.

    A text model would embed such names, not what the files hold (an image folder's class
    names are inside every path, so it even seems to learn). One text that is not such a
    name ends the check: ordinary texts cost one ``stat`` call.

    Raises
    ------
    ValueError
        Saying what to pass instead.
    """
    kinds = []
    for text in texts:
        kind = _path_kind(text, alone=len(texts) == 1)
        if kind is None:
            return
        kinds.append(kind)
    first = texts[0]
    if len(texts) == 1:
        what = f"Text 0 is the {kinds[0]} {first!r}"
    else:
        plural = _PLURALS[kinds[0]] if len(set(kinds)) == 1 else "files and folders"
        what = f"All {len(texts)} texts are existing {plural} (the first: {first!r})"
    table = next((t for t, k in zip(texts, kinds, strict=True) if k == "table file"), "texts.csv")
    reader = _READERS.get(os.path.splitext(table)[1].lower(), "pd.read_csv({!r})").format(table)
    advice = (
        "Pass the texts themselves: a list of strings, or the column of a table that holds "
        f"them, such as {reader}['text']."
    )
    if set(kinds) - {"table file"}:
        advice += " For images, use an image backbone such as 'efficientnet_lite0'."
    raise ValueError(
        f"{what}: a text model would embed these names, not what the files hold. {advice}"
    )


@dataclass
class Encoded:
    """Token ids of every text (truncated to ``max_length``), and how many were cut."""

    ids: list
    n_truncated: int


# A long text is tokenised from its first words only, about this many characters per token
# kept, cut before a space (so that the kept words tokenise as in the whole text), and more
# of it only while those words do not fill max_length: a 20 MB text costs what a page costs.
CHARS_PER_TOKEN = 8
_WORD_END = re.compile(r"\S(?=\s)")


def _head(text, n_chars):
    """Return the first words of ``text``, about ``n_chars`` characters, cut before a space.

    The whole text if it is not longer, or has no space to cut at after ``n_chars // 2``.
    """
    if len(text) <= n_chars:
        return text
    ends = [m.end() for m in _WORD_END.finditer(text, n_chars // 2, n_chars + 1)]
    if not ends:
        later = _WORD_END.search(text, n_chars)
        ends = [later.end() if later else len(text)]
    return text[: ends[-1]]


def _tokenize(tokenizer, texts, max_length):
    """Token ids of ``texts`` truncated to ``max_length``, and whether each was cut."""
    options = {"return_attention_mask": False, "return_token_type_ids": False}
    if not getattr(tokenizer, "is_fast", False):  # no overflow rows: lengths, then the cut
        ids = tokenizer(texts, truncation=False, **options)["input_ids"]
        cut = [len(row) > max_length for row in ids]
        long = [i for i, too_long in enumerate(cut) if too_long]
        if long:
            rows = tokenizer([texts[i] for i in long], truncation=True, max_length=max_length)
            for i, row in zip(long, rows["input_ids"], strict=True):
                ids[i] = row
        return ids, cut
    out = tokenizer(
        texts, truncation=True, max_length=max_length, return_overflowing_tokens=True, **options
    )
    ids, cut = [None] * len(texts), [False] * len(texts)
    for row, i in zip(out["input_ids"], out["overflow_to_sample_mapping"], strict=True):
        if ids[i] is None:
            ids[i] = row
        else:  # the rest of a text that was cut: one row per max_length piece
            cut[i] = True
    return ids, cut


def encode(tokenizer, texts, max_length):
    """Tokenise ``texts`` (without padding), truncating to ``max_length`` tokens.

    Each text is tokenised once (a long one from its first words only, see
    :data:`CHARS_PER_TOKEN`), and the number of truncated texts is reported in a warning.
    """
    texts = list(texts)
    ids, cut = [None] * len(texts), [False] * len(texts)
    todo, n_chars = list(range(len(texts))), max_length * CHARS_PER_TOKEN
    while todo:
        heads = [_head(texts[i], n_chars) for i in todo]
        rows, was_cut = _tokenize(tokenizer, heads, max_length)
        again = []
        for i, head, row, truncated in zip(todo, heads, rows, was_cut, strict=True):
            if truncated or len(head) == len(texts[i]):
                ids[i], cut[i] = row, truncated
            else:  # its first words fit in max_length: take more of it
                again.append(i)
        todo, n_chars = again, n_chars * 4
    n_truncated = sum(cut)
    if n_truncated:
        warnings.warn(
            f"{n_truncated} of {len(texts)} texts are longer than max_length={max_length} "
            "tokens and were truncated to their first tokens. Raise max_length (up to the "
            "model's limit) or shorten them.",
            UserWarning,
            stacklevel=3,
        )
    return Encoded(ids, n_truncated)


def pad(rows, length, pad_id):
    """Pad token id lists to ``length``: ``{"input_ids", "attention_mask"}`` int64 tensors."""
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        mask[r, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


class TextBatches:
    """Padded batches of token ids, longest texts first; ``order`` maps them back.

    Iterating yields ``{"input_ids", "attention_mask"}`` dicts; the rows come in the order
    ``order`` (a permutation of the inputs), which :func:`sktransfer._core.inference.
    run_batches` undoes. With ``one_shape=True`` every batch is padded to the longest text
    of all, so that stage outputs of different batches stack (the frozen-prefix cache).
    """

    def __init__(self, encoded, batch_size, pad_id, *, one_shape=False, progress=False, desc=None):
        self.encoded = encoded
        self.batch_size = batch_size
        self.pad_id = pad_id
        self.one_shape = one_shape
        self.progress = progress
        self.desc = desc
        lengths = np.array([len(ids) for ids in encoded.ids])
        self.order = np.argsort(-lengths, kind="stable")

    def __len__(self):
        return len(self.order)

    def __iter__(self):
        ids = self.encoded.ids
        longest = max(len(row) for row in ids)
        bar = progress_bar(self.progress, len(ids), self.desc, unit="text")
        try:
            for start in range(0, len(self.order), self.batch_size):
                rows = [ids[i] for i in self.order[start : start + self.batch_size]]
                length = longest if self.one_shape else max(len(row) for row in rows)
                yield pad(rows, length, self.pad_id)
                bar.update(len(rows))
        finally:
            bar.close()


class TextDataset(torch.utils.data.Dataset):
    """Texts as padded token ids (and targets), for training on skorch.

    Every item is padded to the longest text, so the default collation stacks them.
    """

    def __init__(self, encoded, pad_id, y=None):
        self.encoded = encoded
        self.pad_id = pad_id
        self.y = y
        self.length = max(len(row) for row in encoded.ids)

    def __len__(self):
        return len(self.encoded.ids)

    def __getitem__(self, i):
        item = {k: v[0] for k, v in pad([self.encoded.ids[i]], self.length, self.pad_id).items()}
        if self.y is None:
            return item, torch.zeros((), dtype=torch.long)
        return item, self.y[i]


# --- the input pipeline ---------------------------------------------------------------------
@lru_cache(maxsize=8)
def _cached_tokenizer(folder, digest):
    """Load a folder's tokenizer once per content (``digest``): a changed file is reloaded."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except ImportError:
        raise
    except Exception as exc:  # the tokenizers library raises plain Exceptions
        raise ValueError(
            f"The tokenizer files in {folder} cannot be loaded ({type(exc).__name__}: {exc}): "
            "copy them again from the model's source."
        ) from exc


@dataclass(frozen=True)
class TextPipeline(InputPipeline):
    """How a text encoder expects its input: its tokenizer, and the maximum length.

    The text modality's :class:`~sktransfer._modalities.InputPipeline`: it checks texts
    (:func:`check_texts`), tokenises them once and batches them by length, pools token
    states over the real tokens, and takes the ``max_length`` parameter of the estimators.

    Parameters
    ----------
    spec : str
        The model whose tokenizer is used.
    max_length : int
        Tokens per text; longer texts are truncated, with a warning.
    model_max_length : int
        The most the model's position embeddings allow.
    tokenizer_digest : str or None
        The SHA-256 of the tokenizer files the model was built with: part of the ``repr``
        (so features made with another tokenizer are never served from a cache) and of
        :meth:`describe` (a file made with another tokenizer is refused), and compared
        with the files on this machine when the tokenizer is loaded (a pickle made with
        another tokenizer is refused). None when unknown (checks nothing).
    locate : callable
        Returns the model's folder on this machine and the digest of its tokenizer files
        now; set by the backbone that built the pipeline, called when the tokenizer is
        needed.
    """

    spec: str
    max_length: int = 256
    model_max_length: int = 512
    tokenizer_digest: str | None = None
    locate: object = field(default=None, compare=False, repr=False)

    modality = "text"
    options = ("max_length",)

    def __post_init__(self):
        if not isinstance(self.max_length, Integral) or not (
            2 <= self.max_length <= self.model_max_length
        ):
            raise ValueError(
                f"max_length must be an integer in [2, {self.model_max_length}] for "
                f"{self.spec!r}; got {self.max_length!r}."
            )

    def __repr__(self):  # the name cache keys were made with (the class was TextPreprocessing)
        digest = self.tokenizer_digest
        tokenizer = "" if digest is None else f", tokenizer_digest={digest!r}"
        return (
            f"TextPreprocessing(spec={self.spec!r}, max_length={self.max_length!r}, "
            f"model_max_length={self.model_max_length!r}{tokenizer})"
        )

    # --- the safe format
    def describe(self):
        """Return the settings as JSON: the model, ``max_length``, its limit, the tokenizer."""
        return {
            "spec": self.spec,
            "max_length": self.max_length,
            "model_max_length": self.model_max_length,
            "tokenizer_digest": self.tokenizer_digest,
        }

    def restore(self, description):
        """Return this pipeline with the described ``max_length`` (validated).

        A description that records another tokenizer than this machine's is refused, as
        weights that differ are; one without a tokenizer digest (files written before it
        was recorded) is accepted.
        """
        fields = {"spec", "max_length", "model_max_length"}
        if not isinstance(description, dict) or not (
            fields <= set(description) <= fields | {"tokenizer_digest"}
        ):
            raise ValueError(
                "TextPreprocessing needs the fields spec, max_length, model_max_length "
                "(and tokenizer_digest)."
            )
        if description["spec"] != self.spec:
            raise ValueError(
                f"The input pipeline describes text model {description['spec']!r}, not "
                f"{self.spec!r}."
            )
        if description["model_max_length"] != self.model_max_length:
            raise ValueError(
                f"The input pipeline says {self.spec!r} takes up to "
                f"{description['model_max_length']!r} tokens; it takes {self.model_max_length}."
            )
        recorded = description.get("tokenizer_digest", self.tokenizer_digest)
        if recorded != self.tokenizer_digest:
            raise ValueError(
                f"The tokenizer files of {self.spec!r} on this machine differ from those the "
                f"model was saved with (tokenizer digest {str(recorded)[:12]}... in the file, "
                f"{str(self.tokenizer_digest)[:12]}... here), and the file does not hold them: "
                "texts would be cut into other tokens than the model learned. Restore the "
                "model folder's tokenizer files, or fit the model again."
            )
        return replace(self, max_length=description["max_length"])

    # --- estimator options
    def _configure(self, max_length=None):
        if max_length is None or max_length == self.max_length:
            return self
        return replace(self, max_length=int(max_length))

    # --- inputs
    @property
    def tokenizer(self):
        """The model's (fast) tokenizer, once its files are found to be the recorded ones."""
        located = self.locate()
        folder, digest = located if isinstance(located, tuple) else (located, None)
        if self.tokenizer_digest is not None and digest != self.tokenizer_digest:
            raise ValueError(
                f"The tokenizer files in {folder} differ from those {self.spec!r} was "
                f"built with (tokenizer digest {str(digest)[:12]}... now, "
                f"{self.tokenizer_digest[:12]}... then): texts would be cut into other "
                "tokens than the model learned. Restore the folder's tokenizer files, or "
                "load the backbone again in a new process (a process keeps the backbones it "
                "built) and fit again."
            )
        return _cached_tokenizer(str(folder), digest)

    def check(self, X):
        """Validate raw input ``X``: see :func:`check_texts`."""
        return check_texts(X)

    def example_input(self, n=1, random=False):
        """Return ``n`` inputs of ``max_length`` tokens (for probing shapes and tracing).

        ``random=True`` gives random tokens, with rows padded to lengths from
        ``max_length`` down to 1 (so that a traced network sees padding).
        """
        pad = self.tokenizer.pad_token_id or 0
        if not random:
            ids = torch.full((n, self.max_length), pad)
            return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        # random tokens, every row but the first padded to a shorter length
        ids = torch.randint(1000, 2000, (n, self.max_length))
        lengths = torch.linspace(self.max_length, 1, n).round().long() if n > 1 else None
        mask = torch.ones_like(ids)
        if lengths is not None:
            mask = (torch.arange(self.max_length) < lengths[:, None]).long()
        return {"input_ids": ids.masked_fill(mask == 0, pad), "attention_mask": mask}

    def _encode(self, inputs):
        return encode(self.tokenizer, inputs.items, self.max_length)

    def token_ids(self, inputs):
        """Return the token ids of each checked text (truncation is reported once)."""
        return self._encode(inputs).ids

    def collate(self, rows):
        """Pad rows of token ids to the longest: one ``{"input_ids", "attention_mask"}``."""
        return pad(rows, max(len(row) for row in rows), self.tokenizer.pad_token_id or 0)

    def batches(
        self, inputs, batch_size, *, augment=None, num_workers=0, progress=False, desc=None,
        one_shape=False,
    ):  # fmt: skip
        """Yield padded token batches, longest first (``order`` maps them back)."""
        pad_id = self.tokenizer.pad_token_id or 0
        return TextBatches(
            self._encode(inputs),
            batch_size,
            pad_id,
            one_shape=one_shape,
            progress=progress,
            desc=desc,
        )

    def dataset(self, inputs, targets=None, *, augment=None):
        """Return a dataset of padded token ids and targets, for training."""
        return TextDataset(self._encode(inputs), self.tokenizer.pad_token_id or 0, targets)

    def pool(self, output, pooling):
        """Pool a stage's ``{"hidden", "mask"}`` over the real tokens (see :func:`pool_tokens`).

        ``"avg"`` is the mean, ``"token"`` the first token; the pooled output of the last
        stage is already one vector per text.
        """
        if not isinstance(output, dict):
            return output.flatten(1)
        if pooling is None:
            raise ValueError("pooling=None cannot flatten texts of different lengths.")
        mode = {"avg": "mean", "token": "cls"}.get(pooling, pooling)
        return pool_tokens(output["hidden"], output["mask"], mode)


def pool_tokens(hidden, mask, mode):
    """Pool ``(n, L, C)`` token states under an ``(n, L)`` mask of the real tokens.

    ``mode``: ``"mean"``, ``"max"``, ``"avgmax"`` (both, concatenated), ``"cls"`` or
    ``"token"`` (the first token), ``"lasttoken"`` (the last real one) or
    ``"mean_sqrt_len"`` (the sum divided by the square root of the number of tokens).
    """
    if mode == "cls" or mode == "token":
        return hidden[:, 0]
    if mode == "lasttoken":  # the last position whose mask is 1
        last = mask.shape[1] - 1 - mask.flip(1).argmax(1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(weights == 0, torch.finfo(hidden.dtype).min).amax(1)
    summed = (hidden * weights).sum(1)
    count = weights.sum(1).clamp(min=1e-9)
    if mode == "mean_sqrt_len":
        return summed / count.sqrt()
    mean = summed / count
    if mode == "avgmax":
        return torch.cat([mean, pool_tokens(hidden, mask, "max")], dim=1)
    return mean
