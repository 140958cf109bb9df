"""Message state: delivery statuses that only move forward, and outbound sends' bookkeeping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import Enum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.models import (
    DeadLetter,
    DeadLetterKind,
    DeadLetterStatus,
    Message,
    MessageStatus,
    utc_now,
)
from zapflow.schemas import MessagePublic
from zapflow.services.events import Event
from zapflow.whatsapp.types import StatusUpdate

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
