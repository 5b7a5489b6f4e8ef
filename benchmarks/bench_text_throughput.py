"""Sentence-embedding throughput: PretrainedFeatureExtractor against sentence-transformers.

Three ways embed the same sentences with the same all-MiniLM-L6-v2 folder (the one the
bundled package unpacks), the same batch size, maximum length (256 tokens) and torch
threads, in float32 on the CPU:

- ``SentenceTransformer.encode`` (it sorts the sentences by length and pads each batch
  to its longest);
- a plain ``transformers`` loop as tutorials write it: batches in the input order, each
  padded to its longest, mean pooling over the attention mask, L2 normalisation;
- ``PretrainedFeatureExtractor("all-MiniLM-L6-v2").transform``.

Every repeat embeds a fresh slice of sentences (so no way reads a result computed
before), each way in turn, in a rotating order. The script checks that the embeddings
agree (cosine similarity per sentence) and writes medians and ratios to RESULTS.md.

Sentences: SUBJ from ``../shared/datasets/text_subj_trec`` (movie-review sentences,
about 30 tokens) when present, else generated ones.
Run: ``python benchmarks/bench_text_throughput.py``.
"""

import argparse
import statistics
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from transformers import AutoModel, AutoTokenizer

from sktransfer import PretrainedFeatureExtractor
from sktransfer.backbones._text_models import model_folder

import _text_data
from _results import machine_line, write_section


def plain_loop(model, tokenizer, texts, batch_size, max_length):
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=1))
    return torch.cat(out).numpy()


def _cosine(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _tokens(tokenizer, texts):
    return np.array([len(ids) for ids in tokenizer(texts)["input_ids"]])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="sentences per repeat")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if _text_data.available():
        texts, _ = _text_data.subj()
        source = "SUBJ sentences"
    else:
        texts, _ = _text_data.generated(args.n * args.repeats)
        source = "generated sentences"
    # a fixed shuffle, so every slice mixes both SUBJ classes
    texts = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))]
    slices = [texts[r * args.n : (r + 1) * args.n] for r in range(args.repeats)]

    folder = str(model_folder(_text_data.MODEL))
    st = SentenceTransformer(folder, device="cpu")
    max_length = st.max_seq_length
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    extractor = PretrainedFeatureExtractor(_text_data.MODEL, batch_size=args.batch_size)
    extractor.fit(texts[:2])
    assert extractor.backbone_.preprocessing.max_length == max_length

    ways = {
        "sentence-transformers": lambda x: st.encode(x, batch_size=args.batch_size),
        "plain": lambda x: plain_loop(model, tokenizer, x, args.batch_size, max_length),
        "sktransfer": extractor.transform,
    }
    warm = texts[-64:]  # not in any slice
    for fn in ways.values():
        fn(warm)
    times = {w: [] for w in ways}
    worst = {"sentence-transformers": 1.0, "plain": 1.0}
    names = list(ways)
    for r, batch in enumerate(slices):
        out = {}
        for way in names[r % 3 :] + names[: r % 3]:  # rotate who goes first
            start = time.perf_counter()
            out[way] = ways[way](batch)
            times[way].append(time.perf_counter() - start)
        for other in worst:
            worst[other] = min(worst[other], float(_cosine(out["sktransfer"], out[other]).min()))

    rate = {w: args.n / statistics.median(t) for w, t in times.items()}
    per_run = {w: ", ".join(f"{args.n / t:.0f}" for t in ts) for w, ts in times.items()}
    base = rate["sentence-transformers"]
    labels = {
        "sentence-transformers": "`SentenceTransformer.encode` (sorted by length)",
        "plain": "plain `transformers` loop (input order, padded per batch)",
        "sktransfer": "`PretrainedFeatureExtractor.transform`",
    }
    rows = "\n".join(
        f"| {labels[w]} | {rate[w]:.0f} ({per_run[w]}) | "
        + (f"**{rate[w] / base:.2f}x**" if w == "sktransfer" else f"{rate[w] / base:.2f}x")
        + " |"
        for w in ways
    )
    per_slice = [_tokens(tokenizer, s) for s in slices]
    lengths = np.concatenate(per_slice)
    waste = sum(_padded(ls, args.batch_size) for ls in per_slice) / sum(
        _padded(np.sort(ls)[::-1], args.batch_size) for ls in per_slice
    )
    write_section(
        "text-throughput",
        f"""## Sentence-embedding throughput (`bench_text_throughput.py`)

all-MiniLM-L6-v2 (the bundled folder, for all three), float32, batch {args.batch_size},
max_length {max_length}; {args.repeats} interleaved repeats, each on {args.n} new {source}
({lengths.mean():.0f} tokens on average, {lengths.max()} at most).
{machine_line()}; {_text_data.load_line()}.

| way | sentences/s, median (runs) | vs sentence-transformers |
|---|---|---|
{rows}

Embeddings agree: the cosine similarity between sktransfer's and sentence-transformers'
embedding of each sentence is at least 1 - {1 - worst["sentence-transformers"]:.0e}
(with the plain loop's: 1 - {1 - worst["plain"]:.0e}). Sorting by length matters once
texts differ in length: the plain loop pads every batch to its longest sentence, so it
computes {waste:.1f}x the tokens of a length-sorted run here.""",
    )


def _padded(lengths, batch_size):
    """Tokens computed when batches of ``lengths`` (in this order) are padded to their longest."""
    return sum(
        lengths[i : i + batch_size].max() * len(lengths[i : i + batch_size])
        for i in range(0, len(lengths), batch_size)
    )


if __name__ == "__main__":
    main()
