import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ._fields import (
    bool_field,
    company_fk,
    enum_check,
    enum_field,
    fk,
    text_field,
    timestamp_field,
    uuid_pk,
)


class CsatStatus(StrEnum):
    """Where a resolution's rating request stands (services/csat.py)."""

    NONE = "none"  # not asked (CSAT off, or neither the window nor a template allowed it)
    REQUESTED = "requested"  # the question went out; the next reply may be a score
    RATED = "rated"  # scored; the next text message may be a comment
    DONE = "done"  # scored (and commented, or the comment's time passed)
    IGNORED = "ignored"  # the customer wrote something else, or never answered


class ConversationResolution(SQLModel, table=True):
    """One closing of a conversation: the facts reports read (services/reports.py).

    A conversation opens, is answered and is closed, perhaps many times over its life; each
    close writes one row, so reports count resolutions without reading messages.
    """

    __tablename__ = "conversation_resolutions"
    __table_args__ = (
        # every report: WHERE company_id = ? AND closed_at in the range
        sa.Index("idx_conversation_resolutions_company_closed", "company_id", "closed_at"),
        # a conversation's previous closing, and (per inbound batch) whether a rating is awaited
        sa.Index(
            "idx_conversation_resolutions_conversation_closed", "conversation_id", "closed_at"
        ),
        enum_check("csat_status", CsatStatus),
        sa.CheckConstraint("csat_score BETWEEN 1 AND 5", name="csat_score"),
    )

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    conversation_id: uuid.UUID = fk("conversations.id", ondelete="CASCADE")
    team_id: uuid.UUID | None = fk("teams.id", ondelete="SET NULL", nullable=True)
    user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)  # assignee
    # the customer's first message since the previous close (or the conversation's start)
    opened_at: datetime = Field()
    first_response_at: datetime | None = timestamp_field()  # a person's first reply after it
    closed_at: datetime = Field()
    handled_by_human: bool = bool_field(False)  # a person wrote in this stretch, not only bots
    csat_status: CsatStatus = enum_field(CsatStatus, CsatStatus.NONE)
    csat_requested_at: datetime | None = timestamp_field()
    csat_score: int | None = Field(default=None, sa_type=sa.SmallInteger)
    csat_comment: str | None = text_field(nullable=True)
    csat_rated_at: datetime | None = timestamp_field()
