"""Uploaded media files' public shapes: a file, and a file as the company's list shows it."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue

EXAMPLE: dict[str, JsonValue] = {
    "id": "6f1c2a9e-8d3b-4c5e-9a7f-1b2c3d4e5f60",
    "filename": "price-list.pdf",
    "mime_type": "application/pdf",
    "kind": "document",
    "size_bytes": 48213,
    "created_at": "2026-12-03T08:00:00Z",
}


class MediaFilePublic(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [EXAMPLE]},
    )

    id: uuid.UUID = Field(
        description="Name it as `media_id` in a message's or canned response's media"
    )
    filename: str | None
    mime_type: str = Field(description="Read from the file's content, not the upload's headers")
    kind: str = Field(description="image, audio, video or document")
    size_bytes: int
    created_at: datetime


class Uploader(BaseModel):
    id: uuid.UUID
    name: str


class CannedUse(BaseModel):
    id: uuid.UUID
    shortcut: str


class MediaUses(BaseModel):
    canned_responses: list[CannedUse] = Field(description="Their attachments name the file")
    messages: int = Field(description="How many messages' media name the file")


class MediaFileListed(MediaFilePublic):
    """A file in the company's list: who uploaded it and what names it (a file named by
    anything cannot be deleted)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **EXAMPLE,
                    "uploaded_by": {"id": "0b6f9a52-3c1d-4e8f-9a7b-2c3d4e5f6a70", "name": "Ana"},
                    "used_by": {
                        "canned_responses": [
                            {"id": "9d2e4f6a-1b3c-4d5e-8f7a-6b5c4d3e2f10", "shortcut": "price"}
                        ],
                        "messages": 3,
                    },
                }
            ]
        },
    )

    uploaded_by: Uploader | None = Field(description="null: uploaded with an API key")
    used_by: MediaUses
