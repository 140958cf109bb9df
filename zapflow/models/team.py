import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

from ._fields import company_fk, created_at_field, enum_check, enum_field, fk, jsonb_field, uuid_pk


class RoutingMode(StrEnum):
    MANUAL = "manual"  # waiting conversations wait for someone to take them
    ROUND_ROBIN = "round_robin"  # the next available member after the last one given one
    LEAST_BUSY = "least_busy"  # the available member with the fewest open conversations


class SlaEscalation(StrEnum):
    NONE = "none"  # a breach is marked and announced only
    REASSIGN = "reassign"  # the conversation goes back to the team's queue (routing hands it on)
    RAISE_PRIORITY = "raise_priority"  # the conversation's priority becomes high


class Team(SQLModel, table=True):
    __tablename__ = "teams"
    __table_args__ = (
        sa.UniqueConstraint("company_id", "name"),
        enum_check("routing_mode", RoutingMode),
        enum_check("sla_escalation", SlaEscalation),
    )

    name: str
    routing_mode: RoutingMode = enum_field(RoutingMode, RoutingMode.MANUAL)
    # SLA targets in seconds of the company's business time (NULL: no such target)
    first_response_seconds: int | None = None
    resolution_seconds: int | None = None
    sla_escalation: SlaEscalation = enum_field(SlaEscalation, SlaEscalation.NONE)
    # the rating request its conversations get on close (schemas/csat.CsatSettings); NULL: the
    # company's (settings.csat)
    csat: dict[str, Any] | None = jsonb_field(nullable=True)

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    # round-robin's place: the member handed the last conversation
    last_assigned_user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)
    created_at: datetime = created_at_field()
