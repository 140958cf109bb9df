import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import SQLModel

from ._fields import company_fk, created_at_field, fk, uuid_pk


class DealStageChange(SQLModel, table=True):
    """History of a deal's moves between stages (appended by the service on every move)."""

    __tablename__ = "deal_stage_changes"
    __table_args__ = (
        sa.Index("idx_deal_stage_changes_deal_id", "deal_id", sa.text("created_at DESC")),
    )

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    deal_id: uuid.UUID = fk("deals.id", ondelete="CASCADE")
    from_stage_id: uuid.UUID | None = fk("stages.id", ondelete="SET NULL", nullable=True)
    to_stage_id: uuid.UUID = fk("stages.id", ondelete="CASCADE")
    changed_by_user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)
    created_at: datetime = created_at_field()
