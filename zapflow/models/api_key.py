import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ._fields import (
    company_fk,
    created_at_field,
    enum_check,
    enum_field,
    fk,
    timestamp_field,
    uuid_pk,
)
from .user import UserRole


class ApiKey(SQLModel, table=True):
    """An API credential: only ``prefix`` (shown to people) and the secret's sha256 are kept."""

    __tablename__ = "api_keys"
    __table_args__ = (
        sa.Index("idx_api_keys_company_id", "company_id"),
        enum_check("role", UserRole),
    )

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    user_id: uuid.UUID | None = fk("users.id", ondelete="CASCADE", nullable=True)
    name: str
    prefix: str = Field(unique=True)  # e.g. "zf_ab12cd34"
    key_hash: str = Field(unique=True)  # sha256 hex of the full key
    role: UserRole = enum_field(UserRole, UserRole.AGENT)
    created_at: datetime = created_at_field()
    last_used_at: datetime | None = timestamp_field()
    revoked_at: datetime | None = timestamp_field()
