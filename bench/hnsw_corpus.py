"""Distinct texts and their real e5 vectors for the HNSW recall bench (``bench/hnsw_recall.py``).

    nice -n 19 .venv/bin/python bench/hnsw_corpus.py --texts 200000 --worker 0 --workers 2

The seed has only ~1,800 distinct texts, so a recall measured on it is dominated by ties. This
makes distinct ones, deterministically: every template of the seed (``seed.PHRASES``, both
languages) filled with many values of its blanks, and the evaluation set's messages
(``bench/search_eval``); then messages of two or three of those joined (a customer who writes a
greeting and a question in one message, an agent who answers and closes), shuffled with a fixed
seed, deduplicated. Embedded as passages by the default model (e5, batch 32), in chunks of 2,048
written to ``--cache`` as .npy files; several workers split the chunks, and a run that stops
keeps its finished chunks (the bench uses however many exist). The evaluation set's queries are
embedded as queries into ``queries.npy``: they are the bench's search queries.
"""

from __future__ import annotations

import argparse
import itertools
import random
import string
import time
from pathlib import Path

import numpy as np
import yaml

from zapflow.embeddings.e5 import E5Embedder
from zapflow.seed import BR_CITIES, EN_CITIES, EN_FIRST, PHRASES, PT_FIRST

CACHE = Path("/tmp/zapflow-hnsw-corpus")
CHUNK = 2048
EVAL = Path(__file__).parent / "search_eval"


def _fills(lang: str, template: str, rng: random.Random, count: int) -> set[str]:
    phrases = PHRASES[lang]  # type: ignore[index]
    values = {
        "name": PT_FIRST if lang == "pt" else EN_FIRST,
        "item": phrases.items,
        "city": BR_CITIES if lang == "pt" else EN_CITIES,
        "price": (49, 89, 149, 199, 290, 480, 990, 1490, 1990),
        "hour": (9, 10, 11, 14, 15, 16, 17),
        "n": range(2, 13),
    }
    blanks = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    return {template.format(**{b: rng.choice(values[b]) for b in blanks}) for _ in range(count)}


def singles() -> list[str]:
    """Each seed template with its blanks filled many ways, and the evaluation set's messages."""
    rng = random.Random(42)
    out: set[str] = set()
    for lang, phrases in PHRASES.items():
        lines = [
            *phrases.hello, *phrases.agent_hello, *phrases.thanks, *phrases.closing,
            *phrases.follow_up, *phrases.follow_up_reply, phrases.catalog,
            *itertools.chain.from_iterable(phrases.questions.values()),
            *itertools.chain.from_iterable(phrases.answers.values()),
        ]  # fmt: skip
        for template in lines:
            out |= _fills(lang, template, rng, 40)
    for language in ("pt", "en"):
        data = yaml.safe_load((EVAL / f"{language}.yaml").read_text())
        out |= {m for topic in data["topics"] for m in topic["messages"]}
        out |= set(data["distractors"])
    return sorted(out)


def texts(total: int) -> list[str]:
    """``total`` distinct texts: the singles, then joins of two or three of them."""
    base = singles()
    rng = random.Random(7)
    seen = set(base)
    out = list(base)
    while len(out) < total:
        joined = " ".join(rng.sample(base, rng.choice((2, 2, 3))))
        if joined not in seen:
            seen.add(joined)
            out.append(joined)
    head, tail = out[: len(base)], out[len(base) :]
    rng.shuffle(tail)
    return (head + tail)[:total]


def queries() -> list[str]:
    return [
        q
        for language in ("pt", "en")
        for topic in yaml.safe_load((EVAL / f"{language}.yaml").read_text())["topics"]
        for q in topic["queries"]
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=200_000)
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    model = E5Embedder(batch_size=32)
    if args.worker == 0 and not (args.cache / "queries.npy").exists():
        np.save(args.cache / "queries.npy", model.encode(queries(), query=True))
    corpus = texts(args.texts)
    for index in range(args.worker, -(-len(corpus) // CHUNK), args.workers):
        path = args.cache / f"chunk_{index:04d}.npy"
        if path.exists():
            continue
        start = time.process_time()
        vectors = model.encode(corpus[index * CHUNK : (index + 1) * CHUNK])
        np.save(path.with_suffix(".tmp.npy"), vectors)
        path.with_suffix(".tmp.npy").rename(path)
        cpu = time.process_time() - start
        print(f"chunk {index}: {len(vectors)} texts, {len(vectors) / cpu:.1f}/CPU-s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
