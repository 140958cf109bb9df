"""Keyword search latency on a large seed: the newest ``RANKED_MATCHES`` matches ranked (today's
``keyword_ranking``) beside every match ranked, and beside the query before the stored column,
same data, same run; and how far the bounded ranking's top 10 departs from the full ranking's.

    nice .venv/bin/python bench/keyword_search.py [--messages 1000000] [--rounds 5] [--output F]
        [--variant bounded --variant unbounded --variant expression]

On a fresh embedded stack (Postgres only): ``zapflow seed-demo`` (one company). The variants:
``bounded`` is ``keyword_ranking`` (the keyword side of ``GET /search``, 50 candidates);
``unbounded`` the same SQL on the stored column without the bound (every match ranked);
``expression`` the query before the stored column (an index on the expression, each match's
tsvector recomputed to rank it; that index is built here for it). The queries: the 20 words found
in most messages, Portuguese stop words left out (they match nothing; ``ts_stat`` over the
``simple`` vectors: the worst case), and 10 customer-service words of ordinary frequency. Each
query runs ``--rounds`` times per variant, sequentially, one transaction each; its wall time
and its backend's CPU time (``/proc/<pid>/schedstat``: what the query costs on an idle core).
Relevance: for every query, the share of the bounded top 10 whose rank is at least the full
ranking's 10th (ties are common: ts_rank_cd of a one-word query counts the word's
occurrences). EXPLAIN (ANALYZE, BUFFERS) of the bounded query is kept for the most common word,
an ordinary one and a rare one. Seeding and index builds run niced (10), the queries at normal
priority. The machine is shared, so the load average is recorded, and the CPU figures and the
ratios (same moment, same rows) are the ones that travel.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from zapflow.bench.environment import result_header, write_result
from zapflow.bench.stack import BenchStack, tree_cpu_seconds
from zapflow.bench.stats import summarize
from zapflow.config import load_settings
from zapflow.db import SessionFactory, create_engine, session_factory, transaction
from zapflow.services.search import (
    CANDIDATES,
    RANKED_MATCHES,
    SearchFilters,
    keyword_query,
    keyword_ranking,
)

RESULT = Path(__file__).parent / "results" / "keyword_search.json"
TSQUERY = (
    "(websearch_to_tsquery('portuguese', :q) || websearch_to_tsquery('portuguese_unaccent', :q))"
)
EXPRESSION = (
    "(to_tsvector('portuguese', coalesce(body, ''))"
    " || to_tsvector('portuguese_unaccent', coalesce(body, '')))"
)
VARIANTS = {
    "unbounded": text(
        f"SELECT messages.id, ts_rank_cd(body_tsv, {TSQUERY}) AS rank"
        " FROM messages JOIN conversations ON conversations.id = messages.conversation_id"
        f" WHERE body_tsv @@ {TSQUERY} AND messages.company_id = :c"
        " ORDER BY rank DESC, messages.created_at DESC LIMIT :n"
    ),
    "expression": text(
        f"SELECT messages.id, ts_rank_cd({EXPRESSION}, {TSQUERY}) AS rank"
        " FROM messages JOIN conversations ON conversations.id = messages.conversation_id"
        f" WHERE {EXPRESSION} @@ {TSQUERY} AND messages.company_id = :c"
        " ORDER BY rank DESC, messages.created_at DESC LIMIT :n"
    ),
}
COMMON_WORDS = text(
    "SELECT word, ndoc FROM ts_stat($$SELECT to_tsvector('simple', coalesce(body, ''))"
    " FROM messages$$) ORDER BY ndoc DESC LIMIT 60"
)
ORDINARY = [
    "boleto", "reembolso", "preços", "entrega atrasada", "cancelar assinatura", "promocao",
    "cartão de crédito", "invoice", "refund", "horário",
]  # fmt: skip
RARE = "feriado"


def on_cpu_ms(pid: int) -> float:
    """Milliseconds a process has run on a CPU (``/proc/<pid>/schedstat``, nanoseconds)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e6


async def ranked(
    sessions: SessionFactory, company_id: uuid.UUID, q: str, variant: str
) -> tuple[float, float, list[tuple[uuid.UUID, float]]]:
    """Wall milliseconds of one query (one transaction), the CPU milliseconds its Postgres
    backend spent on it (what a query costs on an idle core, whatever the neighbours' load),
    and its (id, rank) rows."""
    start = time.perf_counter()
    async with transaction(sessions) as session:
        pid = int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)
        cpu = on_cpu_ms(pid)
        if variant == "bounded":
            rows = await keyword_ranking(session, company_id, q, SearchFilters(), CANDIDATES)
        else:
            result = await session.execute(
                VARIANTS[variant], {"q": q, "c": company_id, "n": CANDIDATES}
            )
            rows = [(r[0], float(r[1])) for r in result]
        cpu = on_cpu_ms(pid) - cpu
    return (time.perf_counter() - start) * 1000, cpu, rows


