import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import SQLModel

from ._fields import company_fk, created_at_field, text_field, updated_at_field, uuid_pk


class Funnel(SQLModel, table=True):
    __tablename__ = "funnels"
    __table_args__ = (sa.Index("idx_funnels_company_id", "company_id"),)

    name: str
    description: str | None = text_field(nullable=True)

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
