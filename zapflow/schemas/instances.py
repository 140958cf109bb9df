"""WhatsApp instances' request and response shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from zapflow.models import InstanceStatus, WhatsAppProvider
from zapflow.schemas.fields import NotNull


class InstanceCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Sales",
                    "provider": "cloud",
                    "phone_number_id": "106540352242922",
                    "display_phone": "+55 11 4000-1234",
                    "access_token": "EAAG...",
                    "app_secret": "9f8e7d...",
                },
                {
                    "name": "Support",
                    "provider": "evolution",
                    "evolution_instance": "support",
                    "api_key": "B6D711FCDE4D4FD5936544120E713976",
                },
            ]
        },
    )

    name: str = Field(min_length=1, max_length=120)
    provider: WhatsAppProvider
    phone_number_id: str | None = None
    evolution_instance: str | None = None
    display_phone: str | None = None
    access_token: str | None = Field(None, description="Cloud API token (write-only)")
    app_secret: str | None = Field(None, description="Cloud API app secret (write-only)")
    api_key: str | None = Field(None, description="Evolution API instance token (write-only)")
    verify_token: str | None = Field(
        None, description="Cloud API handshake token; generated if omitted"
    )
    settings: dict[str, Any] = Field(default_factory=dict)


class InstanceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str | None, NotNull] = Field(None, min_length=1, max_length=120)
    display_phone: str | None = None
    access_token: str | None = None
    app_secret: str | None = None
    api_key: str | None = None
    verify_token: Annotated[str | None, NotNull] = None
    settings: Annotated[dict[str, Any] | None, NotNull] = None


class InstancePublic(BaseModel):
    id: uuid.UUID
    name: str
    provider: WhatsAppProvider
    phone_number_id: str | None
    evolution_instance: str | None
    display_phone: str | None
    status: InstanceStatus
    webhook_url: str | None = Field(
        description="Give this URL to the provider (its path holds a bearer secret: shown only "
        "to callers with the instances:manage permission, null for others)"
    )
    verify_token: str | None = Field(
        description="Cloud API: the verify token to enter in Meta's console (instances:manage "
        "only, null for others)"
    )
    evolution_jwt_key: str | None = Field(
        None,
        description="Evolution, when the operator enables JWTs: the `jwt_key` to put in the "
        "webhook's headers (this instance's own; Evolution signs each delivery's JWT with it; "
        "instances:manage only)",
    )
    has_access_token: bool
    has_app_secret: bool
    has_api_key: bool
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
