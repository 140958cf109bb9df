"""Keyword search latency on a large seed: the newest ``RANKED_MATCHES`` matches ranked (today's
``keyword_ranking``) beside every match ranked, and beside the query before the stored column,
same data, same run; and how far the bounded ranking's top 10 departs from the full ranking's.

    nice .venv/bin/python bench/keyword_search.py [--messages 1000000] [--rounds 5] [--output F]
        [--variant bounded --variant unbounded --variant expression --variant api]
        [--data-dir DIR --seed-chunk 250000]

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
occurrences; measured when ``unbounded`` runs). ``api`` is the whole request as a browser makes
it, ``GET /api/v1/search?mode=keyword&limit=20`` on one ``zapflow api`` process (auth, rate
limiter, the keyword SQL, snippets, JSON): wall per request, and the API's and Postgres' CPU-ms
per request over the batch. With ``--data-dir`` the stack is kept there and a run seeds at most
``--seed-chunk`` messages into the same company (``seed-demo --company-id``), then exits until
the company has ``--messages``: a 1M seed in runs of a few minutes each. EXPLAIN (ANALYZE,
BUFFERS) of the bounded query is kept for the most common word, an ordinary one and a rare one.
Seeding and index builds run niced (10), the queries at normal priority. The machine is shared,
so the load average is recorded, and the CPU figures and the ratios (same moment, same rows) are
the ones that travel.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from zapflow.bench.environment import result_header, write_result
from zapflow.bench.stack import BenchStack, on_cpu_ms, tree_cpu_seconds
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
STATE = "keyword_state.json"  # in --data-dir: the company seeded so far
Target = Callable[[str], Awaitable[tuple[float, float | None, list[tuple[uuid.UUID, float]]]]]
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


async def requested(
    client: httpx.AsyncClient, q: str
) -> tuple[float, float | None, list[tuple[uuid.UUID, float]]]:
    """Wall milliseconds of one ``GET /search?mode=keyword`` (no backend CPU: the API's pooled
    connection is not ours to name) and its (id, score) rows."""
    start = time.perf_counter()
    response = await client.get("/api/v1/search", params={"q": q, "mode": "keyword", "limit": 20})
    wall = (time.perf_counter() - start) * 1000
    response.raise_for_status()
    rows = [(uuid.UUID(h["message"]["id"]), float(h["score"])) for h in response.json()["data"]]
    return wall, None, rows


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
    target: Target, processes: dict[str, psutil.Process], words: list[str], rounds: int
) -> dict[str, Any]:
    """Wall milliseconds per query (p50/p95/p99/max), the same of the backend's CPU
    milliseconds (SQL variants), and each process group's CPU-ms per query (all its processes,
    /proc/<pid>/stat)."""
    walls, cpus = [], []
    before = {name: tree_cpu_seconds(p) for name, p in processes.items()}
    for _ in range(rounds):
        for q in words:
            wall, backend, _ = await target(q)
            walls.append(wall)
            if backend is not None:
                cpus.append(backend)
    out: dict[str, Any] = {**summarize(walls)}
    if cpus:
        out["backend_cpu_ms"] = summarize(cpus)
    for name, p in processes.items():
        spent = (tree_cpu_seconds(p) - before[name]) * 1000 / len(walls)
        out[f"{name}_cpu_ms_per_query"] = round(spent, 2)
    return out


async def measure(
    bench: BenchStack, company_id: uuid.UUID, args: argparse.Namespace, api_key: str | None
) -> dict[str, Any]:
    engine = create_engine(load_settings(database_url=bench.database_url), pool_size=2)
    sessions = session_factory(engine)
    processes = {"postgres": bench.processes()["postgres"][0]}
    client = None
    if "api" in args.variant:
        processes["api"] = bench.start_api()
        client = httpx.AsyncClient(
            base_url=bench.base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60
        )
    try:
        bench.renice(10)
        common, total = await prepare(sessions, "expression" in args.variant)
        bench.renice(0)
        print(f"common words: {common}", flush=True)
        out: dict[str, Any] = {
            "messages": total, "ranked_matches": RANKED_MATCHES, "common_words": common,
            "ordinary": ORDINARY, "agreement_at_10": {},
        }  # fmt: skip
        for label, words in (("common", [w for w, _ in common]), ("ordinary", ORDINARY)):
            for variant in args.variant:
                target: Target = functools.partial(ranked, sessions, company_id, variant=variant)
                if client is not None and variant == "api":
                    target = functools.partial(requested, client)
                    await latencies(target, {}, words, 1)  # the untimed pass: the API's first
                key = f"{label}_{variant}_ms"
                measured = {n: p for n, p in processes.items() if n != "api" or variant == "api"}
                out[key] = await latencies(target, measured, words, args.rounds)
                print(f"  {key}: {out[key]}", flush=True)
            for q in words if "unbounded" in args.variant else []:
                bounded = (await ranked(sessions, company_id, q, "bounded"))[2]
                full = (await ranked(sessions, company_id, q, "unbounded"))[2]
                out["agreement_at_10"][q] = agreement(bounded, full)
        shares = list(out["agreement_at_10"].values())
        out["agreement_at_10_mean"] = round(sum(shares) / len(shares), 3) if shares else None
        out["explain"] = {
            q: await explain(sessions, company_id, q) for q in (common[0][0], "reembolso", RARE)
        }
        return out
    finally:
        if client is not None:
            await client.aclose()
        await engine.dispose()


def seed(bench: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    """The company's messages: all at once, or with ``--data-dir`` one more ``--seed-chunk``
    into the company an earlier run started (what the folder holds: ``STATE``)."""
    path = args.data_dir / STATE if args.data_dir else None
    state: dict[str, Any] = {"messages": 0, "seed_seconds": 0.0, "chunks": 0}
    if path is not None and path.exists():
        state = json.loads(path.read_text())
    if state["messages"] >= args.messages:
        return state
    messages = min(args.seed_chunk or args.messages, args.messages - state["messages"])
    company = ["--company-id", state["company_id"]] if "company_id" in state else []
    bench.renice(10)
    start = time.monotonic()
    seeded = bench.run_cli(
        "seed-demo", "--contacts", str(max(1, args.contacts * messages // args.messages)),
        "--messages", str(messages), "--seed", str(42 + state["chunks"]), *company, timeout=7200,
    )  # fmt: skip
    bench.renice(0)
    state.setdefault("company_id", seeded["company_id"])
    state["api_key"] = seeded["api_key"]  # a fresh admin key each time
    state["messages"] += messages
    state["chunks"] += 1
    state["seed_seconds"] = round(state["seed_seconds"] + time.monotonic() - start, 1)
    if path is not None:
        path.write_text(json.dumps(state, indent=2))
    return state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--variant", action="append", choices=["bounded", "unbounded", "expression", "api"]
    )
    parser.add_argument("--data-dir", type=Path, help="keep the stack here, reuse what it holds")
    parser.add_argument("--seed-chunk", type=int, default=0, help="messages seeded per run")
    args = parser.parse_args()
    args.variant = args.variant or ["bounded", "unbounded", "expression"]
    result = result_header("keyword_search", args)
    bench = BenchStack(data_dir=args.data_dir)
    try:
        bench.start_stack()
        state = seed(bench, args)
        if state["messages"] < args.messages:
            print(f"seeded {state['messages']:,} of {args.messages:,}: run again", flush=True)
            return 0
        result["seed_seconds"] = state["seed_seconds"]
        company_id = uuid.UUID(state["company_id"])
        result["latency"] = asyncio.run(measure(bench, company_id, args, state["api_key"]))
    finally:
        bench.stop(keep=args.data_dir is not None)
    small = RESULT.with_name("keyword_search_small.json")
    write_result(
        Path(args.output) if args.output else (RESULT if args.messages >= 1_000_000 else small),
        result,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
