"""Teams' request and response shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from zapflow.models import RoutingMode

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]


class TeamCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Sales", "routing_mode": "round_robin"}]},
    )

    name: Name
    routing_mode: RoutingMode = RoutingMode.MANUAL


class TeamUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"routing_mode": "least_busy"}]}
    )

    name: Name | None = None
    routing_mode: RoutingMode | None = None


class MemberPublic(BaseModel):
    user_id: uuid.UUID
    capacity: int


class TeamPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "4c1f6d2a-1b0e-4f7a-9a55-0e3c8b7d2f91",
                    "name": "Sales",
                    "routing_mode": "round_robin",
                    "members": [{"user_id": "0b6f3c2e-8f55-4c1e-9d0a-5e2f7a1b9c44", "capacity": 5}],
                    "created_at": "2026-12-02T16:00:00Z",
                }
            ]
        }
    )

    id: uuid.UUID
    name: str
    routing_mode: RoutingMode
    members: list[MemberPublic]
    created_at: datetime


class Membership(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"capacity": 5}]})

    capacity: int = Field(5, ge=1, le=1000, description="Open conversations routing hands them")
