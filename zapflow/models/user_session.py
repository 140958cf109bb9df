import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ._fields import company_fk, created_at_field, fk, timestamp_field, uuid_pk


class UserSession(SQLModel, table=True):
    """A person signed in to ``/app``: the cookie carries the token, only its sha256 is kept."""

    __tablename__ = "user_sessions"
    __table_args__ = (sa.Index("idx_user_sessions_user_id", "user_id", sa.text("created_at DESC")),)

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    user_id: uuid.UUID = fk("users.id", ondelete="CASCADE")
    token_hash: str = Field(unique=True)
    user_agent: str | None = Field(default=None, max_length=300)
    ip: str | None = Field(default=None, max_length=64)
    created_at: datetime = created_at_field()
    last_seen_at: datetime = timestamp_field(server_now=True)
    expires_at: datetime = timestamp_field(server_now=True)
    revoked_at: datetime | None = timestamp_field()
