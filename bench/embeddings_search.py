"""Embeddings and semantic search figures: the local model's throughput, and search latency and
HNSW recall over a seeded company with ~100k embedded messages.

    .venv/bin/python bench/embeddings_search.py [--messages 100000] [--queries 200]

What it does, on a fresh embedded stack (Postgres only is used):
1. ``zapflow seed-demo`` (one company, seeded texts in Portuguese and English);
2. throughput: ``LocalEmbedder.encode`` on a sample of the seeded short messages, at several
   batch sizes (one process, the numpy/BLAS threads it starts on this machine);
3. embeds every embeddable message and stores the rows as the activity does
   (``store_embeddings``), then ANALYZE. The seeded texts come from templates (about 1,800
   distinct among 92k): each distinct text is embedded once, and its repeats get that vector
   plus Gaussian noise at ``--copy-cosine`` (0.95) from it, like near-paraphrases. Exact copies
   (``--copy-cosine 1``) are the worst case for HNSW: a node whose neighbours are all its own
   copies is cut off from the graph (recall@10 0.65 here, at any ef_search);
4. the unforced plan of the semantic query (does it use ``idx_embeddings_vector``?);
5. latency, sequential, one transaction per query, through ``services.search.search_messages``
   (query embedding included) in each mode, and the semantic SQL alone;
6. recall@10 of the HNSW scan against the exact answer (index scans off), for several
   ``ef_search``: a result counts when its distance is within the exact 10th distance (seeded
   texts repeat, so ties are many and ids alone would under-count).
Writes bench/results/embeddings_search.json. The machine is shared: the load average before and
after is recorded with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

from zapflow.bench.environment import result_header, write_result
from zapflow.bench.stack import BenchStack
from zapflow.bench.stats import summarize
from zapflow.config import load_settings
from zapflow.db import SessionFactory, create_engine, session_factory, transaction
from zapflow.embeddings import embeddable_text
from zapflow.embeddings.local import MODEL_NAME, LocalEmbedder
from zapflow.services.embeddings import PendingMessage, messages_to_embed, store_embeddings
from zapflow.services.search import (
    SearchFilters,
    nearest_query,
    search_messages,
    semantic_ranking,
    use_ef_search,
)

RESULT = Path(__file__).parent / "results" / "embeddings_search.json"
RESULT_SMALL = RESULT.with_name("embeddings_search_small.json")  # runs below 100k messages
MIN_CHARS = load_settings().embedding_min_chars
BATCH_SIZES = (1, 16, 64, 128)
EF_SEARCHES = (40, 100, 200)
STORE_CHUNK = 2_000


def throughput(embedder_texts: list[str]) -> list[dict[str, Any]]:
    rows = []
    for batch in BATCH_SIZES:
        embedder = LocalEmbedder(batch_size=batch)
        sample = embedder_texts[: 300 if batch == 1 else len(embedder_texts)]
        embedder.encode(sample[:8])  # load the model outside the timing
        wall, cpu = time.perf_counter(), time.process_time()
        embedder.encode(sample)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rows.append(
            {
                "batch": batch,
                "texts": len(sample),
                "per_second": round(len(sample) / wall, 1),
                # the same work per CPU-second: what one free core gives, whatever the load
                "per_cpu_second": round(len(sample) / cpu, 1),
            }
        )
        print(f"  batch {batch:>3}: {rows[-1]}", flush=True)
    return rows


def near_copy(vector: np.ndarray, cosine: float, rng: np.random.Generator) -> list[float]:
    """A unit vector at about ``cosine`` from ``vector`` (isotropic noise, then normalized)."""
    if cosine >= 1.0:
        return vector.tolist()  # type: ignore[no-any-return]
    sigma = np.sqrt((1.0 / cosine**2 - 1.0) / len(vector))
    noisy = vector + rng.normal(0.0, sigma, len(vector))
    return (noisy / np.linalg.norm(noisy)).tolist()  # type: ignore[no-any-return]


async def embed_all(
    sessions: SessionFactory, embedder: LocalEmbedder, copy_cosine: float
) -> dict[str, Any]:
    async with transaction(sessions) as session:
        pending = await messages_to_embed(session, MODEL_NAME, company_id=None)
    texts = {m.id: t for m in pending if (t := embeddable_text(m.body, m.media, MIN_CHARS))}
    distinct = sorted(set(texts.values()))
    print(f"  {len(pending)} messages, {len(texts)} embeddable, {len(distinct)} distinct texts")
    start = time.perf_counter()
    vectors = dict(zip(distinct, embedder.encode(distinct), strict=True))
    encode_s = time.perf_counter() - start
    rng = np.random.default_rng(42)
    seen: set[str] = set()
    rows = []
    for m in pending:
        if (t := texts.get(m.id)) is not None:
            first = t not in seen
            seen.add(t)
            vector = vectors[t].tolist() if first else near_copy(vectors[t], copy_cosine, rng)
            rows.append((m, t, vector))
    start = time.perf_counter()
    for i in range(0, len(rows), STORE_CHUNK):
        async with transaction(sessions) as session:
            await store_embeddings(session, MODEL_NAME, rows[i : i + STORE_CHUNK])
    store_s = time.perf_counter() - start
    async with transaction(sessions) as session:
        await session.execute(text("ANALYZE conversation_embeddings"))
    return {
        "messages": len(pending),
        "embedded": len(rows),
        "distinct_texts": len(distinct),
        "copy_cosine": copy_cosine,
        "encode_seconds": round(encode_s, 1),
        "encode_per_second": round(len(distinct) / encode_s, 1),
        "store_seconds": round(store_s, 1),
    }


async def plan(sessions: SessionFactory, company_id: uuid.UUID, vector: list[float]) -> str:
    compiled = nearest_query(company_id, MODEL_NAME, vector, 10).compile()
    params = {k: str(v) if isinstance(v, list) else v for k, v in compiled.params.items()}
    async with transaction(sessions) as session:
        await use_ef_search(session, 100)
        rows = await session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {compiled}"), params)
        return "\n".join(r[0] for r in rows)


async def latencies(
    sessions: SessionFactory,
    embedder: LocalEmbedder,
    company_id: uuid.UUID,
    queries: list[str],
    vectors: list[list[float]],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in ("semantic", "keyword", "hybrid"):
        times = []
        for q in queries:
            start = time.perf_counter()
            async with transaction(sessions) as session:
                await search_messages(session, embedder, company_id, q, mode=mode, limit=20)  # type: ignore[arg-type]
            times.append((time.perf_counter() - start) * 1000)
        out[mode] = summarize(times)
        print(f"  {mode:>8}: {out[mode]} ms", flush=True)
    times = []
    for vector in vectors:
        start = time.perf_counter()
        async with transaction(sessions) as session:
            await use_ef_search(session, 100)
            await semantic_ranking(session, company_id, MODEL_NAME, vector, SearchFilters(), 10)
        times.append((time.perf_counter() - start) * 1000)
    out["semantic_sql_only"] = summarize(times)
    print(f"  semantic SQL alone: {out['semantic_sql_only']} ms", flush=True)
    return out


async def _ranking(
    sessions: SessionFactory,
    company_id: uuid.UUID,
    vector: list[float],
    settings: dict[str, str],
) -> list[tuple[uuid.UUID, float]]:
    async with transaction(sessions) as session:
        for name, value in settings.items():
            await session.execute(
                text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value}
            )
        return await semantic_ranking(session, company_id, MODEL_NAME, vector, SearchFilters(), 10)


async def recall(
    sessions: SessionFactory, company_id: uuid.UUID, vectors: list[list[float]]
) -> dict[str, Any]:
    """recall@10 per (ef_search, iterative scan mode); a result counts when its distance is
    within the exact 10th distance."""
    exact = [
        1.0 - (await _ranking(sessions, company_id, v, {"enable_indexscan": "off"}))[-1][1]
        for v in vectors
    ]
    out = {}
    for mode in ("off", "relaxed_order", "strict_order"):
        for ef in EF_SEARCHES:
            hits = []
            for vector, tenth in zip(vectors, exact, strict=True):
                settings = {"hnsw.ef_search": str(ef), "hnsw.iterative_scan": mode}
                found = await _ranking(sessions, company_id, vector, settings)
                hits.append(sum(1.0 - s <= tenth + 1e-6 for _, s in found) / 10)
            key = f"ef_search={ef} iterative_scan={mode}"
            out[key] = round(float(np.mean(hits)), 4)
            print(f"  recall@10 at {key}: {out[key]}", flush=True)
    return out


def query_texts(pending_texts: list[str], count: int, rng: random.Random) -> list[str]:
    """Stored texts cut to their first two thirds of words: near, not identical to, a message."""
    picked = rng.sample(pending_texts, count)
    return [" ".join(t.split()[: max(2, len(t.split()) * 2 // 3)]) for t in picked]


async def measure(bench: BenchStack, args: argparse.Namespace, result: dict[str, Any]) -> None:
    settings = load_settings(database_url=bench.database_url)
    engine = create_engine(settings, pool_size=2)
    sessions = session_factory(engine)
    rng = random.Random(42)
    try:
        async with transaction(sessions) as session:
            pending: list[PendingMessage] = await messages_to_embed(
                session, MODEL_NAME, company_id=None
            )
        texts = [t for m in pending if (t := embeddable_text(m.body, m.media, MIN_CHARS))]
        company_id = pending[0].company_id
        sample = rng.sample(texts, min(args.sample, len(texts)))
        result["sample_mean_words"] = round(float(np.mean([len(t.split()) for t in sample])), 1)
        print(f"throughput on {len(sample)} seeded messages:", flush=True)
        result["throughput"] = throughput(sample)
        embedder = LocalEmbedder(batch_size=64)
        print("embedding the dataset:", flush=True)
        result["dataset"] = await embed_all(sessions, embedder, args.copy_cosine)
        queries = query_texts(texts, args.queries, rng)
        vectors = embedder.encode(queries).tolist()
        result["plan"] = await plan(sessions, company_id, vectors[0])
        result["plan_uses_hnsw"] = "idx_embeddings_vector" in result["plan"]
        print(f"plan uses the HNSW index: {result['plan_uses_hnsw']}", flush=True)
        print(f"latency over {len(queries)} queries (ms):", flush=True)
        result["latency_ms"] = await latencies(sessions, embedder, company_id, queries, vectors)
        print("recall:", flush=True)
        result["recall_at_10"] = await recall(sessions, company_id, vectors)
    finally:
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sample", type=int, default=2_000, help="texts for the throughput run")
    parser.add_argument(
        "--copy-cosine", type=float, default=0.95, help="a repeated text's vector vs the first's"
    )
    args = parser.parse_args()
    result = result_header(
        "embeddings_search",
        args,
        openblas_env={k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
    )
    bench = BenchStack()
    try:
        bench.start_stack()
        start = time.monotonic()
        seeded = bench.run_cli(
            "seed-demo", "--contacts", str(args.contacts), "--messages", str(args.messages),
            "--seed", "42", timeout=3600,
        )  # fmt: skip
        result["seed_seconds"] = round(time.monotonic() - start, 1)
        result["company_id"] = seeded["company_id"]
        asyncio.run(measure(bench, args, result))
    finally:
        bench.stop()
    write_result(RESULT if args.messages >= 100_000 else RESULT_SMALL, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
