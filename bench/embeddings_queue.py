"""The embedding queue's costs: the embedder's throughput and the trigger's Postgres CPU.

    .venv/bin/python bench/embeddings_queue.py [--messages 6000] [--inserts 4000]

On a fresh embedded stack (Postgres only is used), with ``zapflow seed-demo``'s messages:

1. **Embedder throughput** at batch 32 and 64 (the configured model, e5 by default; one
   thread, concurrency 1):
   ``zapflow worker --role embeddings`` as its own process drains the company's messages,
   queued as ``zapflow embeddings backfill`` queues them. Reported: messages per CPU-second of
   the embedder process (every queue row, and the embedded ones), Postgres CPU-ms per message
   over the drain, and the floor measured in the same run: the model alone (``encode``) on the
   same texts at the same batch size in this process, with the ratio of the two.
2. **The trigger's Postgres CPU per message**: pipeline-like inserts (10 messages per
   transaction, one INSERT per message) with the trigger disabled, enabled, and enabled
   without its NOTIFY, alternated ``--rounds`` times; the CPU is the inserting backend's own
   (``/proc/<pg_backend_pid()>/stat``), so the rest of the machine does not count.

``measure(args)`` returns the figures (for ``zapflow bench``); ``main`` also writes them to
bench/results/embeddings_queue.json. The machine is shared: the load average is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from zapflow.bench.environment import result_header, write_result
from zapflow.bench.stack import BenchStack, zapflow_command
from zapflow.config import Settings, load_settings
from zapflow.db import create_engine, session_factory, transaction
from zapflow.embeddings import embeddable_text, embedding_model
from zapflow.embeddings.e5 import E5Embedder
from zapflow.embeddings.local import LocalEmbedder
from zapflow.services.embeddings import embedding_backlog, enqueue_missing, messages_to_embed

RESULT = Path(__file__).parent / "results" / "embeddings_queue.json"
BATCH_SIZES = (32, 64)
TICKS = os.sysconf("SC_CLK_TCK")
TRIGGER_VARIANTS = ("off", "on", "on_without_notify")
INSERTS_PER_TRANSACTION = 10
QUEUE_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION enqueue_embedding() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO embedding_queue (message_id, company_id) VALUES (NEW.id, NEW.company_id);
    RETURN NULL;
END
$$
"""


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _postgres_cpu(bench: BenchStack) -> float:
    """CPU seconds of the postmaster and every backend it has (had) forked."""
    postmaster = bench.stack.postgres.process
    assert postmaster is not None
    root = psutil.Process(postmaster.pid)
    total = _cpu(root) + root.cpu_times().children_user + root.cpu_times().children_system
    for child in root.children():
        with contextlib.suppress(psutil.NoSuchProcess):
            total += _cpu(child)
    return total


async def _wait_until(bench: BenchStack, probe: Callable[[], Any], within: float = 3600) -> None:
    deadline = time.monotonic() + within
    while not await probe():
        bench.check_processes()
        if time.monotonic() > deadline:
            raise TimeoutError("the embedder did not drain the queue")
        await asyncio.sleep(0.2)


def _model_only(settings: Settings, batch: int) -> E5Embedder | LocalEmbedder:
    """The embedder process's model, called here directly (the floor)."""
    if settings.embedding_provider == "e5":
        return E5Embedder(settings.embedding_e5_variant, batch_size=batch)
    return LocalEmbedder()  # with its forward passes of 16


