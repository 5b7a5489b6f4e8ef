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
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch


class TextList:
    """A validated sequence of texts (the text counterpart of ``_images.ImageList``)."""

    kind = "texts"

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def take(self, indices):
        """Return the texts at ``indices`` as a new TextList."""
        return TextList([self.items[int(i)] for i in indices])


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
    run_batches` undoes. With ``uniform=True`` every batch is padded to the longest text
    of all, so that stage outputs of different batches stack (the frozen-prefix cache).
    """

    def __init__(self, encoded, batch_size, pad_id, *, uniform=False, progress=False, desc=None):
        self.encoded = encoded
        self.batch_size = batch_size
        self.pad_id = pad_id
        self.uniform = uniform
        self.progress = progress
        self.desc = desc
        lengths = np.array([len(ids) for ids in encoded.ids])
        self.order = np.argsort(-lengths, kind="stable")

    def __len__(self):
        return len(self.order)

    def __iter__(self):
        from ._images import _progress

        ids = self.encoded.ids
        longest = max(len(row) for row in ids)
        bar = _progress(self.progress, len(ids), self.desc, unit="text")
        try:
            for start in range(0, len(self.order), self.batch_size):
                rows = [ids[i] for i in self.order[start : start + self.batch_size]]
                length = longest if self.uniform else max(len(row) for row in rows)
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
