import uuid
from datetime import datetime
from typing import Any

from sqlmodel import SQLModel

from ._fields import bigint_identity_pk, company_fk, created_at_field, jsonb_field


class EventOutbox(SQLModel, table=True):
    """Events that could not be published to Redis at the time; published later, in id order."""

    __tablename__ = "event_outbox"

    id: int | None = bigint_identity_pk()
    company_id: uuid.UUID = company_fk()
    event_type: str  # e.g. "message.created"
    payload: dict[str, Any] = jsonb_field()
    created_at: datetime = created_at_field()