def agreement(bounded: list[tuple[uuid.UUID, float]], full: list[tuple[uuid.UUID, float]]) -> float:
    """Share of the bounded top 10 ranked at least as high as the full ranking's 10th."""
    top = bounded[:10]
    if not top:
        return 1.0
    tenth = full[:10][-1][1]
    return sum(rank >= tenth for _, rank in top) / len(top)


async def explain(sessions: SessionFactory, company_id: uuid.UUID, q: str) -> str:
    query = keyword_query(company_id, q, SearchFilters(), CANDIDATES)
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with transaction(sessions) as session:
        rows = await session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql))
        return "\n".join(r[0] for r in rows)


async def prepare(sessions: SessionFactory, expression: bool) -> tuple[list[tuple[str, int]], int]:
    """The expression index (the query before the stored column), the most common words."""
    async with transaction(sessions) as session:
        print("finding the common words", flush=True)
        if expression:
            await session.execute(
                text(f"CREATE INDEX idx_bench_expression ON messages USING gin ({EXPRESSION})")
            )
        await session.execute(text("ANALYZE messages"))
        common = []
        for word, ndoc in (await session.execute(COMMON_WORDS)).all():
            # Portuguese stop words match nothing: leave them out
            if await session.scalar(text(f"SELECT numnode({TSQUERY}) > 0"), {"q": word}):
                common.append((str(word), int(ndoc)))
        total = await session.scalar(text("SELECT count(*) FROM messages"))
    return common[:20], int(total or 0)


async def latencies(
    sessions: SessionFactory,
    postgres: psutil.Process,
    company_id: uuid.UUID,
    words: list[str],
    rounds: int,
    variant: str,
) -> dict[str, Any]:
    """Wall milliseconds per query (p50/p95/p99/max), the same of the backend's CPU
    milliseconds, and Postgres' CPU-ms per query (all its processes, /proc/<pid>/stat)."""
    walls, cpus = [], []
    cpu = tree_cpu_seconds(postgres)
    for _ in range(rounds):
        for q in words:
            wall, backend, _ = await ranked(sessions, company_id, q, variant)
            walls.append(wall)
            cpus.append(backend)
    cpu_ms = (tree_cpu_seconds(postgres) - cpu) * 1000 / len(walls)
    return {
        **summarize(walls),
        "backend_cpu_ms": summarize(cpus),
        "postgres_cpu_ms_per_query": round(cpu_ms, 2),
    }


async def measure(
    bench: BenchStack, company_id: uuid.UUID, rounds: int, variants: list[str]
) -> dict[str, Any]:
    engine = create_engine(load_settings(database_url=bench.database_url), pool_size=2)
    sessions = session_factory(engine)
    postgres = bench.processes()["postgres"][0]
    try:
        bench.renice(10)
        common, total = await prepare(sessions, "expression" in variants)
        bench.renice(0)
        print(f"common words: {common}", flush=True)
        out: dict[str, Any] = {
            "messages": total, "ranked_matches": RANKED_MATCHES, "common_words": common,
            "ordinary": ORDINARY, "agreement_at_10": {},
        }  # fmt: skip
        for label, words in (("common", [w for w, _ in common]), ("ordinary", ORDINARY)):
            for variant in variants:
                key = f"{label}_{variant}_ms"
                out[key] = await latencies(sessions, postgres, company_id, words, rounds, variant)
                print(f"  {key}: {out[key]}", flush=True)
            for q in words:
                bounded = (await ranked(sessions, company_id, q, "bounded"))[2]
                full = (await ranked(sessions, company_id, q, "unbounded"))[2]
                out["agreement_at_10"][q] = agreement(bounded, full)
        shares = list(out["agreement_at_10"].values())
        out["agreement_at_10_mean"] = round(sum(shares) / len(shares), 3)
        out["explain"] = {
            q: await explain(sessions, company_id, q) for q in (common[0][0], "reembolso", RARE)
        }
        return out
    finally:
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--variant", action="append", choices=["bounded", "unbounded", "expression"]
    )
    args = parser.parse_args()
    args.variant = args.variant or ["bounded", "unbounded", "expression"]
    result = result_header("keyword_search", args)
    bench = BenchStack()
    try:
        bench.start_stack()
        bench.renice(10)
        start = time.monotonic()
        seeded = bench.run_cli(
            "seed-demo", "--contacts", str(args.contacts), "--messages", str(args.messages),
            "--seed", "42", timeout=7200,
        )  # fmt: skip
        result["seed_seconds"] = round(time.monotonic() - start, 1)
        result["latency"] = asyncio.run(
            measure(bench, uuid.UUID(seeded["company_id"]), args.rounds, args.variant)
        )
    finally:
        bench.stop()
    small = RESULT.with_name("keyword_search_small.json")
    write_result(
        Path(args.output) if args.output else (RESULT if args.messages >= 1_000_000 else small),
        result,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
