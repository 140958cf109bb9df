"""Persisting inbound traffic: resolve the contact, upsert the conversation, insert messages once.

Redelivery is harmless at every step: contacts are found by their identities
(services/identities.py), the conversation is unique per (instance, remote jid), and a message per
(instance, provider key id). Counters move only by the rows that were really inserted.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.models import (
    Conversation,
    ConversationStatus,
    InboxEvent,
    Message,
    MessageDirection,
    MessageSender,
    MessageStatus,
    utc_now,
)
from zapflow.schemas import ConversationSummary, MessagePublic
from zapflow.services.contacts import forget_contacts
from zapflow.services.events import Event, stage
from zapflow.services.identities import Identity, resolve_contact
from zapflow.whatsapp.types import InboundMessage, event_from_dict

PREVIEW_LENGTH = 120


@dataclass(frozen=True)
class PersistResult:
    conversation_id: uuid.UUID
    contact_id: uuid.UUID
    new_message_ids: list[uuid.UUID]
    new_inbound: int


@dataclass(frozen=True)
class InboxDelivery:
    """An inbound message as the inbox holds it, with its delivery's correlation id and the
    time the webhook received it."""

    message: InboundMessage
    correlation_id: str | None
    received_at: float  # epoch seconds


async def read_inbound(session: AsyncSession, inbox_ids: Sequence[int]) -> list[InboxDelivery]:
    """The inbound messages of these inbox rows, in the provider's order (one round trip)."""
    query = select(
        col(InboxEvent.payload), col(InboxEvent.correlation_id), col(InboxEvent.received_at)
    ).where(col(InboxEvent.id).in_(inbox_ids))
    deliveries = []
    for payload, correlation_id, received_at in (await session.execute(query)).all():
        message = event_from_dict(payload)
        if isinstance(message, InboundMessage):
            deliveries.append(InboxDelivery(message, correlation_id, received_at.timestamp()))
    return sorted(deliveries, key=lambda d: (d.message.timestamp or 0, d.message.key_id))


def _provider_time(message: InboundMessage) -> datetime:
    if message.timestamp:
        return datetime.fromtimestamp(message.timestamp, UTC)
    return utc_now()


async def upsert_conversation(
    session: AsyncSession,
    company_id: uuid.UUID,
    instance_id: uuid.UUID,
    remote_jid: str,
    contact_id: uuid.UUID,
    workflow_id: str | None = None,
    started_at: datetime | None = None,
) -> uuid.UUID:
    """The conversation's id, created if new; ``started_at`` (its first message's time) starts
    ``last_message_at``, which the inbox sorts by."""
    statement = (
        insert(Conversation)
        .values(
            id=uuid.uuid4(),
            company_id=company_id,
            instance_id=instance_id,
            contact_id=contact_id,
            remote_jid=remote_jid,
            workflow_id=workflow_id,
            last_message_at=started_at or utc_now(),
        )
        .on_conflict_do_update(
            index_elements=["instance_id", "remote_jid"],
            set_={"updated_at": func.now()},
        )
        .returning(col(Conversation.id))
    )
    return (await session.execute(statement)).scalar_one()


def _message_row(
    message: InboundMessage,
    company_id: uuid.UUID,
    instance_id: uuid.UUID,
    conversation_id: uuid.UUID,
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "company_id": company_id,
        "conversation_id": conversation_id,
        "instance_id": instance_id,
        "message_key_id": message.key_id,
        "direction": MessageDirection.OUTBOUND if message.from_me else MessageDirection.INBOUND,
        "from_me": message.from_me,
        "type": message.type,
        "body": message.body,
        "media": message.media,
        "payload": message.payload,
        "participant": message.participant,
        "reply_to_key_id": message.reply_to_key_id,
        "provider_timestamp": _provider_time(message),
        "status": MessageStatus.SENT if message.from_me else MessageStatus.RECEIVED,
        "sent_by": MessageSender.PHONE if message.from_me else MessageSender.CUSTOMER,
    }


