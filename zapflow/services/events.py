"""Live events: staged in Postgres with the data they describe, then published to Redis Streams.

An event is written to ``event_outbox`` in the same transaction as the change it announces, and
published to the company's capped Redis stream after commit: ``stage`` registers that with
``db.after_commit_last`` (one publish per transaction, whatever its steps staged) on a session
whose factory was set up by ``publish_on_commit`` (the API's and the worker's), so the operation
that stages an event owns its publishing too. If Redis is down the rows stay and the worker's
outbox publisher sends them when it returns, so nothing stored goes unannounced.
SSE clients read the stream, resuming from ``Last-Event-ID``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.db import SessionFactory, after_commit_last, attach
from zapflow.models import EventOutbox, utc_now

STREAM_MAXLEN = 20_000
PUBLISH = "publish_outbox"  # a session's info: publishes outbox ids after its commit
STAGED = "staged_events"  # a session's info: what its transaction staged, to publish


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
STAGE = text(
    """
    INSERT INTO event_outbox (company_id, event_type, payload)
    SELECT c, t, p::jsonb
    FROM unnest(CAST(:companies AS uuid[]), CAST(:types AS text[]), CAST(:payloads AS text[]))
        AS e(c, t, p)
    RETURNING id
    """
)
# Take the staged rows back; a row the background publisher holds is waited for, and gone after
CLAIM_STAGED = text("DELETE FROM event_outbox WHERE id = ANY(CAST(:ids AS bigint[])) RETURNING id")


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
    ids = list((await session.execute(STAGE, params)).scalars())
    publish = session.info.get(PUBLISH)
    if publish is not None:
        # Postgres returns an INSERT … SELECT's rows in the order it inserted them (an identity
        # column: id order); publishing checks it took back every id before sending any
        staged = [
            Staged(i, e.company_id, e.type, p)
            for i, e, p in zip(ids, events, payloads, strict=True)
        ]
        session.info.setdefault(STAGED, []).extend(staged)
        after_commit_last(session, STAGED, partial(_publish_transaction, session, publish))
    return ids


async def _publish_transaction(session: AsyncSession, publish: Any) -> None:
    """What the transaction staged, in order, in one publish (one DELETE, one Redis pipeline):
    the relay's transaction stages each of its conversations' events apart."""
    await publish(session.info.pop(STAGED, []))


async def publish_staged(sessions: SessionFactory, redis: Redis, staged: Sequence[Staged]) -> int:
    """Publish the rows a transaction just staged, from memory, and delete them: one DELETE and
    one Redis pipeline. All or none: if the background publisher took some already (it locks
    what it sends; the DELETE waits for it, then finds them gone) or Redis refuses, the rest stay
    for it; 0 then."""
    ids = {s.id for s in staged}
    try:
        async with sessions() as session, session.begin():
            claimed = await session.execute(CLAIM_STAGED, {"ids": list(ids)})
            if set(claimed.scalars()) != ids:
                raise _LeftToPublisher  # rolls the DELETE back
            await _xadd(redis, staged)
    except (_LeftToPublisher, RedisError, OSError):
        return 0
    return len(staged)


class _LeftToPublisher(Exception):
    pass


async def publish_outbox(sessions: SessionFactory, redis: Redis, limit: int = 500) -> int:
    """Publish the oldest outbox rows and delete them; 0 if Redis is down (what a commit's own
    publishing could not send: Redis was down, or the process died after the commit).

    Rows are locked with SKIP LOCKED, so this and a commit's own publishing never send the same
    row twice.
    """
    async with sessions() as session, session.begin():
        query = select(EventOutbox).order_by(col(EventOutbox.id)).limit(limit)
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
