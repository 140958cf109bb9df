"""The relay's pass stores its conversations a step at a time for them all
(``services/conversations.persist_chats``): what it stores and answers is what storing them one
by one does, and its statements do not grow with the number of conversations."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from sqlalchemy import event, select, text
from sqlmodel import col
from temporalio.common import MetricMeter

from tests.fixtures.app import Tenant
from tests.fixtures.traffic import create_cloud_instance
from tests.test_flows_runs import published, sample
from tests.test_stored_batches import _inbox_row
from zapflow.activities.conversations import STORED, ConversationActivities
from zapflow.cache import Cache
from zapflow.config import Settings
from zapflow.db import SessionFactory, attach, create_engine, session_factory, transaction
from zapflow.models import (
    Conversation,
    ConversationStatus,
    FlowRun,
    FollowUp,
    FollowUpStatus,
    Message,
    utc_now,
)
from zapflow.redis import create_redis
from zapflow.services import flow_runs, flows
from zapflow.services.events import PUBLISH, Staged
from zapflow.worker.metrics import WorkerMetrics
from zapflow.workflows.inputs import ConversationRef, PersistInboundInput

BASE = int(time.time()) - 600  # every scenario's messages at the same provider times


@dataclass
class Persister:
    """The relay's persist on an engine of its own: its statements counted, its events kept."""

    activities: ConversationActivities
    sessions: SessionFactory
    statements: list[str]
    staged: list[Staged]


@pytest.fixture
async def persister(settings: Settings) -> AsyncIterator[Persister]:
    engine = create_engine(settings, pool_size=2, pre_ping=False)
    sessions = session_factory(engine)
    statements: list[str] = []
    staged: list[Staged] = []

    async def keep(published: list[Staged]) -> None:  # the outbox rows stay for the publisher
        staged.extend(published)

    attach(sessions, **{PUBLISH: keep})
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    redis = create_redis(settings)
    activities = ConversationActivities(sessions, Cache(redis), WorkerMetrics(MetricMeter.noop))
    yield Persister(activities, sessions, statements, staged)
    await redis.aclose()
    await engine.dispose()


def _jid(prefix: str, i: int) -> str:
    return f"55119{prefix}{i:04d}@s.whatsapp.net"


def _key(prefix: str, i: int, n: int) -> str:
    """Message ``n`` of chat ``i``: named ``i.n`` in both scenarios."""
    return f"wamid.{uuid.uuid4().hex[:6]}{prefix}-{i}.{n}"


async def _inbox(sessions: SessionFactory, instance_id: str, jid: str, key: str, body: str) -> int:
    """A customer's message in the inbox, marked processed (the relay leaves it alone)."""
    at = BASE + int(key.rsplit(".", 1)[1])
    return await _inbox_row(sessions, instance_id, jid, key_id=key, body=body, timestamp=at)


async def _store(
    persister: Persister, tenant: Tenant, instance_id: str, chats: dict[str, list[int]]
) -> list[PersistInboundInput]:
    """The inputs of a pass (the relay's order) for these chats' inbox rows."""
    inputs = [
        PersistInboundInput(ConversationRef(tenant.id, instance_id, jid), inbox_ids=rows,
                            route_flows=True)
        for jid, rows in chats.items()
    ]  # fmt: skip
    return sorted(inputs, key=lambda i: i.ref.workflow_id)


async def _scenario(
    persister: Persister, tenant: Tenant, flow_id: str, prefix: str, together: bool
) -> dict[str, Any]:
    """Three known conversations (one with a follow-up to cancel, one with a run in progress,
    one closed) and three new ones (one saying the trigger's keyword), plus a message stored
    already: stored in one pass or one by one. What it stored and answered, with ids named."""
    sessions = persister.sessions
    instance = (await create_cloud_instance(tenant))["id"]
    jids = [_jid(prefix, i) for i in range(6)]
    first = {j: await _inbox(sessions, instance, j, _key(prefix, i, 0), "hello")
             for i, j in enumerate(jids[:3])}  # fmt: skip
    for one in await _store(persister, tenant, instance, {j: [first[j]] for j in jids[:3]}):
        await persister.activities.persist_pass([one])
    async with transaction(sessions) as session:
        found = await session.execute(select(Conversation).where(
            col(Conversation.instance_id) == uuid.UUID(instance)))  # fmt: skip
        known = {c.remote_jid: c for c in found.scalars()}
        followup, closed = known[jids[0]], known[jids[2]]
        session.add(FollowUp(company_id=followup.company_id, conversation_id=followup.id,
                             contact_id=followup.contact_id, scheduled_for=utc_now(),
                             message_text="still there?"))  # fmt: skip
        flow = await flows.get_flow(session, uuid.UUID(tenant.id), uuid.UUID(flow_id))
        await flow_runs.new_run(session, flow, known[jids[1]])
        closed.status = ConversationStatus.CLOSED
    bodies = ["any news?", "2", "back again", "start", "hi", "one"]
    chats = {j: [await _inbox(sessions, instance, j, _key(prefix, i, 1), b)]
             for i, (j, b) in enumerate(zip(jids, bodies, strict=True))}  # fmt: skip
    chats[jids[1]].insert(0, first[jids[1]])  # stored already: skipped
    chats[jids[5]].append(await _inbox(sessions, instance, jids[5], _key(prefix, 5, 2), "two"))
    inputs = await _store(persister, tenant, instance, chats)
    persister.staged.clear()
    if together:
        results = await persister.activities.persist_pass(inputs)
    else:
        results = [r for one in inputs for r in await persister.activities.persist_pass([one])]
    return await _named(sessions, instance, jids, results, persister.staged)