async def embedder_throughput(bench: BenchStack, company_id: str) -> list[dict[str, Any]]:
    settings = load_settings(database_url=bench.database_url)
    model = embedding_model(settings)
    engine = create_engine(settings, pool_size=2)
    sessions = session_factory(engine)
    company = uuid.UUID(company_id)
    # the seed repeats its few hundred lines, and the embedder embeds a text once per batch and
    # reuses recent vectors: numbered, every message is a text the model must read
    bench.psql("UPDATE messages SET body = body || ' #' || left(id::text, 8) WHERE body <> ''")
    async with sessions() as session:
        pending = await messages_to_embed(session, model, company_id=company)
    shortest = settings.embedding_min_chars
    texts = [t for m in pending if (t := embeddable_text(m.body, m.media, shortest))]
    rows: list[dict[str, Any]] = []

    async def drained() -> bool:
        return (await embedding_backlog(sessions)).pending == 0

    async def queue_all() -> int:
        bench.psql("DELETE FROM conversation_embeddings")
        async with transaction(sessions) as session:
            queued, _ = await enqueue_missing(session, model, company)
        return queued

    try:
        for batch in BATCH_SIZES:
            env = {"ZAPFLOW_EMBEDDING_BATCH_SIZE": str(batch)}
            process = bench.start(
                f"embedder-{batch}", zapflow_command("worker", "--role", "embeddings"), env=env
            )
            # warm up: the model loads on the first batch, outside the measurement
            bench.psql(
                "INSERT INTO embedding_queue (message_id, company_id) SELECT id, company_id"
                " FROM messages WHERE body <> '' LIMIT 8 ON CONFLICT DO NOTHING"
            )
            await _wait_until(bench, drained)
            cpu, pg, wall = _cpu(process), _postgres_cpu(bench), time.monotonic()
            queued = await queue_all()
            await _wait_until(bench, drained)
            cpu, pg = _cpu(process) - cpu, _postgres_cpu(bench) - pg
            wall = time.monotonic() - wall
            bench.children.pop(f"embedder-{batch}").stop()
            # the same texts in calls of ``batch`` in an arbitrary order, as the queue hands
            # them over (encoding them all at once would sort them by length across batches,
            # padding less than any queue can)
            floor = _model_only(settings, batch)
            floor.encode(texts[:8])
            started = time.process_time()
            for start in range(0, len(texts), batch):
                floor.encode(texts[start : start + batch])
            floor_cpu = time.process_time() - started
            row = {
                "batch": batch,
                "queued": queued,
                "embedded": len(texts),
                "embedder_cpu_s": round(cpu, 2),
                "wall_s": round(wall, 2),
                "queue_rows_per_cpu_s": round(queued / cpu, 1),
                "embedded_per_cpu_s": round(len(texts) / cpu, 1),
                "postgres_cpu_ms_per_message": round(pg * 1000 / queued, 2),
                "floor_model_only_cpu_s": round(floor_cpu, 2),
                "floor_embedded_per_cpu_s": round(len(texts) / floor_cpu, 1),
                "ratio_to_floor": round(cpu / floor_cpu, 2),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        await engine.dispose()
    return rows


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


async def trigger_cost(bench: BenchStack, inserts: int, rounds: int) -> dict[str, Any]:
    dsn = bench.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(dsn)
    try:
        conversation = await connection.fetchrow(
            "SELECT id, company_id, instance_id FROM conversations LIMIT 1"
        )
        assert conversation is not None
        backend = await connection.fetchval("SELECT pg_backend_pid()")
        insert = await connection.prepare(
            "INSERT INTO messages (company_id, conversation_id, instance_id, message_key_id,"
            " direction, type, body, payload, status, sent_by)"
            " VALUES ($1, $2, $3, $4, 'inbound', 'text', $5, '{}', 'received', 'customer')"
        )
        migration_function = await connection.fetchval(
            "SELECT pg_get_functiondef('enqueue_embedding'::regproc)"
        )
        seconds: dict[str, list[float]] = {v: [] for v in TRIGGER_VARIANTS}
        for _ in range(rounds):
            for variant in TRIGGER_VARIANTS:
                bench.psql(
                    "ALTER TABLE messages "
                    + ("DISABLE" if variant == "off" else "ENABLE")
                    + " TRIGGER messages_embedding_queue"
                )
                if variant == "on_without_notify":
                    await connection.execute(QUEUE_ONLY_FUNCTION)
                before = _backend_cpu(backend)
                for start in range(0, inserts, INSERTS_PER_TRANSACTION):
                    async with connection.transaction():
                        for i in range(start, start + INSERTS_PER_TRANSACTION):
                            await insert.fetch(
                                conversation["company_id"], conversation["id"],
                                conversation["instance_id"], f"bench.{uuid.uuid4().hex}",
                                f"Benchmark message {i}: is my order on its way yet?",
                            )  # fmt: skip
                seconds[variant].append(_backend_cpu(backend) - before)
                if variant == "on_without_notify":  # back to the migration's function
                    await connection.execute(migration_function)
                bench.psql("DELETE FROM embedding_queue")
    finally:
        await connection.close()
    per_message = {v: round(sum(s) * 1000 / (inserts * rounds), 3) for v, s in seconds.items()}
    return {
        "inserts_per_round": inserts,
        "rounds": rounds,
        "messages_per_transaction": INSERTS_PER_TRANSACTION,
        "backend_cpu_ms_per_message": per_message,
        "trigger_cpu_ms_per_message": round(per_message["on"] - per_message["off"], 3),
        "notify_cpu_ms_per_message": round(per_message["on"] - per_message["on_without_notify"], 3),
        "seconds_by_round": {v: [round(x, 2) for x in s] for v, s in seconds.items()},
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    result = result_header("embeddings_queue", args)
    bench = BenchStack()
    try:
        bench.start_stack()
        seeded = bench.run_cli(
            "seed-demo", "--contacts", str(args.messages // 10), "--messages", str(args.messages),
            "--seed", "42", timeout=3600,
        )  # fmt: skip
        print("embedder throughput:", flush=True)
        result["throughput"] = asyncio.run(embedder_throughput(bench, seeded["company_id"]))
        print("trigger cost:", flush=True)
        result["trigger"] = asyncio.run(trigger_cost(bench, args.inserts, args.rounds))
        print(json.dumps(result["trigger"]), flush=True)
    finally:
        bench.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=6_000, help="seeded messages to embed")
    parser.add_argument("--inserts", type=int, default=4_000, help="messages per trigger round")
    parser.add_argument("--rounds", type=int, default=3)
    write_result(RESULT, measure(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
