"""Server-sent events: a company's live events from its Redis stream, resumable by Last-Event-ID.

The stream holds no database session while open, sends a heartbeat every 15 s, ends when the
client goes away or after a maximum lifetime (clients reconnect with Last-Event-ID and miss
nothing the stream still holds), and never reads another company's stream.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import cast

import orjson
from fastapi import APIRouter, Header, Request
from prometheus_client import Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse, ServerSentEvent

from zapflow.api.deps import CurrentPrincipal, SessionDep, StateDep
from zapflow.services.events import stream_key
from zapflow.services.queries import get_conversation

router = APIRouter(tags=["live events"])

HEARTBEAT_SECONDS = 15
BLOCK_MS = 5_000
MAX_STREAM_SECONDS = 3_600
REDIS_RETRY_SECONDS = 1.0
SSE_OPEN = Gauge("zapflow_sse_connections_open", "Server-sent event streams open")

# (entry id, fields) pairs of a stream, as the client returns them (RESP2, decode_responses=False)
StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]


def _start_id(last_event_id: str | None) -> str:
    """Resume after the client's last event, or start with what happens from now on."""
    if last_event_id and all(part.isdigit() for part in last_event_id.split("-", 1)):
        return last_event_id
    return "$"


async def company_events(
    redis: Redis,
    request: Request,
    company_id: uuid.UUID,
    last_event_id: str | None,
    conversation_id: uuid.UUID | None = None,
) -> AsyncIterator[ServerSentEvent]:
    key = stream_key(company_id)
    cursor = _start_id(last_event_id)
    wanted = str(conversation_id) if conversation_id else None
    deadline = asyncio.get_running_loop().time() + MAX_STREAM_SECONDS
    SSE_OPEN.inc()
    try:
        while not await request.is_disconnected() and asyncio.get_running_loop().time() < deadline:
            if cursor == "$":
                cursor = await _latest_id(redis, key)
            try:
                batches = cast(
                    list[tuple[bytes, StreamEntries]] | None,
                    await redis.xread({key: cursor}, block=BLOCK_MS, count=500),
                )
            except (RedisError, OSError):
                await asyncio.sleep(REDIS_RETRY_SECONDS)
                continue
            for _, entries in batches or []:
                for entry_id, fields in entries:
                    cursor = entry_id.decode()
                    payload = orjson.loads(fields[b"payload"])
                    if wanted and payload.get("conversation_id") != wanted:
                        continue
                    yield ServerSentEvent(
                        data=orjson.dumps(payload).decode(), event=payload["type"], id=cursor
                    )
    finally:
        SSE_OPEN.dec()


async def _latest_id(redis: Redis, key: str) -> str:
    """The id of the newest entry, so "$" survives a Redis hiccup between reads."""
    try:
        newest = cast(StreamEntries, await redis.xrevrange(key, count=1))
    except (RedisError, OSError):
        return "$"
    return newest[0][0].decode() if newest else "0-0"


@router.get(
    "/stream",
    summary="Live events of the company (SSE)",
    description="`message.created`, `message.status`, `conversation.updated`, ... Reconnect with "
    "the `Last-Event-ID` header to receive what was missed.",
    response_class=EventSourceResponse,
)
async def stream(
    request: Request,
    principal: CurrentPrincipal,
    state: StateDep,
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
) -> EventSourceResponse:
    events = company_events(state.redis, request, principal.company_id, last_event_id)
    return EventSourceResponse(events, ping=HEARTBEAT_SECONDS, send_timeout=30)


@router.get(
    "/conversations/{conversation_id}/stream",
    summary="Live events of one conversation (SSE)",
    response_class=EventSourceResponse,
)
async def conversation_stream(
    conversation_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    state: StateDep,
    session: SessionDep,
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
) -> EventSourceResponse:
    await get_conversation(session, principal.company_id, conversation_id)
    await session.close()  # hold no connection while the stream is open
    events = company_events(
        state.redis, request, principal.company_id, last_event_id, conversation_id
    )
    return EventSourceResponse(events, ping=HEARTBEAT_SECONDS, send_timeout=30)
