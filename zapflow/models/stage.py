import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import SQLModel

from ._fields import company_fk, created_at_field, fk, str_field, uuid_pk


class Stage(SQLModel, table=True):
    __tablename__ = "stages"
    __table_args__ = (
        # Deferred to commit, so a reorder can swap positions inside one transaction.
        sa.UniqueConstraint("funnel_id", "position", deferrable=True, initially="DEFERRED"),
    )

    name: str
    position: int
    color: str = str_field("#64748b")  # "#rrggbb"

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    funnel_id: uuid.UUID = fk("funnels.id", ondelete="CASCADE")
    created_at: datetime = created_at_field()
