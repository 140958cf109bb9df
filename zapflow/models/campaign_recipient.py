import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import SQLModel

from ._fields import (
    bigint_identity_pk,
    enum_check,
    enum_field,
    fk,
    int_field,
    text_field,
    timestamp_field,
)


class RecipientStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"  # the provider took it; the message row holds delivered/read
    FAILED = "failed"  # with the provider's (or the parameters') reason
    EXCLUDED = "excluded"  # never sent: opted out, no phone, ... (the reason says)
    CANCELLED = "cancelled"  # the campaign was cancelled before its turn


class CampaignRecipient(SQLModel, table=True):
    """One contact of a campaign's audience snapshot; ``id`` order is the sending order."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "contact_id"),
        # the sender's queue: a campaign's queued recipients in order
        sa.Index(
            "idx_campaign_recipients_queued",
            "campaign_id",
            "id",
            postgresql_where=sa.text("status = 'queued'"),
        ),
        sa.Index("idx_campaign_recipients_message", "message_id"),
        enum_check("status", RecipientStatus),
    )

    id: int | None = bigint_identity_pk()
    campaign_id: uuid.UUID = fk("campaigns.id", ondelete="CASCADE")
    contact_id: uuid.UUID = fk("contacts.id", ondelete="CASCADE")
    status: RecipientStatus = enum_field(RecipientStatus, RecipientStatus.QUEUED)
    reason: str | None = text_field(nullable=True)
    message_id: uuid.UUID | None = fk("messages.id", ondelete="SET NULL", nullable=True)
    attempts: int = int_field()
    not_before: datetime | None = timestamp_field()  # deferred (pair rate limit)
    sent_at: datetime | None = timestamp_field()
