import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

from ._fields import company_fk, created_at_field, fk, jsonb_field, uuid_pk


class ContactMerge(SQLModel, table=True):
    """The audit record of a merge: who merged which contact into which, what moved, which
    values conflicted and which won, and the merged contact as it was (it is deleted)."""

    __tablename__ = "contact_merges"
    __table_args__ = (sa.Index("idx_contact_merges_survivor", "company_id", "survivor_id"),)

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    survivor_id: uuid.UUID = fk("contacts.id", ondelete="CASCADE")
    merged_id: uuid.UUID  # no foreign key: the merged contact is gone
    merged_contact: dict[str, Any] = jsonb_field()
    moved: dict[str, Any] = jsonb_field()  # table → rows moved
    conflicts: list[dict[str, Any]] = jsonb_field(list)
    user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)
    created_at: datetime = created_at_field()
