"""API keys' request and response shapes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from zapflow.models import UserRole

SHOWN_ONCE = "Store this key now: it is shown only once and cannot be recovered."


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "CRM sync", "role": "admin"},
                {
                    "name": "Ana's inbox",
                    "role": "agent",
                    "user_id": "5f0c2d4e-8a51-4c1b-9d7e-2b3f6a1c9e10",
                },
            ]
        },
    )

    name: str = Field(min_length=1, max_length=120)
    role: UserRole = UserRole.AGENT
    user_id: uuid.UUID | None = Field(
        None, description="The user the key acts for (of this company); none for integrations"
    )


class ApiKeyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's visible start, to recognise it")
    role: UserRole
    user_id: uuid.UUID | None
    created_at: datetime
    last_used_at: datetime | None = Field(description="Updated at most once a minute")
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The secret: send it as `Authorization: Bearer <key>`")
    warning: str = SHOWN_ONCE
