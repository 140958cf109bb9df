import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ._fields import company_fk, created_at_field, enum_check, enum_field, fk, uuid_pk


class SystemNoteKind(StrEnum):
    # ``actor_user_id``: who did it (NULL: an API key of nobody's, the routing or an SLA)
    ASSIGNED = "assigned"  # to ``user_id``; ``detail`` "routing" when the team's routing did
    UNASSIGNED = "unassigned"  # from ``user_id``; ``detail`` "sla" when an SLA escalation did
    TRANSFERRED = "transferred"  # to ``team_id``
    SLA_BREACHED = "sla_breached"  # ``detail``: the target's kind


class SystemNote(SQLModel, table=True):
    """A line in a conversation's thread saying what happened to it, who did it and when (not a
    message: never sent, never counted). The thread renders it from these fields."""

    __tablename__ = "system_notes"
    __table_args__ = (
        sa.Index("idx_system_notes_conversation", "conversation_id", "created_at"),
        enum_check("kind", SystemNoteKind),
    )

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    conversation_id: uuid.UUID = fk("conversations.id", ondelete="CASCADE")
    kind: SystemNoteKind = enum_field(SystemNoteKind)
    actor_user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)
    user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)
    team_id: uuid.UUID | None = fk("teams.id", ondelete="SET NULL", nullable=True)
    detail: str | None = Field(default=None, max_length=32)
    created_at: datetime = created_at_field()
