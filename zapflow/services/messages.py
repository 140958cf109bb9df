"""Messages: the ones we send, queued, claimed and recorded exactly once, and the delivery
statuses providers report, which only move forward.

A send is claimed by moving the row from ``pending`` to ``sending`` before the provider is called.
A known refusal (an HTTP error, a timeout, a refused connection) puts it back to ``pending`` for
the retry; a worker that dies while the provider is answering leaves ``sending`` behind, and the
retry then refuses to guess: the message fails as ``delivery_unknown`` instead of going out twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.errors import NotFound, Unprocessable
from zapflow.models import (
    Contact,
    Conversation,
    DeadLetter,
    DeadLetterKind,
    DeadLetterStatus,
    Message,
    MessageDirection,
    MessageSender,
    MessageStatus,
    MessageType,
    SlaKind,
    WhatsAppInstance,
    WhatsAppProvider,
    utc_now,
)
from zapflow.schemas.messages import MessagePublic
from zapflow.services import slas
from zapflow.services.conversations import bump_conversation, conversation_updated, message_created
from zapflow.services.events import Event, stage
from zapflow.services.inbox import store_outbound_request
from zapflow.whatsapp import jid as jids
from zapflow.whatsapp.types import OutboundMedia, OutboundMessage, OutboundTemplate, StatusUpdate

# A status may replace only a lower-ranked one: a late "delivered" never overwrites "read".
STATUS_RANK: dict[MessageStatus, int] = {
    MessageStatus.PENDING: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.SENT: 2,
    MessageStatus.FAILED: 3,  # the provider may fail a message it had accepted
    MessageStatus.DELIVERED: 4,
    MessageStatus.READ: 5,
    MessageStatus.RECEIVED: 5,
    MessageStatus.DELETED: 6,
}


class StatusOutcome(Enum):
    APPLIED = "applied"
    STALE = "stale"  # the message already has this status or a later one
    UNKNOWN_MESSAGE = "unknown_message"  # not stored (yet): the send may still be recording it


def ranks_below(status: MessageStatus) -> list[MessageStatus]:
    return [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]


async def apply_status(
    session: AsyncSession, instance_id: uuid.UUID, status: StatusUpdate
) -> tuple[StatusOutcome, Message | None]:
    new_status = MessageStatus(status.status)
    at = datetime.fromtimestamp(status.timestamp, UTC) if status.timestamp else utc_now()
    statement = (
        update(Message)
        .where(
            col(Message.instance_id) == instance_id,
            col(Message.message_key_id) == status.key_id,
            col(Message.status).in_(ranks_below(new_status)),
        )
        .values(status=new_status, status_updated_at=at, error=status.error)
        .returning(Message)
    )
    updated = (await session.execute(statement)).scalar_one_or_none()
    if updated is not None:
        return StatusOutcome.APPLIED, updated
    exists = await session.execute(
        select(col(Message.id)).where(
            col(Message.instance_id) == instance_id,
            col(Message.message_key_id) == status.key_id,
        )
    )
    if exists.first():
        return StatusOutcome.STALE, None
    reconciled = await _reconcile(session, instance_id, status, new_status, at)
    if reconciled is not None:
        return StatusOutcome.APPLIED, reconciled
    return StatusOutcome.UNKNOWN_MESSAGE, None


async def _reconcile(
    session: AsyncSession,
    instance_id: uuid.UUID,
    status: StatusUpdate,
    new_status: MessageStatus,
    at: datetime,
) -> Message | None:
    """A status naming our message id (Cloud API echoes it as ``biz_opaque_callback_data``) for a
    send whose answer we never got: the provider did accept it, so record its id and status,
    even over the ``failed`` a crash mid-send left (``delivery_unknown``)."""
    try:
        message_id = uuid.UUID(status.callback_data or "")
    except ValueError:
        return None
    statement = (
        update(Message)
        .where(
            col(Message.id) == message_id,
            col(Message.instance_id) == instance_id,
            col(Message.message_key_id).is_(None),
            col(Message.status).in_([MessageStatus.SENDING, MessageStatus.FAILED]),
        )
        .values(message_key_id=status.key_id, status=new_status, status_updated_at=at, error=None)
        .returning(Message)
    )
    message = (await session.execute(statement)).scalar_one_or_none()
    if message is not None:
        await session.execute(
            update(DeadLetter)
            .where(
                col(DeadLetter.kind) == DeadLetterKind.SEND,
                col(DeadLetter.status) == DeadLetterStatus.OPEN,
                col(DeadLetter.reference)["message_id"].astext == str(message.id),
            )
            .values(
                status=DeadLetterStatus.DISCARDED,
                replay_result={"ok": True, "resolved_by": f"provider status {new_status.value}"},
            )
        )
    return message


def message_status_event(message: Message) -> Event:
    data = MessagePublic.model_validate(message).model_dump(
        mode="json", include={"id", "message_key_id", "status", "status_updated_at", "error"}
    )
    return Event("message.status", message.company_id, data, message.conversation_id)


# --- sending -------------------------------------------------------------------------------------

SENT_STATES = {MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ}


@dataclass(frozen=True)
class OutboundContent:
    """What a caller asks to send: text, media by URL, a template, or an interactive message
    (``whatsapp/interactive.py``; its numbered text is the message's body)."""

    type: str  # text | media | template | interactive
    text: str | None = None
    media: dict[str, Any] | None = None  # url, kind, mime_type, caption, filename
    template: dict[str, Any] | None = None  # name, language, params | components
    interactive: dict[str, Any] | None = None


def _row_type(content: OutboundContent) -> MessageType:
    if content.type == "media" and content.media:
        return MessageType(content.media["kind"])
    if content.type == "interactive":
        return MessageType.INTERACTIVE
    return MessageType.TEMPLATE if content.type == "template" else MessageType.TEXT


def _request(content: OutboundContent, provider: WhatsAppProvider) -> dict[str, Any]:
    """What the send needs besides the body; an interactive message on a provider without
    buttons says it goes as numbered text."""
    request: dict[str, Any] = {"type": content.type, "template": content.template}
    if content.interactive is not None:
        request["interactive"] = content.interactive
        if provider != WhatsAppProvider.CLOUD:
            request["fallback"] = "numbered_text"
    return request


def _pending(
    instance: WhatsAppInstance,
    conversation_id: uuid.UUID,
    client_id: str | None,
    content: OutboundContent,
    sent_by: MessageSender,
) -> Message:
    return Message(
        company_id=instance.company_id,
        conversation_id=conversation_id,
        instance_id=instance.id,
        client_id=client_id,
        direction=MessageDirection.OUTBOUND,
        from_me=True,
        type=_row_type(content),
        body=content.text or (content.media or {}).get("caption"),
        media=content.media,
        payload={"outbound": _request(content, instance.provider)},
        status=MessageStatus.PENDING,
        sent_by=sent_by,
    )


def refill(message: Message, instance: WhatsAppInstance, content: OutboundContent) -> None:
    """A ``pending`` message's content replaced (a campaign edited while paused): its id,
    client id and place in the conversation stay."""
    fresh = _pending(instance, message.conversation_id, message.client_id, content, message.sent_by)
    message.type, message.body, message.media = fresh.type, fresh.body, fresh.media
    message.payload = fresh.payload


async def queue_outbound(
    session: AsyncSession,
    conversation: Conversation,
    content: OutboundContent,
    *,
    sent_by: MessageSender = MessageSender.AGENT,
    user_id: uuid.UUID | None = None,
    client_id: str | None = None,
    correlation_id: str | None = None,
    via_relay: bool = True,
) -> tuple[Message, bool]:
    """Store the message as ``pending`` and queue it for the conversation's workflow.

    Returns (message, created); a repeated ``client_id`` returns the first message unchanged.
    ``via_relay=False`` is for the conversation's own workflow, which queues the send itself.
    """
    if client_id:
        existing = await _by_client_id(session, conversation.id, client_id)
        if existing:
            return existing, False
    instance = await session.get(WhatsAppInstance, conversation.instance_id)
    assert instance is not None
    message = _pending(instance, conversation.id, client_id, content, sent_by)
    message.sent_by_user_id = user_id
    try:
        async with session.begin_nested():
            session.add(message)
            await session.flush()
    except IntegrityError:
        existing = await _by_client_id(session, conversation.id, client_id or "")
        if existing is None:
            raise
        return existing, False
    if via_relay:
        await store_outbound_request(
            session, instance, message.id, conversation.remote_jid, correlation_id
        )
    bumped = await bump_conversation(session, conversation.id, [message])
    await stage(session, [message_created(message), conversation_updated(bumped)])
    if sent_by == MessageSender.AGENT:  # a person's reply: the SLA's first response
        await slas.complete(session, conversation.id, [SlaKind.FIRST_RESPONSE], user_id)
    return message, True


async def queue_many(
    session: AsyncSession,
    instance: WhatsAppInstance,
    queued: list[tuple[uuid.UUID, str, OutboundContent]],
    sent_by: MessageSender,
) -> list[Message]:
    """Store many messages as ``pending`` at once (conversation id, client id, content), for a
    sender that sends them itself (a campaign): one INSERT, then each conversation bumped. The
    client ids must be new (the caller records each message's id with them)."""
    rows = [_pending(instance, c, client_id, content, sent_by) for c, client_id, content in queued]
    session.add_all(rows)
    await session.flush()
    events = []
    for message in rows:
        bumped = await bump_conversation(session, message.conversation_id, [message])
        events += [message_created(message), conversation_updated(bumped)]
    await stage(session, events)
    return rows


async def _by_client_id(
    session: AsyncSession, conversation_id: uuid.UUID, client_id: str
) -> Message | None:
    query = select(Message).where(
        col(Message.conversation_id) == conversation_id,
        col(Message.client_id) == client_id,
    )
    return (await session.execute(query)).scalar_one_or_none()


@dataclass(frozen=True)
class SendJob:
    message: Message
    instance: WhatsAppInstance
    outbound: OutboundMessage


class AlreadyDone(Exception):
    """The message was sent (or failed) before: nothing to do."""


class DeliveryUnknown(Exception):
    """A previous attempt died while the provider was answering; resending could duplicate."""


async def read_receipt(
    session: AsyncSession, message_id: uuid.UUID
) -> tuple[WhatsAppInstance, str, str] | None:
    """The number, provider id and chat JID of a customer's message, to mark it read."""
    statement = (
        select(WhatsAppInstance, col(Message.message_key_id), col(Conversation.remote_jid))
        .join(Message, col(Message.instance_id) == col(WhatsAppInstance.id))
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(col(Message.id) == message_id, col(Message.direction) == MessageDirection.INBOUND)
    )
    row = (await session.execute(statement)).first()
    return (row[0], row[1], row[2]) if row is not None and row[1] else None


async def claim(session: AsyncSession, message_id: uuid.UUID) -> SendJob:
    found = (await claim_many(session, [message_id])).get(message_id)
    if found is None:
        raise NotFound(f"message {message_id} does not exist")
    if isinstance(found, SendJob):
        return found
    if found == MessageStatus.SENDING:
        raise DeliveryUnknown(str(message_id))
    raise AlreadyDone(found.value)


async def claim_many(
    session: AsyncSession, message_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, SendJob | MessageStatus]:
    """Claim the messages still ``pending`` (``pending`` → ``sending``) in one statement: the send
    job of each claimed, the status of each that was not (``sending``: an attempt died while the
    provider answered, resending could duplicate; sent or failed: nothing to do). Ids of no
    message are left out."""
    statement = (
        update(Message)
        .where(col(Message.id).in_(message_ids), col(Message.status) == MessageStatus.PENDING)
        .values(status=MessageStatus.SENDING, status_updated_at=utc_now())
        .returning(Message)
    )
    claimed = list((await session.execute(statement)).scalars())
    found: dict[uuid.UUID, SendJob | MessageStatus] = {}
    others = set(message_ids) - {m.id for m in claimed}
    if others:
        statuses = select(col(Message.id), col(Message.status)).where(col(Message.id).in_(others))
        found.update({k: v for k, v in (await session.execute(statuses)).all()})
    if not claimed:
        return found
    conversations = {
        c.id: c
        for c in await session.scalars(
            select(Conversation).where(
                col(Conversation.id).in_({m.conversation_id for m in claimed})
            )
        )
    }
    contact_ids = {c.contact_id for c in conversations.values()}
    contacts = {
        c.id: c
        for c in await session.scalars(select(Contact).where(col(Contact.id).in_(contact_ids)))
    }
    for message in claimed:
        instance = await session.get(WhatsAppInstance, message.instance_id)  # one per batch
        conversation = conversations[message.conversation_id]
        assert instance is not None
        outbound = _outbound(message, conversation, contacts.get(conversation.contact_id))
        found[message.id] = SendJob(message, instance, outbound)
    return found


def _recipient(conversation: Conversation, contact: Contact | None) -> str:
    if jids.is_group(conversation.remote_jid) or jids.is_lid(conversation.remote_jid):
        return conversation.remote_jid
    return (contact.phone_number if contact else None) or conversation.remote_jid


def _outbound(
    message: Message, conversation: Conversation, contact: Contact | None
) -> OutboundMessage:
    request = message.payload.get("outbound", {})
    kind = request.get("type", "text")
    media = OutboundMedia(**message.media) if kind == "media" and message.media else None
    template_fields = request.get("template")
    template = (
        OutboundTemplate(**template_fields) if kind == "template" and template_fields else None
    )
    try:
        return OutboundMessage(
            type=kind,
            to=_recipient(conversation, contact),
            text=message.body if kind in ("text", "interactive") else None,
            media=media,
            template=template,
            interactive=request.get("interactive") if kind == "interactive" else None,
            reply_to_key_id=message.reply_to_key_id,
            idempotency_key=str(message.id),
        )
    except ValueError as exc:
        raise Unprocessable(str(exc)) from None


async def record_sent(session: AsyncSession, message_id: uuid.UUID, provider_id: str) -> Message:
    return (await record_sent_many(session, {message_id: provider_id}))[0]


async def record_sent_many(session: AsyncSession, sent: Mapping[uuid.UUID, str]) -> list[Message]:
    """The provider took these messages (id → the provider's id): ``sent``, one event each."""
    statement = (
        select(Message)
        .where(col(Message.id).in_(sent))
        .order_by(col(Message.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    rows = list(await session.scalars(statement))
    now = utc_now()
    for message in rows:
        message.message_key_id = sent[message.id]
        if message.status == MessageStatus.SENDING:  # a status webhook may have overtaken us
            message.status = MessageStatus.SENT
        message.status_updated_at = now
        message.error = None
    await session.flush()
    await stage(session, [message_status_event(m) for m in rows])
    return rows


async def release(
    session: AsyncSession, message_id: uuid.UUID, error: dict[str, Any] | None
) -> None:
    """The provider refused this attempt (or it was never made): back to ``pending`` for the
    next one."""
    await session.execute(
        update(Message)
        .where(col(Message.id) == message_id, col(Message.status) == MessageStatus.SENDING)
        .values(status=MessageStatus.PENDING, error=error)
    )


async def record_failed(
    session: AsyncSession, message_id: uuid.UUID, error: dict[str, Any], attempts: int
) -> Message:
    """Terminal failure: status ``failed`` with the reason, a dead letter, an event."""
    message = await session.get(Message, message_id)
    assert message is not None
    if message.status in SENT_STATES or message.status == MessageStatus.FAILED:
        return message
    message.status = MessageStatus.FAILED
    message.status_updated_at = utc_now()
    message.error = error
    session.add(
        DeadLetter(
            company_id=message.company_id,
            kind=DeadLetterKind.SEND,
            reference={
                "message_id": str(message.id),
                "conversation_id": str(message.conversation_id),
            },
            error=str(error.get("message", error)),
            attempts=attempts,
            payload={"outbound": message.payload.get("outbound"), "body": message.body},
        )
    )
    await session.flush()
    await stage(session, [message_status_event(message)])
    return message
