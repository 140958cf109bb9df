"""A contact's opt-out from broadcasts: the request body and the public state."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class OptOutIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "asked by phone"}]}
    )

    reason: str | None = Field(None, max_length=500)


class OptOutPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    contact_id: uuid.UUID
    opted_out: bool
    source: str | None = Field(None, description="api, or keyword (the customer wrote one)")
    reason: str | None = None
    created_at: datetime | None = None
