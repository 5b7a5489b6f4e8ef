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

import warnings
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
        Empty input, an empty or missing text (the row is named), a 2-D container with
        more than one column.
    TypeError
        A single string, or rows that are not strings (the first is named).
    """
    if isinstance(X, TextList):
        return X
    if isinstance(X, (str, bytes)):
        raise TypeError("X must be a collection of texts; wrap a single text in a list.")
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
        if (
            text is None
            or text is pd.NA
            or (isinstance(text, (float, np.floating)) and text != text)
        ):
            raise ValueError(f"Text {i} is missing (None, NaN or pd.NA).")
        if not isinstance(text, str):
            raise TypeError(f"Text {i} is a {type(text).__name__}, not a string: {text!r:.60}")
        if not text.strip():
            raise ValueError(f"Text {i} is empty.")
    return TextList([str(t) for t in items])


@dataclass
class Encoded:
    """Token ids of every text (truncated to ``max_length``), and how many were cut."""

    ids: list
    n_truncated: int
    longest: int


def encode(tokenizer, texts, max_length):
    """Tokenise ``texts`` (without padding), truncating to ``max_length`` tokens.

    Warns with the number of truncated texts and the longest length found.
    """
    full = tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
    lengths = [len(ids) for ids in full]
    too_long = [i for i, n in enumerate(lengths) if n > max_length]
    ids = full
    if too_long:
        cut = tokenizer([texts[i] for i in too_long], truncation=True, max_length=max_length)[
            "input_ids"
        ]
        ids = list(full)
        for i, row in zip(too_long, cut, strict=True):
            ids[i] = row
        warnings.warn(
            f"{len(too_long)} of {len(texts)} texts are longer than max_length={max_length} "
            f"tokens and were truncated (the longest has {max(lengths)} tokens). Raise "
            "max_length (up to the model's limit) or shorten them.",
            UserWarning,
            stacklevel=3,
        )
    return Encoded(ids, len(too_long), max(lengths))


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
        """Return ``n`` inputs of ``max_length`` tokens (for probing shapes)."""
        ids = torch.randint(1000, 2000, (n, self.max_length)) if random else None
        if ids is None:
            ids = torch.full((n, self.max_length), self.tokenizer.pad_token_id or 0)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def _encode(self, inputs):
        return encode(self.tokenizer, inputs.items, self.max_length)

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
