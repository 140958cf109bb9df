import uuid
from datetime import datetime
from enum import StrEnum

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


class UserTokenKind(StrEnum):
    INVITE = "invite"  # sets the first password of an invited user
    RESET = "reset"  # an admin let the user choose a new password


class UserToken(SQLModel, table=True):
    """A one-time link that lets a user set a password: only the token's sha256 is kept."""

    __tablename__ = "user_tokens"
    __table_args__ = (
        sa.Index("idx_user_tokens_user_id", "user_id"),
        enum_check("kind", UserTokenKind),
    )

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    user_id: uuid.UUID = fk("users.id", ondelete="CASCADE")
    kind: UserTokenKind = enum_field(UserTokenKind)
    token_hash: str = Field(unique=True)
    created_by_user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)
    created_at: datetime = created_at_field()
    expires_at: datetime = timestamp_field(server_now=True)
    used_at: datetime | None = timestamp_field()
