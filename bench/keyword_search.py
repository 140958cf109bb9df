"""Keyword search latency on a large seed: Portuguese stemming and unaccent (today's index) beside
the ``simple`` configuration it replaced, same data, same run.

    .venv/bin/python bench/keyword_search.py [--messages 1000000] [--rounds 5]

On a fresh embedded stack (Postgres only): ``zapflow seed-demo`` (one company), then the old
``simple`` GIN index is built beside today's so both queries have their index. The queries: the
20 words found in most messages (``ts_stat`` over the ``simple`` vectors: the worst case, each
matching a large share of the company) and 10 customer-service words of ordinary frequency.
Each query runs ``--rounds`` times, sequentially, one transaction each, through
``keyword_ranking`` (the keyword side of ``GET /search``, 50 candidates), and the same SQL on
``simple``, and on a stored (generated) column holding today's expression (the next step,
measured here, not built). Writes bench/results/keyword_search.json; the machine is shared, so
the load average is recorded, and the ratios (same moment, same rows) are the figures that
travel.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from zapflow.bench.environment import result_header, write_result
from zapflow.bench.stack import BenchStack
from zapflow.bench.stats import summarize
from zapflow.config import load_settings
from zapflow.db import SessionFactory, create_engine, session_factory, transaction
from zapflow.services.search import CANDIDATES, SearchFilters, keyword_ranking

RESULT = Path(__file__).parent / "results" / "keyword_search.json"
# the next step measured, not built: today's expression stored in a generated column, so ranking
# reads each match's tsvector instead of recomputing it
STORED = (
    "to_tsvector('portuguese', coalesce(body, ''))"
    " || to_tsvector('portuguese_unaccent', coalesce(body, ''))"
)
STORED_QUERY = text(
    "SELECT messages.id, ts_rank_cd(bench_tsv, q) AS rank"
    " FROM messages JOIN conversations ON conversations.id = messages.conversation_id,"
    " (SELECT websearch_to_tsquery('portuguese', :q) || websearch_to_tsquery("
    "'portuguese_unaccent', :q) AS q) AS query"
    " WHERE bench_tsv @@ q AND messages.company_id = :c"
    " ORDER BY rank DESC, messages.created_at DESC LIMIT :n"
)
ORDINARY = [
    "boleto", "reembolso", "preços", "entrega atrasada", "cancelar assinatura", "promocao",
    "cartão de crédito", "invoice", "refund", "horário",
]  # fmt: skip
SIMPLE = "to_tsvector('simple', coalesce(messages.body, ''))"
# the query the `simple` index served (before this change), for the same company and limit
SIMPLE_QUERY = text(
    f"SELECT messages.id, ts_rank_cd({SIMPLE}, websearch_to_tsquery('simple', :q)) AS rank"
    " FROM messages JOIN conversations ON conversations.id = messages.conversation_id"
    f" WHERE {SIMPLE} @@ websearch_to_tsquery('simple', :q) AND messages.company_id = :c"
    " ORDER BY rank DESC, messages.created_at DESC LIMIT :n"
)


async def timed(sessions: SessionFactory, company_id: uuid.UUID, q: str, variant: str) -> float:
    start = time.perf_counter()
    async with transaction(sessions) as session:
        if variant == "portuguese_unaccent":
            await keyword_ranking(session, company_id, q, SearchFilters(), CANDIDATES)
        else:
            query = SIMPLE_QUERY if variant == "simple" else STORED_QUERY
            await session.execute(query, {"q": q, "c": company_id, "n": CANDIDATES})
    return (time.perf_counter() - start) * 1000


async def measure(database_url: str, company_id: uuid.UUID, rounds: int) -> dict[str, Any]:
    engine = create_engine(load_settings(database_url=database_url), pool_size=2)
    sessions = session_factory(engine)
    try:
        async with transaction(sessions) as session:
            print("building the simple index, the stored column, the common words", flush=True)
            await session.execute(
                text(f"CREATE INDEX idx_bench_body_simple ON messages USING gin (({SIMPLE}))")
            )
            await session.execute(
                text(
                    f"ALTER TABLE messages ADD COLUMN bench_tsv tsvector GENERATED ALWAYS AS"
                    f" ({STORED}) STORED"
                )
            )
            await session.execute(
                text("CREATE INDEX idx_bench_tsv ON messages USING gin (bench_tsv)")
            )
            await session.execute(text("ANALYZE messages"))
            common = [
                (word, ndoc)
                for word, ndoc in await session.execute(
                    text(
                        "SELECT word, ndoc FROM ts_stat('SELECT to_tsvector(''simple'',"
                        " coalesce(body, '''')) FROM messages') ORDER BY ndoc DESC LIMIT 20"
                    )
                )
            ]
            total = await session.scalar(text("SELECT count(*) FROM messages"))
        print(f"common words: {common}", flush=True)
        out: dict[str, Any] = {"messages": total, "common_words": common, "ordinary": ORDINARY}
        for label, words in (("common", [w for w, _ in common]), ("ordinary", ORDINARY)):
            for variant in ("portuguese_unaccent", "simple", "stored"):
                times = []
                for _ in range(rounds):
                    for q in words:
                        times.append(await timed(sessions, company_id, q, variant))
                key = f"{label}_{variant}_ms"
                out[key] = summarize(times)
                print(f"  {key}: {out[key]}", flush=True)
        return out
    finally:
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result = result_header("keyword_search", args)
    bench = BenchStack()
    try:
        bench.start_stack()
        start = time.monotonic()
        seeded = bench.run_cli(
            "seed-demo", "--contacts", str(args.contacts), "--messages", str(args.messages),
            "--seed", "42", timeout=7200,
        )  # fmt: skip
        result["seed_seconds"] = round(time.monotonic() - start, 1)
        result["latency"] = asyncio.run(
            measure(bench.database_url, uuid.UUID(seeded["company_id"]), args.rounds)
        )
    finally:
        bench.stop()
    write_result(
        RESULT if args.messages >= 1_000_000 else RESULT.with_name("keyword_search_small.json"),
        result,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