async def insert_messages(
    session: AsyncSession,
    messages: Sequence[InboundMessage],
    company_id: uuid.UUID,
    instance_id: uuid.UUID,
    conversation_id: uuid.UUID,
) -> list[Message]:
    """Insert what is new; a key id already stored is skipped. Returns the inserted rows."""
    rows = [_message_row(m, company_id, instance_id, conversation_id) for m in messages]
    statement = (
        insert(Message)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["instance_id", "message_key_id"])
        .returning(Message)
    )
    inserted = (await session.execute(statement)).scalars().all()
    return sorted(inserted, key=lambda m: (m.provider_timestamp, m.message_key_id or ""))


# a message from one of these is a human taking the conversation over (services/ai_agent.py)
HUMAN_SENDERS = (MessageSender.AGENT, MessageSender.PHONE)


async def bump_conversation(
    session: AsyncSession, conversation_id: uuid.UUID, new_messages: Sequence[Message]
) -> Conversation:
    """Move counters, last-message fields and the 24-hour window by the inserted messages."""
    inbound = [m for m in new_messages if m.direction == MessageDirection.INBOUND]
    latest = new_messages[-1]
    values: dict[str, Any] = {
        "message_count": Conversation.message_count + len(new_messages),
        "unread_count": Conversation.unread_count + len(inbound),
        "last_message_at": func.greatest(Conversation.last_message_at, latest.provider_timestamp),
        "last_message_preview": _preview(latest),
        "updated_at": func.now(),
    }
    if inbound:
        values["last_inbound_at"] = func.greatest(
            Conversation.last_inbound_at, inbound[-1].provider_timestamp
        )
        values["status"] = ConversationStatus.OPEN
    if any(m.sent_by in HUMAN_SENDERS for m in new_messages):
        values["is_paused"] = True  # a human took over: automation steps aside
    statement = (
        update(Conversation)
        .where(col(Conversation.id) == conversation_id)
        .values(**values)
        .returning(Conversation)
    )
    return (await session.execute(statement)).scalar_one()


def _preview(message: Message) -> str:
    text = message.body or (message.media or {}).get("caption") or f"[{message.type.value}]"
    return text[:PREVIEW_LENGTH]


def message_created(message: Message) -> Event:
    return Event(
        "message.created",
        message.company_id,
        MessagePublic.model_validate(message).model_dump(mode="json"),
        message.conversation_id,
    )


def conversation_updated(conversation: Conversation) -> Event:
    return Event(
        "conversation.updated",
        conversation.company_id,
        ConversationSummary.model_validate(conversation).model_dump(mode="json"),
        conversation.id,
    )


async def persist_inbound(
    session: AsyncSession,
    company_id: uuid.UUID,
    instance_id: uuid.UUID,
    remote_jid: str,
    messages: Sequence[InboundMessage],
    workflow_id: str | None = None,
) -> PersistResult:
    identity = Identity.of_chat(remote_jid, messages)
    contact = await resolve_contact(session, company_id, identity)
    if contact.changed:  # before the events' publishing: who hears of them reads the new contact
        forget_contacts(session, [contact.id])
    conversation_id = await upsert_conversation(
        session,
        company_id,
        instance_id,
        remote_jid,
        contact.id,
        workflow_id,
        started_at=min(map(_provider_time, messages)),
    )
    new = await insert_messages(session, messages, company_id, instance_id, conversation_id)
    events: list[Event] = []
    if new:
        conversation = await bump_conversation(session, conversation_id, new)
        events = [*map(message_created, new), conversation_updated(conversation)]
    await stage(session, events)
    return PersistResult(
        conversation_id=conversation_id,
        contact_id=contact.id,
        new_message_ids=[m.id for m in new],
        new_inbound=sum(m.direction == MessageDirection.INBOUND for m in new),
    )
