"""Report shapes (``GET /api/v1/reports/...``): figures over a range of days in the company's
time zone; durations in seconds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GroupBy(StrEnum):
    DAY = "day"
    TEAM = "team"
    AGENT = "agent"


class ReportRange(BaseModel):
    """The days asked for, both included, in the company's time zone."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "start": "2026-11-01",
                    "end": "2026-11-30",
                    "timezone": "America/Sao_Paulo",
                    "team_id": None,
                }
            ]
        }
    )

    start: date
    end: date
    timezone: str
    team_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ReportQuery:
    """What every report is asked: the company, the days (and team) and the answer's format."""

    company_id: uuid.UUID
    period: ReportRange
    format: Literal["json", "csv"]


class ConversationFigures(BaseModel):
    """Conversations closed in one group (a day, a team or an agent) and how fast."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "key": "2026-11-03",
                    "label": "2026-11-03",
                    "opened": 41,
                    "closed": 37,
                    "first_response_p50": 312.0,
                    "first_response_p90": 2710.5,
                    "resolution_p50": 5400.0,
                    "resolution_p90": 86400.0,
                    "handled_by_human": 30,
                    "handled_by_bot": 7,
                }
            ]
        }
    )

    key: str = Field(description="The day (YYYY-MM-DD), team id or user id; '' for none")
    label: str = Field(description="The day, the team's or the agent's name")
    opened: int | None = Field(None, description="Conversations started that day (by day only)")
    closed: int
    first_response_p50: float | None = None
    first_response_p90: float | None = None
    resolution_p50: float | None = None
    resolution_p90: float | None = None
    handled_by_human: int = Field(description="Closed after a person wrote in them")
    handled_by_bot: int = Field(description="Closed with only automation answering")


class ConversationsReport(BaseModel):
    range: ReportRange
    group_by: GroupBy
    rows: list[ConversationFigures]


class SlaFigures(BaseModel):
    """SLA targets decided in one group (a day, a team or an agent): met by their due time, or
    missed (breached). A target counts on the day it was met or breached, for the person it
    was met or missed by (the agent who replied; the assignee at the close or the breach)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "key": "2026-11-03",
                    "label": "2026-11-03",
                    "first_response_met": 30,
                    "first_response_missed": 6,
                    "first_response_met_pct": 83.3,
                    "resolution_met": 25,
                    "resolution_missed": 0,
                    "resolution_met_pct": 100.0,
                }
            ]
        }
    )

    key: str = Field(description="The day (YYYY-MM-DD), team id or user id; '' for none")
    label: str = Field(description="The day, the team's or the agent's name")
    first_response_met: int
    first_response_missed: int
    first_response_met_pct: float | None = Field(description="Met of decided, 0-100; null: none")
    resolution_met: int
    resolution_missed: int
    resolution_met_pct: float | None = Field(description="Met of decided, 0-100; null: none")


class SlasReport(BaseModel):
    range: ReportRange
    group_by: GroupBy
    rows: list[SlaFigures]


class MessageFigures(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "day": "2026-11-03",
                    "inbound": 812,
                    "outbound": 790,
                    "outbound_human": 402,
                    "outbound_bot": 388,
                }
            ]
        }
    )

    day: date
    inbound: int
    outbound: int
    outbound_human: int = Field(description="Written by agents or on the business phone")
    outbound_bot: int = Field(description="AI, flows, follow-ups, campaigns")


class MessagesReport(BaseModel):
    """The company's messages per day (all teams: a message belongs to no team)."""

    range: ReportRange
    rows: list[MessageFigures]


class HeatmapReport(BaseModel):
    """Inbound messages by weekday (0 = Monday) and hour, in the company's time zone."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"cells": [[0] * 24] * 7, "max": 0}]})

    range: ReportRange
    cells: list[list[int]] = Field(description="7 rows (Monday first) of 24 hours")
    max: int


class CsatDay(BaseModel):
    day: date
    rated: int
    average: float | None


class CsatReport(BaseModel):
    """Ratings (1 to 5) of the conversations closed in the range."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "requested": 120,
                    "rated": 48,
                    "average": 4.2,
                    "distribution": [2, 3, 5, 12, 26],
                    "days": [{"day": "2026-11-03", "rated": 4, "average": 4.5}],
                }
            ]
        }
    )

    range: ReportRange
    requested: int
    rated: int
    average: float | None
    distribution: list[int] = Field(description="How many gave 1, 2, 3, 4 and 5")
    days: list[CsatDay]
