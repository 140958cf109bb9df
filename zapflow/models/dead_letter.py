import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

from ._fields import (
    company_fk,
    created_at_field,
    enum_check,
    enum_field,
    int_field,
    jsonb_field,
    text_field,
    timestamp_field,
    uuid_pk,
)


class DeadLetterKind(StrEnum):
    SEND = "send"
    FLOW_NODE = "flow_node"
    EMBEDDING = "embedding"
    INBOX_EVENT = "inbox_event"
    AI = "ai"
    OTHER = "other"


class DeadLetterStatus(StrEnum):
    OPEN = "open"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


class DeadLetter(SQLModel, table=True):
    """Work that exhausted its retries, kept for an operator to replay or discard."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        sa.Index(
            "idx_dead_letters_company_status", "company_id", "status", sa.text("created_at DESC")
        ),
        enum_check("kind", DeadLetterKind),
        enum_check("status", DeadLetterStatus),
    )

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    kind: DeadLetterKind = enum_field(DeadLetterKind)
    reference: dict[str, Any] = jsonb_field()  # ids: message_id, conversation_id, inbox_event_id...
    error: str = text_field()
    attempts: int = int_field()
    payload: dict[str, Any] = jsonb_field()
    status: DeadLetterStatus = enum_field(DeadLetterStatus, DeadLetterStatus.OPEN)
    replay_result: dict[str, Any] | None = jsonb_field(nullable=True)
    created_at: datetime = created_at_field()
    replayed_at: datetime | None = timestamp_field()
