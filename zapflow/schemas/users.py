"""Users' request and response shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from zapflow.models import UserRole
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
