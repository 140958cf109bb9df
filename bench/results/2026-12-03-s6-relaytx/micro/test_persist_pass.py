"""Micro-measurement (bench/results/2026-12-03-s6-relaytx/micro/, not a test of the suite):
the worker's CPU and SQL statements to persist one message in each of 16 conversations,
one transaction per conversation (as the workflow's persist activity, without Temporal's local
activity machinery) against one transaction for the 16 (the relay's ``persist_pass``).
Interleaved rounds on the test stack; new contacts each round (a first message)."""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid

from sqlalchemy import event
from temporalio.common import MetricMeter

from tests.fixtures.app import Tenant
from tests.fixtures.traffic import create_cloud_instance
from zapflow.activities.conversations import ConversationActivities
from zapflow.cache import Cache
from zapflow.config import Settings
from zapflow.db import create_engine, session_factory, transaction
from zapflow.models import WhatsAppInstance
from zapflow.redis import create_redis
from zapflow.services.inbox import store_events
from zapflow.whatsapp.types import InboundMessage
from zapflow.worker.metrics import WorkerMetrics
from zapflow.workflows.inputs import ConversationRef, PersistInboundInput

CONVERSATIONS = 16
ROUNDS = int(os.environ.get("MICRO_ROUNDS", "12"))
OUT = os.environ.get("MICRO_OUT")


async def test_persist_per_conversation_vs_per_pass(tenant: Tenant, settings: Settings) -> None:
    engine = create_engine(settings, pool_size=5, pre_ping=False)
    sessions = session_factory(engine)
    redis = create_redis(settings)
    persister = ConversationActivities(sessions, Cache(redis), WorkerMetrics(MetricMeter.noop))
    instance_row = await create_cloud_instance(tenant)
    statements = [0]

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(*_: object) -> None:
        statements[0] += 1

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(*_: object) -> None:
        statements[0] += 1

    @event.listens_for(engine.sync_engine, "commit")
    def _commit(*_: object) -> None:
        statements[0] += 1

    async def inputs(tag: str) -> list[PersistInboundInput]:
        made = []
        async with transaction(sessions) as session:
            instance = await session.get(WhatsAppInstance, uuid.UUID(instance_row["id"]))
            assert instance is not None
            for c in range(CONVERSATIONS):
                phone = f"5511{abs(hash((tag, c))) % 10**9:09d}"
                jid = f"{phone}@s.whatsapp.net"
                message = InboundMessage(
                    key_id=f"wamid.{tag}.{c}", remote_jid=jid, from_me=False, type="text",
                    provider="cloud", phone=f"+{phone}", body=f"bench {tag} {c}",
                    timestamp=int(time.time()),
                )  # fmt: skip
                await store_events(session, instance, [message], "micro")
                made.append(jid)
        async with sessions() as session:
            from sqlalchemy import text

            ids = dict(
                (await session.execute(
                    text("SELECT payload->>'remote_jid', id FROM inbox_events"
                         " WHERE company_id = :c AND payload->>'key_id' LIKE :k"),
                    {"c": uuid.UUID(tenant.id), "k": f"wamid.{tag}.%"},
                )).all()
            )  # fmt: skip
        ref = lambda jid: ConversationRef(tenant.id, instance_row["id"], jid)  # noqa: E731
        return [PersistInboundInput(ref(j), inbox_ids=[ids[j]], route_flows=True) for j in made]

    async def measure(mode: str, tag: str) -> tuple[float, int]:
        todo = await inputs(tag)
        statements[0] = 0
        start = time.process_time()
        if mode == "per_conversation":
            for one in todo:
                await persister.persist_pass([one])
        else:
            await persister.persist_pass(todo)
        return (time.process_time() - start) * 1000 / CONVERSATIONS, statements[0]

    await measure("per_pass", "warm1")
    await measure("per_conversation", "warm2")
    found: dict[str, list[tuple[float, int]]] = {"per_conversation": [], "per_pass": []}
    for r in range(ROUNDS):
        for mode in (("per_conversation", "per_pass") if r % 2 else ("per_pass", "per_conversation")):
            found[mode].append(await measure(mode, f"{mode}{r}"))
    summary = {
        mode: {
            "cpu_ms_per_message_median": round(statistics.median(c for c, _ in rows), 3),
            "cpu_ms_per_message_all": [round(c, 3) for c, _ in rows],
            "statements_per_message": round(statistics.median(s for _, s in rows) / CONVERSATIONS, 2),
        }
        for mode, rows in found.items()
    }
    print(json.dumps(summary, indent=1))
    if OUT:
        with open(OUT, "w") as f:
            json.dump(summary, f, indent=1)
    await redis.aclose()
    await engine.dispose()
