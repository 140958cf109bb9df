"""The durable inbox: webhook events stored (deduplicated) before the provider gets its 200, and
the typed commands for workflows, committed with the change that asks for them (an outbound
message, follow-ups changed, a flow run's start or cancel, a campaign's start, pause, resume or
cancel). The relay is the only way in."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

import asyncpg
import orjson
from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlmodel import col

from zapflow.db import SessionFactory
from zapflow.models import (
    DeadLetter,
    DeadLetterKind,
    InboxEvent,
    InboxEventStatus,
    InboxEventType,
    WhatsAppInstance,
    WhatsAppProvider,
    utc_now,
)
from zapflow.whatsapp.types import (
    InboundMessage,
    StatusUpdate,
    WebhookEvent,
    dedupe_key,
    event_to_dict,
)

INBOX_CHANNEL = "zapflow_inbox"


@dataclass(frozen=True)
class Accepted:
    stored: int
    duplicates: int


def event_type(event: WebhookEvent) -> InboxEventType:
    if isinstance(event, InboundMessage):
        return InboxEventType.MESSAGE
    if isinstance(event, StatusUpdate):
        return InboxEventType.STATUS
    return InboxEventType.OTHER


def _status(rejected_because: str | None) -> InboxEventStatus:
    return InboxEventStatus.REJECTED if rejected_because else InboxEventStatus.PENDING


async def store_events(
    session: AsyncSession,
    instance: WhatsAppInstance,
    events: Sequence[WebhookEvent],
    correlation_id: str,
    *,
    rejected_because: str | None = None,
) -> Accepted:
    """INSERT ... ON CONFLICT DO NOTHING in the session's transaction, then wake the relay
    (NOTIFY is sent at commit). The webhook itself takes ``insert_delivery``'s leaner path.

    With ``rejected_because`` the rows are kept for audit as ``rejected`` and never relayed.
    """
    if not events:
        return Accepted(0, 0)
    rows = [
        {
            "company_id": instance.company_id,
            "instance_id": instance.id,
            "provider": instance.provider,
            "event_type": event_type(event),
            "dedupe_key": dedupe_key(event),
            "payload": event_to_dict(event),
            "correlation_id": correlation_id,
            "status": _status(rejected_because),
            "error": rejected_because,
        }
        for event in events
    ]
    statement = (
        insert(InboxEvent)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["instance_id", "dedupe_key"])
        .returning(col(InboxEvent.id))
    )
    stored = len((await session.execute(statement)).all())
    if stored and not rejected_because:
        await notify_relay(session)
    return Accepted(stored, len(rows) - stored)


@dataclass(frozen=True)
class Batch:
    """Events of one delivery filed under one instance (rejected, with the reason, if given)."""

    instance: WhatsAppInstance
    events: Sequence[WebhookEvent]
    rejected_because: str | None = None


# One statement, so one round trip and its own transaction: the rows and the NOTIFY (sent only
# when a pending row was stored) commit together before the webhook answers.
_INSERT_DELIVERY = f"""
WITH stored AS (
    INSERT INTO inbox_events (company_id, provider, correlation_id, instance_id, event_type,
                              dedupe_key, payload, status, error)
    SELECT $1::uuid, $2::text, $3::text, row.instance_id, row.event_type, row.dedupe_key,
           row.payload::jsonb, row.status, row.error
    FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
         AS row(instance_id, event_type, dedupe_key, payload, status, error)
    ON CONFLICT (instance_id, dedupe_key) DO NOTHING
    RETURNING status
), pending AS (SELECT count(*) AS n FROM stored WHERE status = 'pending')
SELECT n, CASE WHEN n > 0 THEN pg_notify('{INBOX_CHANNEL}', '') END FROM pending
"""


async def insert_delivery(
    connection: asyncpg.Connection, batches: Sequence[Batch], correlation_id: str
) -> Accepted:
    """Store a webhook delivery's events through asyncpg, without the ORM: the webhook's hot
    path. Counts cover the relayed (not rejected) events."""
    columns: tuple[list[object], ...] = ([], [], [], [], [], [])
    relayed = 0
    for batch in batches:
        status = _status(batch.rejected_because)
        relayed += 0 if batch.rejected_because else len(batch.events)
        for event in batch.events:
            for column, value in zip(
                columns,
                (
                    batch.instance.id,
                    event_type(event),
                    dedupe_key(event),
                    orjson.dumps(event_to_dict(event)).decode(),
                    status,
                    batch.rejected_because,
                ),
                strict=True,
            ):
                column.append(value)
    if not columns[0]:
        return Accepted(0, 0)
    first = batches[0].instance
    stored = await connection.fetchval(
        _INSERT_DELIVERY, first.company_id, first.provider, correlation_id, *columns
    )
    return Accepted(stored, relayed - stored)


async def store_outbound_request(
    session: AsyncSession,
    instance: WhatsAppInstance,
    message_id: uuid.UUID,
    remote_jid: str,
    correlation_id: str | None = None,
    attempt: str | None = None,
) -> None:
    """Queue an outbound message for its conversation's workflow, through the same relay.

    ``attempt`` names a deliberate resend (a dead letter's replay), which is a new inbox event.
    """
    await _store_command(
        session,
        InboxEventType.OUTBOUND,
        f"outbound:{message_id}" + (f":{attempt}" if attempt else ""),
        {"message_id": str(message_id), "remote_jid": remote_jid},
        **_on(instance),
        correlation_id=correlation_id,
    )


async def store_followups_changed(
    session: AsyncSession, instance: WhatsAppInstance, remote_jid: str
) -> None:
    """Tell a conversation's workflow, through the relay, to reload its follow-up timers."""
    payload = {"remote_jid": remote_jid}
    key = f"followup:{uuid.uuid4()}"
    await _store_command(session, InboxEventType.FOLLOWUP, key, payload, **_on(instance))


async def store_routing_wake(
    session: AsyncSession, company_id: uuid.UUID, team_id: uuid.UUID
) -> None:
    """Wake a team's routing workflow, through the relay, once this transaction commits: a
    crash after the commit cannot lose the wake (the row waits for a relay)."""
    payload = {"team_id": str(team_id)}
    key = f"routing:{uuid.uuid4()}"
    await _store_command(session, InboxEventType.ROUTING, key, payload, company_id=company_id)


async def store_slas_changed(
    session: AsyncSession, company_id: uuid.UUID, instance_id: uuid.UUID, remote_jid: str
) -> None:
    """Tell a conversation's workflow, through the relay, to reload its SLA timers."""
    await _store_command(
        session,
        InboxEventType.SLA,
        f"sla:{uuid.uuid4()}",
        {"remote_jid": remote_jid},
        company_id=company_id,
        instance_id=instance_id,
    )


async def store_flow_command(
    session: AsyncSession,
    instance: WhatsAppInstance,
    kind: InboxEventType,
    run_id: uuid.UUID,
    payload: dict[str, Any],
) -> None:
    """Queue a flow run's start or cancel for the relay (``flow_start``: the conversation's
    workflow starts the run as its child; ``flow_cancel``: the run's workflow is told to stop).
    Asking twice for the same run's start or cancel stores one row."""
    key = f"{kind.value}:{run_id}"
    await _store_command(session, kind, key, payload, **_on(instance), once=True)


async def store_read_request(
    session: AsyncSession, instance: WhatsAppInstance, message_id: uuid.UUID
) -> None:
    """Queue telling WhatsApp that an agent read the customer's message (the relay starts a
    best-effort ``MarkReadWorkflow``); asking twice for one message stores one row."""
    payload = {"message_id": str(message_id)}
    key = f"read:{message_id}"
    await _store_command(session, InboxEventType.READ, key, payload, **_on(instance), once=True)


async def store_campaign_command(
    session: AsyncSession, instance: WhatsAppInstance, campaign_id: uuid.UUID, action: str
) -> None:
    """Queue a campaign's ``start``, ``pause``, ``resume`` or ``cancel`` for the relay, which
    starts or signals its workflow to match the campaign's status at that time (so commands
    relayed out of order still leave the workflow as the row says)."""
    payload = {"campaign_id": str(campaign_id), "action": action}
    key = f"campaign:{campaign_id}:{action}:{uuid.uuid4()}"
    await _store_command(session, InboxEventType.CAMPAIGN, key, payload, **_on(instance))


class _Owner(TypedDict):
    company_id: uuid.UUID
    instance_id: uuid.UUID
    provider: WhatsAppProvider


def _on(instance: WhatsAppInstance) -> _Owner:
    """A command row's owner: the number it is about."""
    return {
        "company_id": instance.company_id,
        "instance_id": instance.id,
        "provider": instance.provider,
    }


async def _store_command(
    session: AsyncSession,
    kind: InboxEventType,
    dedupe_key: str,
    payload: dict[str, Any],
    *,
    company_id: uuid.UUID,
    instance_id: uuid.UUID | None = None,
    provider: WhatsAppProvider | None = None,
    correlation_id: str | None = None,
    once: bool = False,
) -> None:
    """A command row for the relay in the session's transaction, and the relay woken (NOTIFY is
    sent at commit). With ``once`` a row stored before under the same key keeps its place;
    otherwise the key is new (a clash is an error) and the session is flushed with the row."""
    values: dict[str, Any] = {
        "company_id": company_id,
        "instance_id": instance_id,
        "provider": provider,
        "event_type": kind,
        "dedupe_key": dedupe_key,
        "payload": payload,
        "correlation_id": correlation_id,
    }
    if once:
        statement = insert(InboxEvent).values(values)
        await session.execute(
            statement.on_conflict_do_nothing(index_elements=["instance_id", "dedupe_key"])
        )
    else:
        session.add(InboxEvent(**values))
        await session.flush()
    await notify_relay(session)


async def store_rejected(
    session: AsyncSession, instance: WhatsAppInstance, raw: bytes, error: str, correlation_id: str
) -> None:
    """Keep an authenticated delivery we could not read, for audit and as a dead letter that an
    operator can replay once the parser handles it; never relayed as it is."""
    try:
        payload = orjson.loads(raw)
        if not isinstance(payload, dict):
            payload = {"body": payload}
    except orjson.JSONDecodeError:
        payload = {"raw_text": raw.decode("utf-8", errors="replace")}
    statement = (
        insert(InboxEvent)
        .values(
            company_id=instance.company_id,
            instance_id=instance.id,
            provider=instance.provider,
            event_type=InboxEventType.OTHER,
            dedupe_key="rejected:" + hashlib.sha256(raw).hexdigest()[:40],
            payload=payload,
            status=InboxEventStatus.REJECTED,
            error=error,
            correlation_id=correlation_id,
        )
        .on_conflict_do_nothing(index_elements=["instance_id", "dedupe_key"])
        .returning(col(InboxEvent.id))
    )
    inbox_event_id = (await session.execute(statement)).scalar_one_or_none()
    if inbox_event_id is not None:  # a redelivery of the same bad body is one letter
        session.add(
            DeadLetter(
                company_id=instance.company_id,
                kind=DeadLetterKind.INBOX_EVENT,
                reference={"inbox_event_id": inbox_event_id, "instance_id": str(instance.id)},
                error=error,
                attempts=1,
            )
        )


# each row's result in one statement, whatever the pass's size
MARK_PERSISTED = text(
    """
    UPDATE inbox_events e SET persisted = r.result
    FROM unnest(CAST(:ids AS bigint[]), CAST(:results AS jsonb[])) AS r(id, result)
    WHERE e.id = r.id
    """
)


async def mark_persisted(session: AsyncSession, results: dict[int, dict[str, Any]]) -> None:
    """Write on inbound rows what their conversation's persist returned, in its transaction:
    a relay retrying a row signals that again instead of persisting the row again."""
    if results:
        values = [orjson.dumps(result).decode() for result in results.values()]
        await session.execute(MARK_PERSISTED, {"ids": list(results), "results": values})


async def notify_relay(session: AsyncSession) -> None:
    await session.execute(select(func.pg_notify(INBOX_CHANNEL, "")))


@dataclass
class Backlog:
    pending: int
    oldest_age_seconds: float


async def backlog_of(
    sessions: SessionFactory, since: Mapped[datetime], pending: ColumnElement[bool]
) -> Backlog:
    """How many rows of a queue table are ``pending``, and the age of the oldest by ``since``."""
    async with sessions() as session:
        count, oldest = (
            await session.execute(select(func.count(), func.min(since)).where(pending))
        ).one()
    age = (utc_now() - oldest).total_seconds() if oldest else 0.0
    return Backlog(pending=count, oldest_age_seconds=max(age, 0.0))


async def inbox_backlog(sessions: SessionFactory) -> Backlog:
    pending = col(InboxEvent.status) == InboxEventStatus.PENDING
    return await backlog_of(sessions, col(InboxEvent.received_at), pending)
