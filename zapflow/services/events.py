"""Live events: staged in Postgres with the data they describe, then published to Redis Streams.

An event is written to ``event_outbox`` in the same transaction as the change it announces, and
published to the company's capped Redis stream after commit: ``stage`` registers that with
``db.after_commit`` on a session whose factory was set up by ``publish_on_commit`` (the API's and
the worker's), so the operation that stages an event owns its publishing too. If Redis is down
(or the process dies after the commit) the rows stay and the worker's outbox publisher sends
them, so nothing stored goes unannounced. The two never send a row both: the publisher takes
only rows older than ``PUBLISH_GRACE``, and a commit publishes its own only while younger
than half of it.
SSE clients read the stream, resuming from ``Last-Event-ID``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.db import SessionFactory, after_commit, attach, autocommit
from zapflow.models import EventOutbox, utc_now

STREAM_MAXLEN = 20_000
PUBLISH = "publish_outbox"  # a session's info: publishes outbox ids after its commit
# The outbox publisher leaves a row this long to the transaction that staged it; that one
# publishes it from memory only while it is younger than half of this (else leaves it)
PUBLISH_GRACE = timedelta(seconds=5)


def publish_on_commit(sessions: SessionFactory, redis: Redis) -> None:
    """Every session ``sessions`` opens from now on publishes the events it stages once it
    commits (a session without it leaves them to the worker's background publisher)."""
    attach(sessions, **{PUBLISH: partial(publish_staged, sessions, redis)})


def stream_key(company_id: uuid.UUID | str) -> str:
    return f"zapflow:events:{company_id}"


@dataclass(frozen=True)
class Event:
    type: str  # "message.created", "message.status", "conversation.updated", ...
    company_id: uuid.UUID
    data: dict[str, Any]
    conversation_id: uuid.UUID | None = None
    at: datetime = field(default_factory=utc_now)

    def payload(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "conversation_id": str(self.conversation_id) if self.conversation_id else None,
            "at": self.at.isoformat(),
            "data": self.data,
        }


# One fixed statement for any number of events (one prepared statement per connection, not one
# per batch size); the payload is encoded once, and the same bytes go to Redis after the commit.
# created_at: the insert's time (not the transaction's start), what the grace counts from.
STAGE = text(
    """
    INSERT INTO event_outbox (company_id, event_type, payload, created_at)
    SELECT c, t, p::jsonb, clock_timestamp()
    FROM unnest(CAST(:companies AS uuid[]), CAST(:types AS text[]), CAST(:payloads AS text[]))
        AS e(c, t, p)
    RETURNING id
    """
)
DELETE_PUBLISHED = text("DELETE FROM event_outbox WHERE id = ANY(CAST(:ids AS bigint[]))")


@dataclass(frozen=True)
class Staged:
    """An outbox row as its stream entry will read."""

    id: int
    company_id: uuid.UUID
    event_type: str
    payload: bytes  # JSON


async def stage(session: AsyncSession, events: Sequence[Event]) -> list[int]:
    """Write events to the outbox inside the caller's transaction, to be published after its
    commit (see ``publish_on_commit``); returns their outbox ids. Flushes the session first,
    as its callers expect of it."""
    await session.flush()
    if not events:
        return []
    payloads = [orjson.dumps(e.payload(), default=str) for e in events]
    params = {
        "companies": [e.company_id for e in events],
        "types": [e.type for e in events],
        "payloads": [p.decode() for p in payloads],
    }
    staged_at = time.monotonic()  # before the insert: never later than its created_at
    ids = list((await session.execute(STAGE, params)).scalars())
    publish = session.info.get(PUBLISH)
    if publish is not None:
        # Postgres returns an INSERT … SELECT's rows in the order it inserted them (an identity
        # column: id order); publishing checks it took back every id before sending any
        staged = [
            Staged(i, e.company_id, e.type, p)
            for i, e, p in zip(ids, events, payloads, strict=True)
        ]
        after_commit(session, partial(publish, staged, staged_at))
    return ids


async def publish_staged(
    sessions: SessionFactory, redis: Redis, staged: Sequence[Staged], staged_at: float
) -> int:
    """Publish the rows a transaction just staged, from memory, then delete them: one Redis
    pipeline and one DELETE, no transaction of its own (no BEGIN and COMMIT round trips, no
    lock). The outbox publisher does not take them yet (``PUBLISH_GRACE``); past half of it,
    or if Redis refuses, they are left to it: 0 then. Dying between the two sends them twice,
    as dying before a claim's commit did."""
    if time.monotonic() - staged_at > PUBLISH_GRACE.total_seconds() / 2:
        return 0
    try:
        await _xadd(redis, staged)
    except (RedisError, OSError):
        return 0
    async with autocommit(sessions) as connection:
        await connection.execute(DELETE_PUBLISHED, {"ids": [s.id for s in staged]})
    return len(staged)


async def publish_outbox(sessions: SessionFactory, redis: Redis, limit: int = 500) -> int:
    """Publish the oldest outbox rows and delete them; 0 if Redis is down (what a commit's own
    publishing could not send: Redis was down, or the process died after the commit).

    Rows younger than ``PUBLISH_GRACE`` are their transaction's to publish; the rest are locked
    with SKIP LOCKED, so two publishers never send the same row twice.
    """
    async with sessions() as session, session.begin():
        query = (
            select(EventOutbox)
            .where(col(EventOutbox.created_at) < func.now() - PUBLISH_GRACE)
            .order_by(col(EventOutbox.id))
            .limit(limit)
        )
        rows = list((await session.execute(query.with_for_update(skip_locked=True))).scalars())
        if not rows:
            return 0
        try:
            await _xadd(
                redis,
                [
                    Staged(r.id, r.company_id, r.event_type, orjson.dumps(r.payload))
                    for r in rows
                    if r.id is not None
                ],
            )
        except (RedisError, OSError):
            return 0
        await session.execute(
            delete(EventOutbox).where(col(EventOutbox.id).in_([r.id for r in rows]))
        )
    return len(rows)


async def _xadd(redis: Redis, rows: Sequence[Staged]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for row in rows:
            pipe.xadd(
                stream_key(row.company_id),
                {"event": row.event_type, "payload": row.payload},
                maxlen=STREAM_MAXLEN,
                approximate=True,
            )
        await pipe.execute()
