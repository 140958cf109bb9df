"""Report latency on the 1M-message seed: every ``GET /api/v1/reports/...`` through a real API
process, sequentially, after one warm-up call each.

    nice .venv/bin/python bench/reports_latency.py [--messages 1000000] [--contacts 100000]
        [--rounds 40] [--output F] [--keep]

On a fresh embedded stack: ``zapflow seed-demo`` (one company, its resolutions, SLA targets and
rollups as the app would have written them), then ``zapflow api``. Each report is asked
``--rounds`` times for the last 30 days and for the seed's whole 90 days (JSON; and once as
CSV), with the admin key the seed made. Per report: wall-time percentiles seen by the client,
and CPU-ms per request of the API process and of Postgres (all backends), read from /proc
around the report's rounds.
Also timed: rebuilding the company's hourly rollups from its 1M messages (what the first
report after a bulk load would pay; the seed pays it), then ``VACUUM ANALYZE`` (autovacuum's
work after the load, kept out of the measured rounds). The machine is shared: the load average
is recorded; CPU per request travels better than wall time. ``--keep`` leaves the data folder.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from zapflow.bench.environment import result_header, write_result
from zapflow.bench.stack import BenchStack, tree_cpu_seconds
from zapflow.bench.stats import summarize
from zapflow.config import load_settings
from zapflow.db import create_engine, session_factory, transaction
from zapflow.services.reports import rebuild_rollups

RESULT = Path(__file__).parent / "results" / "reports.json"
REPORTS = {
    "conversations_by_day": ("/api/v1/reports/conversations", {"group_by": "day"}),
    "conversations_by_team": ("/api/v1/reports/conversations", {"group_by": "team"}),
    "conversations_by_agent": ("/api/v1/reports/conversations", {"group_by": "agent"}),
    "slas_by_day": ("/api/v1/reports/slas", {"group_by": "day"}),
    "slas_by_team": ("/api/v1/reports/slas", {"group_by": "team"}),
    "slas_by_agent": ("/api/v1/reports/slas", {"group_by": "agent"}),
    "messages": ("/api/v1/reports/messages", {}),
    "heatmap": ("/api/v1/reports/heatmap", {}),
    "csat": ("/api/v1/reports/csat", {}),
}
RANGES = {"30d": 29, "90d": 89}


def _cpu(bench: BenchStack) -> dict[str, float]:
    groups = bench.processes()
    return {name: sum(tree_cpu_seconds(p) for p in groups[name]) for name in ("api", "postgres")}


async def measure(bench: BenchStack, api_key: str, rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {api_key}"}
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(base_url=bench.base_url, headers=headers, timeout=30) as client:
        for range_name, days in RANGES.items():
            start = today.fromordinal(today.toordinal() - days)
            for name, (path, params) in REPORTS.items():
                query = {**params, "from": start.isoformat(), "to": today.isoformat()}
                first = time.perf_counter()
                warm = await client.get(path, params=query)
                warm.raise_for_status()
                cold_ms = (time.perf_counter() - first) * 1000
                before = _cpu(bench)
                walls = []
                for _ in range(rounds):
                    t = time.perf_counter()
                    (await client.get(path, params=query)).raise_for_status()
                    walls.append((time.perf_counter() - t) * 1000)
                after = _cpu(bench)
                t = time.perf_counter()
                (await client.get(path, params={**query, "format": "csv"})).raise_for_status()
                key = f"{name}_{range_name}"
                out[key] = {
                    "wall_ms": summarize(walls),
                    "first_call_ms": round(cold_ms, 1),
                    "csv_ms": round((time.perf_counter() - t) * 1000, 1),
                    "cpu_ms_per_request": {
                        k: round((after[k] - before[k]) * 1000 / rounds, 2) for k in after
                    },
                    "rows": _size(warm.json()),
                }
                print(f"  {key}: {out[key]}", flush=True)
    return out


def _size(body: dict[str, Any]) -> int:
    return len(body.get("rows") or body.get("days") or body.get("cells") or [])


async def rebuild_seconds(bench: BenchStack, company_id: uuid.UUID) -> float:
    engine = create_engine(load_settings(database_url=bench.database_url), pool_size=1)
    try:
        started = time.perf_counter()
        async with transaction(session_factory(engine)) as session:
            await rebuild_rollups(session, company_id, datetime.now(UTC))
        return round(time.perf_counter() - started, 2)
    finally:
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--output", default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    result = result_header("reports", args)
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
        result["facts"] = {
            "resolutions": int(bench.psql("SELECT count(*) FROM conversation_resolutions")),
            "sla_targets": int(bench.psql("SELECT count(*) FROM sla_targets")),
            "rollup_rows": int(bench.psql("SELECT count(*) FROM message_rollups")),
            "messages": int(bench.psql("SELECT count(*) FROM messages")),
        }
        company_id = uuid.UUID(seeded["company_id"])
        result["rollup_rebuild_seconds"] = asyncio.run(rebuild_seconds(bench, company_id))
        # what autovacuum does after a bulk load (statistics, the visibility map index-only
        # scans rely on), done before the rounds: the steady state, and not counted in them
        start = time.monotonic()
        bench.psql("VACUUM ANALYZE")
        result["vacuum_seconds"] = round(time.monotonic() - start, 1)
        bench.renice(0)
        bench.start_api()
        result["reports"] = asyncio.run(measure(bench, seeded["api_key"], args.rounds))
    finally:
        bench.stop(keep=args.keep)
    small = RESULT.with_name("reports_small.json")
    write_result(
        Path(args.output) if args.output else (RESULT if args.messages >= 1_000_000 else small),
        result,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
