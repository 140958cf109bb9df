"""Users' request and response shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from zapflow.models import UserRole, UserTokenKind
from zapflow.schemas.fields import NotNull

Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]


class UserCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"email": "ana@acme.com", "name": "Ana Souza", "role": "agent"}]
        },
    )

    email: Email = Field(description="Stored lower-cased; unique within the company")
    name: Name
    role: UserRole = UserRole.AGENT
    is_active: bool = True


class UserUpdate(BaseModel):
    """Only the fields sent change; none may be ``null``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"role": "admin"}, {"is_active": False}]},
    )

    email: Annotated[Email | None, NotNull] = None
    name: Annotated[Name | None, NotNull] = None
    role: Annotated[UserRole | None, NotNull] = None
    is_active: Annotated[bool | None, NotNull] = Field(
        None, description="false: the user's API keys stop working"
    )


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    role: UserRole
    is_active: bool
    created_at: datetime


class UserInvite(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"email": "bia@acme.com", "name": "Bia Lima", "role": "supervisor"}]
        },
    )

    email: Email
    name: Name
    role: UserRole = UserRole.AGENT


class PasswordLink(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user": {
                        "id": "0b6f3c2e-8f55-4c1e-9d0a-5e2f7a1b9c44",
                        "email": "bia@acme.com",
                        "name": "Bia Lima",
                        "role": "supervisor",
                        "is_active": True,
                        "created_at": "2026-12-02T16:00:00Z",
                    },
                    "kind": "invite",
                    "link": "https://crm.acme.com/app/#/accept/k3Jx...",
                    "expires_at": "2026-12-09T16:00:00Z",
                }
            ]
        }
    )

    user: UserPublic
    kind: UserTokenKind
    link: str = Field(description="Shown once: hand it to the person; it works one time")
    expires_at: datetime
