"""Which words a fitted text model's score rests on: occlusion of each word in turn.

Each word (and each punctuation mark) is removed from the text in turn, and the model
scores every such variant with the texts it already has (``predict_proba``, else
``decision_function``, else ``predict``). A word's attribution is how much the target's
score falls without it. No gradient, tokenizer or layer is used, so any text model is
explained the same way; the cost is one score per word, plus one for the whole text.
"""

import html
import re
from dataclasses import dataclass

import numpy as np

from ._scores import scored, target_index, target_label

__all__ = ["TextExplanation", "occlude_words", "split_words"]

# A word (with its apostrophes: "don't") or one punctuation mark
_TOKEN = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]")
EMPTY = "."  # stands in for a text that removing its only word would leave empty
CHUNK = 256  # texts per call of the model


def split_words(text):
    """Return the words and punctuation marks of ``text`` and their ``(start, end)``."""
    found = [(m.group(), m.span()) for m in _TOKEN.finditer(text)]
    return tuple(t for t, _ in found), tuple(s for _, s in found)


def _without(text, span):
    """``text`` with ``span`` removed, its two sides joined by one space."""
    left, right = text[: span[0]].rstrip(), text[span[1] :].lstrip()
    joined = f"{left} {right}".strip()
    return joined or EMPTY


@dataclass(frozen=True, eq=False)
class TextExplanation:
    """Why a model scored one text as it did: the attribution of each of its words.

    Returned by :func:`~sktransfer.inspection.explain` for texts, one per text.

    Attributes
    ----------
    text : str
        The text.
    tokens : tuple of str
        Its words and punctuation marks, in order.
    spans : tuple of (int, int)
        Where each token is: ``text[start:end]``.
    scores : ndarray of shape (n_tokens,), float32
        How much the target's score (its probability where the model gives
        probabilities) falls when the token is removed; negative where it rises.
    target : class label or int
        What is explained: the class label, or the output index.
    score : float
        The target's score on the whole text.
    """

    text: str
    tokens: tuple
    spans: tuple
    scores: np.ndarray
    target: object
    score: float

    def top(self, k=5):
        """Return the ``k`` tokens of highest attribution, as ``(token, score)`` pairs."""
        order = np.argsort(-self.scores, kind="stable")[:k]
        return [(self.tokens[i], float(self.scores[i])) for i in order]

    def to_html(self):
        """Return the text as HTML, each token's background coloured by its attribution.

        Red for tokens the target's score rests on, blue for those that lower it; the
        strongest is the most opaque. The score is each token's tooltip.
        """
        top = max(float(np.abs(self.scores).max(initial=0)), 1e-12)
        parts, end = [], 0
        for token, (start, stop), value in zip(self.tokens, self.spans, self.scores, strict=True):
            colour = "220, 50, 47" if value >= 0 else "38, 139, 210"
            parts.append(html.escape(self.text[end:start]))
            parts.append(
                f'<span style="background-color: rgba({colour}, {abs(value) / top:.2f})" '
                f'title="{value:+.3f}">{html.escape(token)}</span>'
            )
            end = stop
        parts.append(html.escape(self.text[end:]))
        return f"<p>{''.join(parts)}</p>"

    def _repr_html_(self):
        return self.to_html()


def occlude_words(model, inputs, target, *, verbose=0):
    """Return one :class:`TextExplanation` per text of ``inputs`` (a checked TextList)."""
    texts = list(inputs.items)
    words = [split_words(text) for text in texts]
    variants, starts = [], []
    for text, (_, spans) in zip(texts, words, strict=True):
        starts.append(len(variants))
        variants.append(text)
        variants.extend(_without(text, span) for span in spans)
    table = scored(
        model, len(variants), lambda a, b: variants[a:b], CHUNK, verbose=verbose, unit="text"
    )
    columns = target_index(model, table[starts], target).numpy()
    out = []
    for text, (tokens, spans), start, column in zip(texts, words, starts, columns, strict=True):
        full = table[start, column]
        drops = full - table[start + 1 : start + 1 + len(tokens), column]
        out.append(
            TextExplanation(
                text,
                tokens,
                spans,
                drops.astype(np.float32),
                target_label(model, column),
                float(full),
            )
        )
    return out
