import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

from ._fields import company_fk, fk, jsonb_field, text_field, timestamp_field, uuid_pk


class FlowVersion(SQLModel, table=True):
    """An immutable published snapshot of a flow's definition."""

    __tablename__ = "flow_versions"
    __table_args__ = (sa.UniqueConstraint("flow_id", "version"),)

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    flow_id: uuid.UUID = fk("flows.id", ondelete="CASCADE")
    version: int
    definition: dict[str, Any] = jsonb_field()
    published_at: datetime = timestamp_field(server_now=True)
    published_by_user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)
    note: str | None = text_field(nullable=True)  # what changed, in the publisher's words
