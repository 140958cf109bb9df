"""People's sign-in, sessions and own account: request and response shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from zapflow.models import Availability, UserRole

Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class SignIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"email": "ana@acme.com", "password": "correct horse"}]},
    )

    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254)]
    password: Password
    company_id: uuid.UUID | None = Field(
        None, description="Only when the e-mail signs in to several companies (a 409 says so)"
    )


class AcceptLink(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"token": "k3Jx...", "password": "a new passphrase"}]},
    )

    token: Annotated[str, StringConstraints(min_length=16, max_length=128)]
    password: Password = Field(description="The new password, 10 to 256 characters")


class MeUser(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    role: UserRole
    availability: Availability


class Me(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "company_id": "5d0c3b0e-4b8e-4a57-9d5f-3f1c2a7b9e10",
                    "role": "agent",
                    "permissions": ["conversations:read", "conversations:write"],
                    "user": {
                        "id": "0b6f3c2e-8f55-4c1e-9d0a-5e2f7a1b9c44",
                        "email": "ana@acme.com",
                        "name": "Ana Souza",
                        "role": "agent",
                        "availability": "available",
                    },
                    "session_id": "7a8e0f52-2b41-4f0c-a3c6-1e9d5b2f8a37",
                    "csrf_token": "3f1e...",
                }
            ]
        }
    )

    company_id: uuid.UUID
    role: UserRole = Field(description="What the credential may do (never above its user's)")
    permissions: list[str] = Field(description="What it may do: `Requires(...)` of each route")
    user: MeUser | None = Field(description="null for a company API key of no user")
    session_id: uuid.UUID | None = Field(description="The browser session, if signed in")
    csrf_token: str | None = Field(
        description="Send it as X-CSRF-Token with every POST/PUT/PATCH/DELETE of the session"
    )


class MeUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"availability": "away"}]}
    )

    availability: Availability = Field(description="available: routing may hand you conversations")


Secret = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class PasswordChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"current_password": "old passphrase", "new_password": "a new passphrase"}]
        },
    )

    current_password: Secret
    new_password: Secret


class SessionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    current: bool = False


class SignInProvider(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Okta", "start": "/auth/oidc/start"}]}
    )

    name: str
    start: str


class SignInOptions(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"oidc": {"name": "Okta", "start": "/auth/oidc/start"}}]}
    )

    oidc: SignInProvider | None
