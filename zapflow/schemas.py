"""Public shapes shared by the API responses and the live events, so both say the same thing."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from zapflow.models import (
    ConversationStatus,
    DealStatus,
    FollowUpStatus,
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
    team_id: uuid.UUID | None
    waiting_since: datetime | None  # queued for a human of its team since (nobody's yet)
    last_message_at: datetime | None
    last_inbound_at: datetime | None
    last_message_preview: str | None
    unread_count: int
    message_count: int
    updated_at: datetime


class ContactRef(BaseModel):
    """A contact as inbox rows, deal rows and the board show it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    phone_number: str | None


class ConversationPublic(ConversationSummary):
    """A conversation as the API returns it: the live summary, plus its contact and instance."""

    instance_name: str
    contact: ContactRef
    created_at: datetime


class DealStageRef(BaseModel):
    """A deal's stage, as deal rows show it."""

    id: uuid.UUID
    name: str
    color: str


class DealPublic(BaseModel):
    """A deal as the API returns it; also the data of ``deal.*`` live events."""

    id: uuid.UUID
    title: str
    value: Decimal = Field(description='A decimal string with 2 places, e.g. `"1500.00"`')
    currency: str
    status: DealStatus
    funnel_id: uuid.UUID
    stage_id: uuid.UUID
    contact_id: uuid.UUID
    owner_user_id: uuid.UUID | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    contact: ContactRef
    stage: DealStageRef


class FollowUpPublic(BaseModel):
    """A follow-up; also the data of ``followup.*`` events."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    contact_id: uuid.UUID
    status: FollowUpStatus
    scheduled_for: datetime = Field(description="When it fires (in business hours if asked)")
    message_text: str | None
    template_name: str | None
    template_params: dict[str, Any] | None
    cancel_on_reply: bool
    only_in_business_hours: bool
    sequence_id: uuid.UUID | None
    sequence_step: int | None
    workflow_id: str | None = Field(description="The Temporal workflow holding its timer")
    message_id: uuid.UUID | None = Field(description="The message it sent (once fired)")
    failure_reason: str | None
    created_by_user_id: uuid.UUID | None
    sent_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime
