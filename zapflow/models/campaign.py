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
    int_field,
    jsonb_field,
    text_field,
    timestamp_field,
    updated_at_field,
    uuid_pk,
)


class CampaignStatus(StrEnum):
    SCHEDULED = "scheduled"  # created; its workflow waits for ``scheduled_at``
    RUNNING = "running"
    PAUSED = "paused"
    WAITING_TIER = "waiting_tier"  # the number's messaging tier is used up for now
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Campaign(SQLModel, table=True):
    """A broadcast: its recipients are snapshotted when its workflow starts sending."""

    __tablename__ = "campaigns"
    __table_args__ = (
        sa.Index("idx_campaigns_company_created", "company_id", sa.text("created_at DESC")),
        enum_check("status", CampaignStatus),
    )

    name: str = Field(max_length=200)
    instance_id: uuid.UUID = fk("whatsapp_instances.id", ondelete="CASCADE")
    audience: dict[str, Any] = jsonb_field()  # tags, q, created_since (as GET /contacts)
    message: dict[str, Any] = jsonb_field()  # template + parameters, or text
    scheduled_at: datetime | None = timestamp_field()
    throughput: int = int_field(80)  # messages per second at most
    business_hours_only: bool = bool_field(False)  # sends only inside the company's hours
    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    status: CampaignStatus = enum_field(CampaignStatus, CampaignStatus.SCHEDULED)
    status_reason: str | None = text_field(nullable=True)
    workflow_id: str | None = None
    created_by_user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)
    started_at: datetime | None = timestamp_field()
    finished_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
