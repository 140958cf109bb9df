"""Uploaded media files' public shape."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class MediaFilePublic(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "6f1c2a9e-8d3b-4c5e-9a7f-1b2c3d4e5f60",
                    "filename": "price-list.pdf",
                    "mime_type": "application/pdf",
                    "kind": "document",
                    "size_bytes": 48213,
                    "created_at": "2026-12-03T08:00:00Z",
                }
            ]
        },
    )

    id: uuid.UUID = Field(
        description="Name it as `media_id` in a message's or canned response's media"
    )
    filename: str | None
    mime_type: str = Field(description="Read from the file's content, not the upload's headers")
    kind: str = Field(description="image, audio, video or document")
    size_bytes: int
    created_at: datetime
