"""Server-sent events: a company's live events from its Redis stream, resumable by Last-Event-ID.

The stream holds no database session while open, sends a heartbeat every 15 s, ends when the
client goes away or after a maximum lifetime (clients reconnect with Last-Event-ID and miss
nothing the stream still holds), and never reads another company's stream.

A key may hold only so many streams open at once, and its company so many (429 beyond, counted
across processes in Redis). Every ``RECHECK_SECONDS`` an open stream asks the authenticator again
who its key stands for: a revoked key, or one whose user was deactivated or deleted, gets a last
``stream.closed`` event and the stream ends (a revocation clears every process's cache at once
through Redis; without Redis, within the cache's 30 s).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import anyio
import orjson
from fastapi import APIRouter, Header, Request
from prometheus_client import Gauge
from sse_starlette import EventSourceResponse, ServerSentEvent

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, StateDep
from zapflow.api.state import AppState
from zapflow.api.stream_hub import Entry, entry_order
from zapflow.errors import TooManyRequests, Unauthorized
from zapflow.services import ratelimit
from zapflow.services.auth import Principal
from zapflow.services.events import stream_key
from zapflow.services.permissions import Permission
from zapflow.services.queries import get_conversation
from zapflow.services.ratelimit import StreamSlot

router = APIRouter(tags=["live events"])

HEARTBEAT_SECONDS = 15
WAIT_SECONDS = 5.0  # how often an idle stream checks for a gone client and its lifetime
RECHECK_SECONDS = 5.0  # how often an open stream re-checks its key and renews its slot
MAX_STREAM_SECONDS = 3_600
SSE_OPEN = Gauge(
    "zapflow_sse_connections_open",
    "Server-sent event streams open (of every API process)",
    multiprocess_mode="sum",
)


def _resume_id(last_event_id: str | None) -> str | None:
    """The client's last event id when it is one, else None (start with what happens next)."""
    if last_event_id and all(
        part.isascii() and part.isdecimal() for part in last_event_id.split("-", 1)
    ):
        return last_event_id
    return None


def _event(entry: Entry, wanted: str | None) -> ServerSentEvent | None:
    entry_id, raw = entry
    payload = orjson.loads(raw)
    if wanted and payload.get("conversation_id") != wanted:
        return None
    return ServerSentEvent(data=orjson.dumps(payload).decode(), event=payload["type"], id=entry_id)


async def open_slot(state: AppState, principal: Principal) -> StreamSlot | None:
    """A place for one more stream of the key and of its company, or a 429 saying which is full."""
    buckets = (
        ratelimit.Bucket("key", f"key:{principal.credential_id}", state.settings.streams_per_key),
        ratelimit.Bucket(
            "company", f"company:{principal.company_id}", state.settings.streams_per_company
        ),
    )
    slot, full = await ratelimit.take_stream_slot(state.redis, buckets)
    if full is not None:
        whose = "this API key" if full.scope == "key" else "this company"
        raise TooManyRequests(
            f"{full.limit} live event streams are already open for {whose}: close one "
            "(each browser tab holds one or two) and retry",
            details={"limit": full.limit, "scope": full.scope},
            headers={"Retry-After": str(int(RECHECK_SECONDS))},
        )
    return slot


async def _still_allowed(state: AppState, principal: Principal) -> bool:
    """Whether the stream's key still stands for its company with the right to read events."""
    try:
        check = state.session_auth if principal.session_id else state.authenticator
        current = await check.principal(principal.key_hash)
    except Unauthorized:
        return False
    return current.company_id == principal.company_id and current.can(Permission.EVENTS_READ)


def _closed(reason: str) -> ServerSentEvent:
    data = {"type": "stream.closed", "reason": reason}
    return ServerSentEvent(data=orjson.dumps(data).decode(), event="stream.closed")


async def company_events(
    state: AppState,
    request: Request,
    principal: Principal,
    slot: StreamSlot | None,
    last_event_id: str | None,
    conversation_id: uuid.UUID | None = None,
) -> AsyncIterator[ServerSentEvent]:
    hub = state.streams
    key = stream_key(principal.company_id)
    wanted = str(conversation_id) if conversation_id else None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MAX_STREAM_SECONDS
    recheck = loop.time() + RECHECK_SECONDS
    SSE_OPEN.inc()
    try:
        async with hub.subscribe(key) as subscriber:
            cursor = _resume_id(last_event_id)
            if cursor is not None:
                async for entry in hub.missed(key, cursor):
                    cursor = entry[0]
                    if event := _event(entry, wanted):
                        yield event
            # the response's headers went out before this subscription: this comment tells a
            # client that every event from now on reaches it (EventSource ignores comments)
            yield ServerSentEvent(comment="live")
            while loop.time() < deadline and not await request.is_disconnected():
                if loop.time() >= recheck:
                    if not await _still_allowed(state, principal):
                        yield _closed("the API key was revoked or its user removed")
                        return
                    if slot is not None:
                        await slot.renew()
                    recheck = loop.time() + RECHECK_SECONDS
                try:
                    wait = min(WAIT_SECONDS, max(0.0, recheck - loop.time()))
                    live = await asyncio.wait_for(subscriber.queue.get(), wait)
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
        if slot is not None:
            # a client that went away cancels the stream's task: shielded, its slot still frees
            with anyio.CancelScope(shield=True):
                await slot.release()


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
    slot = await open_slot(state, principal)
    events = company_events(state, request, principal, slot, last_event_id)
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
    slot = await open_slot(state, principal)
    events = company_events(state, request, principal, slot, last_event_id, conversation_id)
    return EventSourceResponse(events, ping=HEARTBEAT_SECONDS, send_timeout=30)
