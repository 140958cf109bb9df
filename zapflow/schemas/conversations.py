"""Conversations' shapes: the assign body, and the public shapes shared by the API responses and
the ``conversation.updated`` live events, so both say the same thing."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from zapflow.models import ConversationPriority, ConversationStatus
from zapflow.schemas.contacts import ContactRef


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
    team_id: uuid.UUID | None
    waiting_since: datetime | None  # queued for a human of its team since (nobody's yet)
    priority: ConversationPriority  # "high" once an SLA escalation raised it
    sla_breached_at: datetime | None  # a target of its team's SLA went past due then
    last_message_at: datetime | None
    last_inbound_at: datetime | None
    last_message_preview: str | None
    unread_count: int
    message_count: int
    updated_at: datetime


class ConversationPublic(ConversationSummary):
    """A conversation as the API returns it: the live summary, plus its contact and instance."""

    instance_name: str
    contact: ContactRef
    created_at: datetime


class AssignConversation(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"user_id": "0b6f3c2e-8f55-4c1e-9d0a-5e2f7a1b9c44"}]},
    )

    user_id: uuid.UUID


class TransferConversation(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"team_id": "4c1f6d2a-1b0e-4f7a-9a55-0e3c8b7d2f91"}]},
    )

    team_id: uuid.UUID
