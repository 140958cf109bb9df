"""Server-sent events: a company's live events from its Redis stream, resumable by Last-Event-ID.

The stream holds no database session while open, sends a heartbeat every 15 s, ends when the
client goes away or after a maximum lifetime (clients reconnect with Last-Event-ID and miss
nothing the stream still holds), and never reads another company's stream.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, Header, Request
from prometheus_client import Gauge
from sse_starlette import EventSourceResponse, ServerSentEvent

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, StateDep
from zapflow.api.stream_hub import Entry, StreamHub, entry_order
from zapflow.services.events import stream_key
from zapflow.services.permissions import Permission
from zapflow.services.queries import get_conversation

router = APIRouter(tags=["live events"])

HEARTBEAT_SECONDS = 15
WAIT_SECONDS = 5.0  # how often an idle stream checks for a gone client and its lifetime
MAX_STREAM_SECONDS = 3_600
SSE_OPEN = Gauge(
    "zapflow_sse_connections_open",
    "Server-sent event streams open (of every API process)",
    multiprocess_mode="sum",
)


def _resume_id(last_event_id: str | None) -> str | None:
    """The client's last event id when it is one, else None (start with what happens next)."""
    if last_event_id and all(part.isdigit() for part in last_event_id.split("-", 1)):
        return last_event_id
    return None


def _event(entry: Entry, wanted: str | None) -> ServerSentEvent | None:
    entry_id, raw = entry
    payload = orjson.loads(raw)
    if wanted and payload.get("conversation_id") != wanted:
        return None
    return ServerSentEvent(data=orjson.dumps(payload).decode(), event=payload["type"], id=entry_id)


async def company_events(
    hub: StreamHub,
    request: Request,
    company_id: uuid.UUID,
    last_event_id: str | None,
    conversation_id: uuid.UUID | None = None,
) -> AsyncIterator[ServerSentEvent]:
    key = stream_key(company_id)
    wanted = str(conversation_id) if conversation_id else None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MAX_STREAM_SECONDS
    SSE_OPEN.inc()
    try:
        async with hub.subscribe(key) as subscriber:
            cursor = _resume_id(last_event_id)
            if cursor is not None:
                async for entry in hub.missed(key, cursor):
                    cursor = entry[0]
                    if event := _event(entry, wanted):
                        yield event
            while loop.time() < deadline and not await request.is_disconnected():
                try:
                    live = await asyncio.wait_for(subscriber.queue.get(), WAIT_SECONDS)
                except TimeoutError:
                    continue
                if live is None:
                    return  # fell behind: the client reconnects with Last-Event-ID
                if cursor is not None and entry_order(live[0]) <= entry_order(cursor):
                    continue  # already sent from what it missed
                cursor = live[0]
                if event := _event(live, wanted):
                    yield event
    finally:
        SSE_OPEN.dec()


@router.get(
    "/stream",
    summary="Live events of the company (SSE)",
    description="`message.created`, `message.status`, `conversation.updated`, ... Reconnect with "
    "the `Last-Event-ID` header to receive what was missed.",
    response_class=EventSourceResponse,
    dependencies=[Requires(Permission.EVENTS_READ)],
)
async def stream(
    request: Request,
    principal: CurrentPrincipal,
    state: StateDep,
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
) -> EventSourceResponse:
    events = company_events(state.streams, request, principal.company_id, last_event_id)
    return EventSourceResponse(events, ping=HEARTBEAT_SECONDS, send_timeout=30)


@router.get(
    "/conversations/{conversation_id}/stream",
    summary="Live events of one conversation (SSE)",
    response_class=EventSourceResponse,
    dependencies=[Requires(Permission.EVENTS_READ)],
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
        state.streams, request, principal.company_id, last_event_id, conversation_id
    )
    return EventSourceResponse(events, ping=HEARTBEAT_SECONDS, send_timeout=30)
