import uuid
from datetime import datetime
from typing import Any

from sqlmodel import SQLModel

from ._fields import created_at_field, jsonb_field, str_field, text_field, updated_at_field, uuid_pk


class Company(SQLModel, table=True):
    __tablename__ = "companies"

    name: str
    timezone: str = str_field("UTC")  # IANA name, e.g. "America/Sao_Paulo"
    # {"mon": [["09:00", "18:00"]], "tue": [...], ...}; a missing day means closed that day
    business_hours: dict[str, list[list[str]]] = jsonb_field()
    ai_prompt: str | None = text_field(nullable=True)
    ai_settings: dict[str, Any] = jsonb_field()
    settings: dict[str, Any] = jsonb_field()  # rate limits and other per-tenant knobs

    id: uuid.UUID = uuid_pk()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
