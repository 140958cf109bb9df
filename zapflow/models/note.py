import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import SQLModel

from ._fields import company_fk, created_at_field, fk, text_field, uuid_pk


class Note(SQLModel, table=True):
    __tablename__ = "notes"
    __table_args__ = (
        sa.Index("idx_notes_company_id", "company_id"),
        sa.Index("idx_notes_contact_id", "contact_id", sa.text("created_at DESC")),
        sa.Index("idx_notes_deal_id", "deal_id", sa.text("created_at DESC")),
    )

    body: str = text_field()
    contact_id: uuid.UUID | None = fk("contacts.id", ondelete="CASCADE", nullable=True)
    deal_id: uuid.UUID | None = fk("deals.id", ondelete="CASCADE", nullable=True)

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    author_user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)
    created_at: datetime = created_at_field()
