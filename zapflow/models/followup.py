import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ._fields import (
    bool_field,
    company_fk,
    created_at_field,
    enum_check,
    enum_field,
    fk,
    jsonb_field,
    text_field,
    timestamp_field,
    updated_at_field,
    uuid_pk,
)


class FollowUpStatus(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


class FollowUp(SQLModel, table=True):
    __tablename__ = "followup_queue"
    __table_args__ = (
        sa.Index("idx_followup_queue_status", "status"),
        sa.Index(
            "idx_followup_queue_scheduled",
            "scheduled_for",
            postgresql_where=sa.text("status = 'PENDING'"),
        ),
        # cancel-on-reply: pending follow-ups of one conversation
        sa.Index(
            "idx_followup_queue_conversation_pending",
            "conversation_id",
            postgresql_where=sa.text("status = 'PENDING'"),
        ),
        sa.Index("idx_followup_queue_company_scheduled", "company_id", "scheduled_for"),
        # a sent or failed message finishes its follow-up
        sa.Index(
            "idx_followup_queue_message_id",
            "message_id",
            postgresql_where=sa.text("message_id IS NOT NULL"),
        ),
        enum_check("status", FollowUpStatus),
    )

    conversation_id: uuid.UUID = fk("conversations.id", ondelete="CASCADE")
    scheduled_for: datetime
    message_text: str | None = text_field(nullable=True)
    template_name: str | None = None  # Cloud API message template (outside the 24-hour window)
    template_params: dict[str, Any] | None = jsonb_field(nullable=True)
    cancel_on_reply: bool = bool_field(True)
    only_in_business_hours: bool = bool_field(False)

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    contact_id: uuid.UUID = fk("contacts.id", ondelete="CASCADE")
    status: FollowUpStatus = enum_field(FollowUpStatus, FollowUpStatus.PENDING)
    sequence_id: uuid.UUID | None = Field(default=None)  # groups the steps of one sequence (no FK)
    sequence_step: int | None = None
    workflow_id: str | None = None  # Temporal workflow that owns the timer
    message_id: uuid.UUID | None = fk("messages.id", ondelete="SET NULL", nullable=True)
    failure_reason: str | None = text_field(nullable=True)
    created_by_user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)
    sent_at: datetime | None = timestamp_field()
    cancelled_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
