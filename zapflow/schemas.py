"""Public shapes shared by the API responses and the live events, so both say the same thing."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from zapflow.models import (
    ConversationStatus,
    MessageDirection,
    MessageSender,
    MessageStatus,
    MessageType,
)


class MessagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    instance_id: uuid.UUID
    message_key_id: str | None
    client_id: str | None
    direction: MessageDirection
    from_me: bool
    type: MessageType
    body: str | None
    media: dict[str, Any] | None
    payload: dict[str, Any]
    participant: str | None
    reply_to_key_id: str | None
    provider_timestamp: datetime
    status: MessageStatus
    status_updated_at: datetime | None
    error: dict[str, Any] | None
    sent_by: MessageSender
    sent_by_user_id: uuid.UUID | None
    created_at: datetime


class ConversationSummary(BaseModel):
    """What an inbox list row needs; also the data of ``conversation.updated`` events."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    instance_id: uuid.UUID
    contact_id: uuid.UUID
    remote_jid: str
    status: ConversationStatus
    is_paused: bool
    assigned_user_id: uuid.UUID | None
    last_message_at: datetime | None
    last_inbound_at: datetime | None
    last_message_preview: str | None
    unread_count: int
    message_count: int
    updated_at: datetime
