"""Notes' request and response shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NoteBody = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]


class NoteCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "body": "Quer proposta até sexta; prefere contato por WhatsApp.",
                    "contact_id": "5f0c2d4e-8a51-4c1b-9d7e-2b3f6a1c9e10",
                }
            ]
        },
    )

    body: NoteBody
    contact_id: uuid.UUID | None = Field(None, description="Exactly one of contact_id, deal_id")
    deal_id: uuid.UUID | None = Field(None, description="Exactly one of contact_id, deal_id")


class NoteUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"body": "Proposta enviada."}]}
    )

    body: NoteBody


class NotePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    body: str
    contact_id: uuid.UUID | None
    deal_id: uuid.UUID | None
    author_user_id: uuid.UUID | None = Field(description="The user of the key that wrote it")
    created_at: datetime
