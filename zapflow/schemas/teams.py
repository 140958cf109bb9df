"""Teams' request and response shapes (a team's SLA and CSAT settings are part of the team)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from zapflow.models import RoutingMode, SlaEscalation
from zapflow.schemas.csat import CsatSettings
from zapflow.schemas.fields import NotNull

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
# seconds of the company's business time; 90 days of them at most
TargetSeconds = Annotated[int, Field(ge=1, le=7_776_000)]
FIRST_RESPONSE = "First-response target in seconds of business time (null: none)"
RESOLUTION = "Resolution target in seconds of business time (null: none)"
ESCALATION = "What a breach does beyond marking it: none, reassign, raise_priority"
CSAT = "The rating request its conversations get on close (null: the company's settings.csat)"


class TeamCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Sales",
                    "routing_mode": "round_robin",
                    "first_response_seconds": 900,
                    "resolution_seconds": 28800,
                    "sla_escalation": "reassign",
                }
            ]
        },
    )

    name: Name
    routing_mode: RoutingMode = RoutingMode.MANUAL
    first_response_seconds: TargetSeconds | None = Field(None, description=FIRST_RESPONSE)
    resolution_seconds: TargetSeconds | None = Field(None, description=RESOLUTION)
    sla_escalation: SlaEscalation = Field(SlaEscalation.NONE, description=ESCALATION)
    csat: CsatSettings | None = Field(None, description=CSAT)


class TeamUpdate(BaseModel):
    """What is given changes; a target set to null is removed."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"routing_mode": "least_busy", "resolution_seconds": 7200},
                {"csat": {"enabled": True, "question": "Como foi o atendimento de vendas?"}},
            ]
        },
    )

    name: Annotated[Name | None, NotNull] = None
    routing_mode: Annotated[RoutingMode | None, NotNull] = None
    first_response_seconds: TargetSeconds | None = Field(None, description=FIRST_RESPONSE)
    resolution_seconds: TargetSeconds | None = Field(None, description=RESOLUTION)
    sla_escalation: Annotated[SlaEscalation | None, NotNull] = Field(None, description=ESCALATION)
    csat: CsatSettings | None = Field(None, description=CSAT)


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
                    "first_response_seconds": 900,
                    "resolution_seconds": 28800,
                    "sla_escalation": "reassign",
                    "csat": None,
                    "members": [{"user_id": "0b6f3c2e-8f55-4c1e-9d0a-5e2f7a1b9c44", "capacity": 5}],
                    "created_at": "2026-12-02T16:00:00Z",
                }
            ]
        }
    )

    id: uuid.UUID
    name: str
    routing_mode: RoutingMode
    first_response_seconds: int | None
    resolution_seconds: int | None
    sla_escalation: SlaEscalation
    csat: CsatSettings | None = Field(description=CSAT)
    members: list[MemberPublic]
    created_at: datetime


class Membership(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"capacity": 5}]})

    capacity: int = Field(5, ge=1, le=1000, description="Open conversations routing hands them")
