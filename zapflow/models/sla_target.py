import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import SQLModel

from ._fields import company_fk, enum_check, enum_field, fk, timestamp_field, uuid_pk


class SlaKind(StrEnum):
    FIRST_RESPONSE = "first_response"  # a person's first reply after the conversation joined
    RESOLUTION = "resolution"  # the conversation closed


class SlaStatus(StrEnum):
    PENDING = "pending"
    MET = "met"  # completed by its due time
    MISSED = "missed"  # breached (the timer fired), or completed after its due time
    CANCELLED = "cancelled"  # moved to another team, or closed before a first response


class SlaTarget(SQLModel, table=True):
    """One target a conversation is held to since it joined a team with an SLA (what the reports
    read: met or missed, breached when). ``due_at`` is ``started_at`` plus the team's target in
    the company's business time (services/business_hours.py)."""

    __tablename__ = "sla_targets"
    __table_args__ = (
        # a conversation's open targets: completed on a reply or a close, loaded as timers
        sa.Index(
            "idx_sla_targets_pending",
            "conversation_id",
            "kind",
            postgresql_where=sa.text("status = 'pending'"),
        ),
        # the reports: targets by the day they were met (completed) or missed (breached)
        sa.Index(
            "idx_sla_targets_company_decided",
            "company_id",
            sa.text("coalesce(breached_at, completed_at)"),
            postgresql_where=sa.text("status IN ('met', 'missed')"),
        ),
        enum_check("kind", SlaKind),
        enum_check("status", SlaStatus),
    )

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    conversation_id: uuid.UUID = fk("conversations.id", ondelete="CASCADE")
    team_id: uuid.UUID | None = fk("teams.id", ondelete="SET NULL", nullable=True)
    # who it was met or missed by: the replying agent, or the assignee at the close or breach
    user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)
    kind: SlaKind = enum_field(SlaKind)
    status: SlaStatus = enum_field(SlaStatus, SlaStatus.PENDING)
    started_at: datetime = timestamp_field(server_now=True)
    due_at: datetime = timestamp_field(server_now=True)
    completed_at: datetime | None = timestamp_field()  # the reply or the close
    breached_at: datetime | None = timestamp_field()  # past due without completion
