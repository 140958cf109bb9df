"""Message templates' shapes: the public template, the sync request and result, and the
creation body (Meta's own template body, for one number)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from zapflow.models import TemplateStatus


class TemplatePublic(BaseModel):
    """A number's message template as Meta last described it."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0b8f6c9e-3c1a-4a53-9d55-0f1f0c3f7a10",
                    "instance_id": "5e0c2b1a-7f7e-4c55-8a3b-2c1d0e9f8a7b",
                    "graph_id": "1234567890",
                    "name": "promo_natal",
                    "language": "pt_BR",
                    "category": "MARKETING",
                    "status": "APPROVED",
                    "reason": None,
                    "quality": "GREEN",
                    "parameter_format": "POSITIONAL",
                    "components": [{"type": "BODY", "text": "Oi {{1}}, temos novidades!"}],
                    "synced_at": "2026-12-02T15:00:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    instance_id: uuid.UUID
    graph_id: str | None
    name: str
    language: str
    category: str
    status: TemplateStatus
    reason: str | None = Field(description="Why it is rejected, paused or disabled")
    quality: str | None
    parameter_format: str
    components: list[dict[str, Any]]
    synced_at: datetime | None


class TemplateList(BaseModel):
    data: list[TemplatePublic]


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instance_id: uuid.UUID = Field(description="A Cloud API number with settings.waba_id")


class SyncResult(BaseModel):
    instance_id: uuid.UUID
    synced: int = Field(description="Templates the Graph API listed")


class TemplateCreate(BaseModel):
    """Meta's template creation body (name, language, category, components), for one number."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "instance_id": "5e0c2b1a-7f7e-4c55-8a3b-2c1d0e9f8a7b",
                    "name": "promo_natal",
                    "language": "pt_BR",
                    "category": "MARKETING",
                    "components": [
                        {
                            "type": "BODY",
                            "text": "Oi {{1}}, temos novidades!",
                            "example": {"body_text": [["Ana"]]},
                        }
                    ],
                }
            ]
        },
    )

    instance_id: uuid.UUID
    name: str = Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")
    language: str = Field(min_length=2, max_length=16)
    category: str = Field(pattern=r"^(MARKETING|UTILITY|AUTHENTICATION)$")
    parameter_format: str | None = Field(None, pattern=r"^(POSITIONAL|NAMED)$")
    components: list[dict[str, Any]] = Field(min_length=1, max_length=10)