async def _named(
    sessions: SessionFactory,
    instance: str,
    jids: list[str],
    results: list[Any],
    staged: list[Staged],
) -> dict[str, Any]:
    """The scenario's rows, results and events, each id replaced by a name both runs share."""
    names: dict[Any, str] = {}
    async with sessions() as session:
        conversations = (await session.execute(select(Conversation).where(
            col(Conversation.instance_id) == uuid.UUID(instance)))).scalars().all()  # fmt: skip
        for c in conversations:
            n = jids.index(c.remote_jid)
            names |= {c.id: f"c{n}", c.contact_id: f"contact{n}", c.workflow_id: f"w{n}"}
        ids = [c.id for c in conversations]
        messages = (await session.execute(select(Message).where(
            col(Message.conversation_id).in_(ids)))).scalars().all()  # fmt: skip
        followups = (await session.execute(select(FollowUp).where(
            col(FollowUp.conversation_id).in_(ids)))).scalars().all()  # fmt: skip
        runs = (await session.execute(select(FlowRun).where(
            col(FlowRun.conversation_id).in_(ids)))).scalars().all()  # fmt: skip
        inbox = (await session.execute(text(
            "SELECT id, payload->>'key_id' FROM inbox_events WHERE instance_id = :i"),
            {"i": uuid.UUID(instance)})).all()  # fmt: skip
    for m in messages:
        names[m.id] = (m.message_key_id or "").split("-", 1)[1]
    names |= {f.id: f"followup-{names[f.conversation_id]}" for f in followups}
    names |= {r.id: f"run-{names[r.conversation_id]}" for r in runs}
    names |= {r.workflow_id: f"run-workflow-{names[r.conversation_id]}" for r in runs}
    inbox_names = {row_id: f"row-{key.split('-', 1)[1]}" for row_id, key in inbox}
    rows = {
        "conversations": sorted((names[c.id], c.status, c.message_count, c.unread_count,
                                 c.last_message_preview, c.is_paused, c.last_inbound_at)
                                for c in conversations),
        "messages": sorted((names[m.conversation_id], names[m.id], m.direction, m.type, m.body,
                            m.status, m.sent_by) for m in messages),
        "followups": sorted((names[f.conversation_id], f.status, f.failure_reason)
                            for f in followups),
        "runs": sorted((names[r.conversation_id], r.status, r.flow_version) for r in runs),
    }  # fmt: skip
    events: dict[str, list[str]] = {}
    for s in staged:
        payload = orjson.loads(s.payload)
        events.setdefault(names[uuid.UUID(payload["conversation_id"])], []).append(s.event_type)
    answered = [
        _renamed(STORED.dump_python(r, mode="json"), names)
        | {"persisted_inbox_ids": [inbox_names[i] for i in r.persisted_inbox_ids]}
        for r in results
    ]
    return {"rows": rows, "results": sorted(answered, key=str), "events": events}


def _renamed(value: Any, names: dict[Any, str]) -> Any:
    if isinstance(value, dict):
        return {k: _renamed(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, names) for v in value]
    for key in _keys(value):
        if key in names:
            return names[key]
    return value


def _keys(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            yield uuid.UUID(value)


async def test_a_pass_stores_what_one_by_one_stores(tenant: Tenant, persister: Persister) -> None:
    document = {**sample(), "triggers": [{"type": "keyword", "keywords": ["start"]}]}
    flow_id = await published(tenant.client, document)
    together = await _scenario(persister, tenant, flow_id, "1", together=True)
    apart = await _scenario(persister, tenant, flow_id, "2", together=False)
    assert together == apart
    rows = together["rows"]
    assert [f[1:] for f in rows["followups"]] == [(FollowUpStatus.CANCELLED, "customer_replied")]
    assert {r[0] for r in rows["runs"]} == {"c1", "c3"}  # the one in progress, one started
    assert [c[1] for c in rows["conversations"]] == [ConversationStatus.OPEN] * 6  # one reopened
    assert len(rows["messages"]) == 3 + 7
    by_conversation = {r["conversation_id"]: r for r in together["results"]}
    assert by_conversation["c0"]["cancelled_followup_ids"] == ["followup-c0"]
    assert by_conversation["c1"]["flow"]["active_run_id"] == "run-c1"
    assert by_conversation["c1"]["new_message_ids"] == [by_conversation["c1"]["new_message_ids"][0]]
    assert by_conversation["c3"]["flow"]["start"]["run_id"] == "run-c3"
    assert together["events"]["c0"] == [
        "message.created",
        "conversation.updated",
        "followup.cancelled",
    ]


async def test_a_pass_runs_as_many_statements_for_many_conversations_as_for_few(
    tenant: Tenant, persister: Persister
) -> None:
    """New people (their first message), then the same people again: the pass of 6 runs the
    statements of the pass of 2."""
    instance = (await create_cloud_instance(tenant))["id"]
    counts = []
    for n, prefix in ((1, "3"), (2, "4"), (6, "5")):  # the first fills the caches
        jids = [_jid(prefix, i) for i in range(n)]
        for round in (1, 2):
            chats = {j: [await _inbox(persister.sessions, instance, j, _key(prefix, i, round),
                                      "hello")] for i, j in enumerate(jids)}  # fmt: skip
            inputs = await _store(persister, tenant, instance, chats)
            persister.statements.clear()
            results = await persister.activities.persist_pass(inputs)
            assert all(len(r.new_message_ids) == 1 for r in results)
            counts.append(len(persister.statements))
    _, _, new_few, known_few, new_many, known_many = counts
    assert (new_many, known_many) == (new_few, known_few), persister.statements
