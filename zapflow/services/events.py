"""Live events: staged in Postgres with the data they describe, then published to Redis Streams.

An event is written to ``event_outbox`` in the same transaction as the change it announces, and
published to the company's capped Redis stream after commit: ``stage`` registers that with
``db.after_commit`` on a session whose factory was set up by ``publish_on_commit`` (the API's and
the worker's), so the operation that stages an event owns its publishing too. If Redis is down
the rows stay and the worker's outbox publisher sends them when it returns, so nothing stored
goes unannounced.
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
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.db import SessionFactory, after_commit, attach
from zapflow.models import EventOutbox, utc_now

STREAM_MAXLEN = 20_000
PUBLISH = "publish_outbox"  # a session's info: publishes outbox ids after its commit


def publish_on_commit(sessions: SessionFactory, redis: Redis) -> None:
    """Every session ``sessions`` opens from now on publishes the events it stages once it
    commits (a session without it leaves them to the worker's background publisher)."""
    attach(sessions, **{PUBLISH: partial(publish_outbox, sessions, redis)})


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


async def stage(session: AsyncSession, events: Sequence[Event]) -> list[int]:
    """Write events to the outbox inside the caller's transaction, to be published after its
    commit (see ``publish_on_commit``); returns their outbox ids."""
    rows = [
        EventOutbox(company_id=e.company_id, event_type=e.type, payload=_jsonable(e.payload()))
        for e in events
    ]
    session.add_all(rows)
    await session.flush()
    ids = [row.id for row in rows if row.id is not None]
    publish = session.info.get(PUBLISH)
    if ids and publish is not None:
        after_commit(session, partial(publish, ids))
    return ids


def _jsonable(payload: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(payload, default=str))
    return loaded


async def publish_outbox(
    sessions: SessionFactory, redis: Redis, ids: Sequence[int] | None = None, limit: int = 500
) -> int:
    """Publish outbox rows (the given ids, or the oldest) and delete them; 0 if Redis is down.

    Rows are locked with SKIP LOCKED, so the activity that staged them and the background
    publisher never send the same row twice at once.
    """
    async with sessions() as session, session.begin():
        query = select(EventOutbox).order_by(col(EventOutbox.id)).limit(limit)
        if ids is not None:
            if not ids:
                return 0
            query = query.where(col(EventOutbox.id).in_(ids))
        rows = list((await session.execute(query.with_for_update(skip_locked=True))).scalars())
        if not rows:
            return 0
        try:
            await _xadd(redis, rows)
        except (RedisError, OSError):
            return 0
        await session.execute(
            delete(EventOutbox).where(col(EventOutbox.id).in_([r.id for r in rows]))
        )
    return len(rows)


async def _xadd(redis: Redis, rows: Sequence[EventOutbox]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for row in rows:
            pipe.xadd(
                stream_key(row.company_id),
                {"event": row.event_type, "payload": orjson.dumps(row.payload)},
                maxlen=STREAM_MAXLEN,
                approximate=True,
            )
        await pipe.execute()
