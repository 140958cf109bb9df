"""Dead letters: work that failed for good, listed for operators and replayed through the normal
path. A replay is recorded on the letter; its outcome shows where the normal path puts it (a send
replay ends as the message's status, and a new dead letter if it fails again)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.errors import Conflict, NotFound, Unprocessable
from zapflow.models import (
    Conversation,
    DeadLetter,
    DeadLetterKind,
    DeadLetterStatus,
    InboxEvent,
    Message,
    MessageStatus,
    WhatsAppInstance,
    WhatsAppProvider,
    utc_now,
)
from zapflow.services.inbox import store_events, store_outbound_request
from zapflow.services.instances import route_events
from zapflow.services.paging import cut_page, keyset
from zapflow.services.queries import get_scoped
from zapflow.whatsapp import cloud, evolution
from zapflow.whatsapp.errors import MalformedPayload


async def page_dead_letters(
    session: AsyncSession,
    company_id: uuid.UUID,
    *,
    kind: DeadLetterKind | None,
    status: DeadLetterStatus | None,
    since: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[DeadLetter], str | None]:
    query = select(DeadLetter).where(col(DeadLetter.company_id) == company_id)
    if kind:
        query = query.where(col(DeadLetter.kind) == kind)
    if status:
        query = query.where(col(DeadLetter.status) == status)
    if since:
        query = query.where(col(DeadLetter.created_at) >= since)
    query = keyset(
        query,
        [col(DeadLetter.created_at), col(DeadLetter.id)],
        (datetime, uuid.UUID),
        limit,
        cursor,
    )
    rows = list((await session.execute(query)).scalars())
    return cut_page(rows, limit, lambda d: (d.created_at, d.id))


async def replay(session: AsyncSession, company_id: uuid.UUID, letter_id: uuid.UUID) -> DeadLetter:
    letter = await get_scoped(session, DeadLetter, company_id, letter_id)
    if letter.status != DeadLetterStatus.OPEN:
        raise Conflict(f"this dead letter was already {letter.status.value}")
    replayers = {DeadLetterKind.SEND: _replay_send, DeadLetterKind.INBOX_EVENT: _replay_inbox_event}
    replayer = replayers.get(letter.kind)
    if replayer is None:
        raise Unprocessable(f"replaying {letter.kind.value} dead letters is not supported yet")
    result = await replayer(session, company_id, letter)
    letter.replayed_at = utc_now()
    letter.replay_result = result
    if result["ok"]:
        letter.status = DeadLetterStatus.REPLAYED
    else:
        letter.attempts += 1
    await session.flush()
    return letter


async def _replay_send(
    session: AsyncSession, company_id: uuid.UUID, letter: DeadLetter
) -> dict[str, Any]:
    """Put the failed message back to ``pending`` and queue it like a new send."""
    message_id = uuid.UUID(letter.reference["message_id"])
    message = await get_scoped(session, Message, company_id, message_id)
    if message.status != MessageStatus.FAILED:
        raise Conflict(f"the message is {message.status.value}, not failed: nothing to replay")
    conversation = await get_scoped(session, Conversation, company_id, message.conversation_id)
    instance = await get_scoped(session, WhatsAppInstance, company_id, message.instance_id)
    message.status = MessageStatus.PENDING
    message.error = None
    message.status_updated_at = utc_now()
    await session.flush()
    await store_outbound_request(
        session, instance, message.id, conversation.remote_jid, attempt=f"replay-{letter.id}"
    )
    return {"ok": True, "action": "send queued again", "message_id": str(message.id)}


async def _replay_inbox_event(
    session: AsyncSession, company_id: uuid.UUID, letter: DeadLetter
) -> dict[str, Any]:
    """Read the kept delivery again with today's parser; what it yields goes to the inbox."""
    row = await session.get(InboxEvent, letter.reference["inbox_event_id"])
    # (a dead-lettered delivery always names its number: only a team's wake has none)
    if row is None or row.company_id != company_id or row.instance_id is None:
        raise NotFound("the delivery this dead letter kept is gone")
    instance = await get_scoped(session, WhatsAppInstance, company_id, row.instance_id)
    parse = (
        cloud.parse_webhook
        if instance.provider == WhatsAppProvider.CLOUD
        else evolution.parse_webhook
    )
    try:
        events = parse(row.payload)
    except MalformedPayload as exc:
        return {"ok": False, "error": f"still unreadable: {exc}"}
    routed, unroutable = await route_events(session, instance, events)
    stored = duplicates = 0
    for target, group in routed:
        accepted = await store_events(session, target, group, row.correlation_id or str(letter.id))
        stored, duplicates = stored + accepted.stored, duplicates + accepted.duplicates
    return {"ok": True, "stored": stored, "duplicates": duplicates, "unroutable": len(unroutable)}
