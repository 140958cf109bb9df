import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from ._fields import company_fk, created_at_field, jsonb_field, str_field, updated_at_field, uuid_pk


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"
    __table_args__ = (
        sa.Index("idx_contacts_company_id", "company_id"),
        sa.Index("idx_contacts_phone", "phone_number"),
        # Unique: one contact per number and tenant. NULLs are distinct, so lid-only contacts
        # coexist; a plain (not partial) unique index lets upserts say
        # ON CONFLICT (company_id, phone_number) without repeating a predicate.
        sa.Index("idx_contacts_company_phone", "company_id", "phone_number", unique=True),
        sa.Index("idx_contacts_created_at", sa.text("created_at DESC")),
        sa.UniqueConstraint("company_id", "lid"),
        sa.Index("idx_contacts_company_email", "company_id", "email"),
        sa.Index(
            "idx_contacts_company_created",
            "company_id",
            sa.text("created_at DESC"),
            sa.text("id DESC"),
        ),
        sa.Index(
            "idx_contacts_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
        sa.Index("idx_contacts_tags", "tags", postgresql_using="gin"),
    )

    phone_number: str | None = None  # E.164 ("+5511999999999"); None for contacts known by lid only
    name: str = str_field("")
    email: str | None = None
    tags: list[str] = Field(
        default_factory=list,
        sa_type=ARRAY(sa.Text),
        sa_column_kwargs={"server_default": sa.text("'{}'::text[]")},
    )
    custom_fields: dict[str, Any] = jsonb_field()

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    wa_id: str | None = None  # Cloud API wa_id
    lid: str | None = None  # WhatsApp "@lid" identifier
    # the other WhatsApp names of this person (JIDs, BSUIDs, username) are its identities
    # (models/contact_identity.py)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
