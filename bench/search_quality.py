"""Search quality per model and language on our own evaluation set: nDCG@10 and recall@10 of
semantic, keyword and hybrid search, and each model's cost (messages per CPU-second, RSS).

    .venv/bin/python bench/search_quality.py

The set (``bench/search_eval/{pt,en}.yaml``, written for zapflow): customer-service topics, each
with the messages a customer or an agent wrote and the queries an agent would type to find them,
in other words (synonyms, paraphrases, typos, WhatsApp abbreviations); a query's relevant
messages are its topic's, every other message (other topics, distractors) is not.

On a fresh embedded stack (Postgres only): ``zapflow seed-demo`` makes one company per language
(its seeded messages are deleted: unlabelled texts would be scored as misses), the set's messages
are stored in the company's conversations and embedded by each model (``store_embeddings``, the
rows the embedder writes), and every query runs through ``services.search.search_messages``
(``limit=10``), the function ``GET /search`` calls, with that model's embedder.

Cost, per model, in a child process of its own (so RSS is the model's, not the other's): the
model loaded, then every message of the set, repeated to 960 texts, embedded at batch 32;
messages per CPU-second of that process, and its peak RSS minus its RSS before loading the model.

Writes bench/results/search_quality.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select, text

from zapflow.bench.environment import result_header, write_result
from zapflow.bench.stack import BenchStack
from zapflow.config import load_settings
from zapflow.db import SessionFactory, create_engine, session_factory, transaction
from zapflow.embeddings import Embedder
from zapflow.embeddings.e5 import E5Embedder
from zapflow.embeddings.local import LocalEmbedder
from zapflow.models import Conversation, Message, MessageDirection, MessageSender, MessageStatus
from zapflow.schemas.search import SearchMode
from zapflow.services.embeddings import messages_to_embed, store_embeddings
from zapflow.services.search import search_messages

SET = Path(__file__).parent / "search_eval"
RESULT = Path(__file__).parent / "results" / "search_quality.json"
LANGUAGES = ("pt", "en")
MODES: tuple[SearchMode, ...] = ("semantic", "hybrid", "keyword")
K = 10
COST_TEXTS = 960
COST_BATCH = 32


def embedders() -> dict[str, Embedder]:
    return {"minilm": LocalEmbedder(batch_size=COST_BATCH), "e5": E5Embedder(batch_size=COST_BATCH)}


def load_set(language: str) -> tuple[list[str], list[tuple[str, set[int]]]]:
    """The messages, and each query with the indexes of its relevant messages."""
    data = yaml.safe_load((SET / f"{language}.yaml").read_text())
    messages: list[str] = []
    queries: list[tuple[str, set[int]]] = []
    for topic in data["topics"]:
        first = len(messages)
        messages += topic["messages"]
        relevant = set(range(first, len(messages)))
        queries += [(q, relevant) for q in topic["queries"]]
    messages += data["distractors"]
    return messages, queries


def ndcg_recall(ranked: list[int], relevant: set[int]) -> tuple[float, float]:
    gains = [1.0 / math.log2(rank + 2) for rank, i in enumerate(ranked[:K]) if i in relevant]
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(K, len(relevant))))
    return sum(gains) / ideal, len(relevant & set(ranked[:K])) / len(relevant)


async def store_set(
    sessions: SessionFactory, company_id: uuid.UUID, messages: list[str]
) -> dict[uuid.UUID, int]:
    """The set's messages in the company's conversations (its seeded ones deleted first)."""
    async with transaction(sessions) as session:
        await session.execute(text("DELETE FROM messages WHERE company_id = :c"), {"c": company_id})
        conversations = list(
            (
                await session.execute(
                    select(Conversation).where(Conversation.company_id == company_id)
                )
            ).scalars()
        )
        ids: dict[uuid.UUID, int] = {}
        for i, body in enumerate(messages):
            conversation = conversations[i % len(conversations)]
            message = Message(
                company_id=company_id,
                conversation_id=conversation.id,
                instance_id=conversation.instance_id,
                message_key_id=f"eval.{uuid.uuid4().hex}",
                direction=MessageDirection.INBOUND,
                body=body,
                status=MessageStatus.RECEIVED,
                sent_by=MessageSender.CUSTOMER,
            )
            session.add(message)
            await session.flush()
            ids[message.id] = i
    return ids


async def embed_set(sessions: SessionFactory, company_id: uuid.UUID, embedder: Embedder) -> None:
    async with transaction(sessions) as session:
        pending = await messages_to_embed(session, embedder.model, company_id=company_id)
        vectors = await embedder.embed([m.body or "" for m in pending])
        rows = [(m, m.body or "", v) for m, v in zip(pending, vectors, strict=True)]
        await store_embeddings(session, embedder.model, rows)
        await session.execute(text("ANALYZE conversation_embeddings"))


async def evaluate(database_url: str, companies: dict[str, uuid.UUID]) -> dict[str, Any]:
    engine = create_engine(load_settings(database_url=database_url), pool_size=2)
    sessions = session_factory(engine)
    out: dict[str, Any] = {}
    try:
        for language, company_id in companies.items():
            messages, queries = load_set(language)
            index = await store_set(sessions, company_id, messages)
            out[language] = {"messages": len(messages), "queries": len(queries), "models": {}}
            for name, embedder in embedders().items():
                await embed_set(sessions, company_id, embedder)
                scores: dict[str, dict[str, float]] = {}
                for mode in MODES:
                    if mode == "keyword" and name != "minilm":
                        continue  # no model in it: measured once, reported beside each
                    ndcgs, recalls = [], []
                    for q, relevant in queries:
                        async with transaction(sessions) as session:
                            hits = await search_messages(
                                session, embedder, company_id, q, mode=mode, limit=K
                            )
                        ranked = [index[h.message.id] for h in hits]
                        ndcg, recall = ndcg_recall(ranked, relevant)
                        ndcgs.append(ndcg)
                        recalls.append(recall)
                    scores[mode] = {
                        "ndcg_at_10": round(sum(ndcgs) / len(ndcgs), 4),
                        "recall_at_10": round(sum(recalls) / len(recalls), 4),
                    }
                    print(f"  {language} {name:>6} {mode:>8}: {scores[mode]}", flush=True)
                out[language]["models"][embedder.model] = scores
    finally:
        await engine.dispose()
    return out


def cost(name: str) -> dict[str, Any]:
    """Run in a child process: the model's throughput at batch 32 and its RSS."""
    texts = [m for language in LANGUAGES for m in load_set(language)[0]]
    texts = (texts * (COST_TEXTS // len(texts) + 1))[:COST_TEXTS]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    embedder = embedders()[name]
    encode = embedder.encode  # type: ignore[attr-defined]
    encode(texts[:COST_BATCH])  # loads the model, outside the timing
    wall, cpu = time.perf_counter(), time.process_time()
    encode(texts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "model": embedder.model,
        "texts": len(texts),
        "batch": COST_BATCH,
        "per_cpu_second": round(len(texts) / cpu, 1),
        "per_second": round(len(texts) / wall, 1),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "model_rss_mb": round(
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, 1
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost", choices=["minilm", "e5"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cost:
        print(json.dumps(cost(args.cost)))
        return 0
    result = result_header("search_quality", args)
    result["cost"] = {
        name: json.loads(
            subprocess.run(
                [sys.executable, __file__, "--cost", name],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        for name in ("minilm", "e5")
    }
    print(f"cost: {result['cost']}", flush=True)
    bench = BenchStack()
    try:
        bench.start_stack()
        companies = {
            language: uuid.UUID(
                bench.run_cli(
                    "seed-demo",
                    "--contacts",
                    "40",
                    "--messages",
                    "80",
                    "--company-name",
                    f"search eval {language}",
                )["company_id"]
            )
            for language in LANGUAGES
        }
        result["quality"] = asyncio.run(evaluate(bench.database_url, companies))
    finally:
        bench.stop()
    write_result(RESULT, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
