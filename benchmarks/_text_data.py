"""The sentence sets the text benchmarks read: SUBJ and TREC, or generated sentences.

SUBJ and TREC are the SentEval releases in ``../shared/datasets/text_subj_trec`` (a
development checkout has them; a user's may not). Without them the benchmarks fall back
to generated sentences, and say so.
"""

import os
from pathlib import Path

import numpy as np

TEXT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "text_subj_trec"
MODEL = "all-MiniLM-L6-v2"


def load_line():
    """The machine's load average, since other jobs may share its cores."""
    one, five, _ = os.getloadavg()
    cores = os.cpu_count()
    return f"load average at the end {one:.1f} (1 min), {five:.1f} (5 min) on {cores} cores"


def available():
    """Whether the SUBJ and TREC files are here."""
    return (TEXT_DATA / "subj.objective").is_file() and (TEXT_DATA / "TREC_10.label").is_file()


def _lines(name):
    # the TREC files are Latin-1 (a few accented names); SUBJ is ASCII
    text = (TEXT_DATA / name).read_text(encoding="latin-1")
    return [line.strip() for line in text.splitlines() if line.strip()]


def subj():
    """SUBJ: 10,000 movie-review sentences, ``"subjective"`` or ``"objective"``."""
    subjective, objective = _lines("subj.subjective"), _lines("subj.objective")
    X = subjective + objective
    y = np.array(["subjective"] * len(subjective) + ["objective"] * len(objective))
    return X, y


def trec(name):
    """TREC questions with their coarse class (ABBR, DESC, ENTY, HUM, LOC, NUM)."""
    X, y = [], []
    for line in _lines(name):
        label, question = line.split(" ", 1)
        X.append(question)
        y.append(label.split(":")[0])
    return X, np.array(y)


def generated(n, seed=0):
    """``n`` sentences about sport, cooking or weather, of varied lengths (a 3-class task)."""
    rng = np.random.default_rng(seed)
    topics = {
        "sport": ["the team", "our striker", "the coach", "the fans", "the goalkeeper"],
        "cooking": ["the chef", "my aunt", "the baker", "the cook", "our host"],
        "weather": ["the storm", "the wind", "the forecast", "the fog", "the rain"],
    }
    verbs = {
        "sport": ["scored in the final", "trained before the derby", "won the cup match"],
        "cooking": ["baked bread for dinner", "seasoned the soup", "fried the onions"],
        "weather": ["hit the coast overnight", "cleared by the afternoon", "chilled the town"],
    }
    tails = [
        "",
        "after a long and tiring week",
        "while everyone in the small town was watching and talking about it",
        "as expected",
    ]
    X, y = [], []
    names = list(topics)
    for i in range(n):
        topic = names[i % len(names)]
        subject = topics[topic][rng.integers(5)]
        words = f"{subject} {verbs[topic][rng.integers(3)]} {tails[rng.integers(4)]}"
        X.append(words.strip().capitalize() + ".")
        y.append(topic)
    return X, np.array(y)


CR_MPQA = TEXT_DATA.parent / "text_cr_mpqa"


def polarity(name):
    """CR (``"custrev"``) or MPQA (``"mpqa"``): sentences labelled negative or positive."""
    X, y = [], []
    for label in ("neg", "pos"):
        text = (CR_MPQA / f"{name}.{label}").read_text(encoding="latin-1")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        X += lines
        y += [{"neg": "negative", "pos": "positive"}[label]] * len(lines)
    return X, np.array(y)
