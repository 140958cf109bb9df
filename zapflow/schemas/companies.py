"""The company's shapes: the rules of its timezone and business hours, its settings (message
templates, rate limits), its AI agent's settings, and the request and response bodies."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from functools import cache
from itertools import pairwise
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from zapflow.schemas.csat import CsatSettings
from zapflow.schemas.fields import NotNull

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# Zero-padded, so comparing the strings compares the times.
ClockTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["09:00"])]
OpeningRange = Annotated[
    list[ClockTime], Field(min_length=2, max_length=2, examples=[["09:00", "18:00"]])
]


@cache
def _zone_names() -> frozenset[str]:
    # "localtime" is a file in the zone directory, but names the server's zone, not an IANA one
    return frozenset(available_timezones() - {"localtime"})


def check_timezone(name: str) -> str:
    """An IANA zone name known to ``zoneinfo`` (``ValueError`` otherwise)."""
    if name not in _zone_names():
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. America/Sao_Paulo)")
    return name


def check_business_hours(hours: dict[Day, list[OpeningRange]]) -> dict[Day, list[OpeningRange]]:
    """Each day's ranges start before they end and do not overlap; returned sorted."""
    checked: dict[Day, list[OpeningRange]] = {}
    for day, ranges in hours.items():
        ordered = sorted(ranges)
        for start, end in ordered:
            if start >= end:
                raise ValueError(f"{day}: {start}-{end} does not start before it ends")
        for (start, end), (next_start, next_end) in pairwise(ordered):
            if next_start < end:
                raise ValueError(f"{day}: {start}-{end} overlaps {next_start}-{next_end}")
        checked[day] = ordered
    return checked


class MessageTemplate(BaseModel):
    """A WhatsApp message template the company had approved (what may be sent outside the
    24-hour customer-service window)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=512, examples=["retomar_contato"])
    language: str = Field("en_US", max_length=16, examples=["pt_BR"])
    parameters: int = Field(0, ge=0, le=20, description="How many body parameters it takes")


class CompanySettings(BaseModel):
    """Per-company knobs; the ones zapflow reads are checked, others are kept as given."""

    model_config = ConfigDict(extra="allow")

    rate_limits: dict[str, Annotated[StrictInt, Field(gt=0)]] | None = Field(
        None,
        description="Requests per minute per API key, by route group (`contacts`, ...) "
        "or `default`",
        examples=[{"default": 600, "contacts": 120}],
    )
    templates: list[MessageTemplate] | None = Field(
        None, description="Approved message templates follow-ups and flows may send"
    )
    mark_read: bool | None = Field(
        None,
        description="When an agent opens a conversation with unread messages, mark the "
        "customer's latest message read at WhatsApp and show the typing indicator (off by "
        "default). A number's own `settings.mark_read` overrides it",
        examples=[True],
    )
    holidays: list[date] | None = Field(
        None,
        max_length=400,
        description="Local dates closed all day: SLA targets do not count them",
        examples=[["2026-12-25", "2027-01-01"]],
    )
    csat: CsatSettings | None = Field(None, description="The rating request sent on close")


Timezone = Annotated[str, AfterValidator(check_timezone)]
BusinessHours = Annotated[dict[Day, list[OpeningRange]], AfterValidator(check_business_hours)]


class AISettings(BaseModel):
    """A company's AI agent (``companies.ai_settings``); its prompt is ``companies.ai_prompt``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Answer customers when no human has taken over")
    model: str | None = Field(None, max_length=200, description="Default: ZAPFLOW_AI_MODEL")
    temperature: float = Field(0.3, ge=0, le=2)
    max_tokens: int = Field(400, ge=1, le=8000)
    reply_delay_seconds: float = Field(
        4.0, ge=0, le=600, description="Wait this long after the last message before answering"
    )
    only_in_business_hours: bool = Field(False, description="Stay silent outside opening hours")
    history_messages: int = Field(20, ge=1, le=200, description="Recent messages in the context")
    related_messages: int = Field(5, ge=0, le=50, description="Earlier related messages (search)")
    resume_after_minutes: int | None = Field(
        None, ge=1, le=60 * 24 * 30, description="Resume by itself after this much human silence"
    )


class CompanyUpdate(BaseModel):
    """Only the fields sent change; ``ai_prompt`` may be ``null`` (no prompt), the others may
    not. Dictionaries are replaced, not merged."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "timezone": "America/Sao_Paulo",
                    "business_hours": {
                        "mon": [["09:00", "12:00"], ["13:00", "18:00"]],
                        "sat": [["09:00", "13:00"]],
                    },
                },
                {"ai_prompt": "Você é a assistente da Acme. Responda em português, com gentileza."},
            ]
        },
    )

    name: Annotated[str | None, NotNull] = Field(None, min_length=1, max_length=200)
    timezone: Annotated[Timezone | None, NotNull] = Field(
        None, description="IANA name, e.g. America/Sao_Paulo"
    )
    business_hours: Annotated[BusinessHours | None, NotNull] = Field(
        None,
        description="Opening ranges per day (mon..sun), HH:MM, non-overlapping; "
        "a missing day is closed",
    )
    ai_prompt: str | None = Field(None, max_length=20_000)
    ai_settings: Annotated[AISettings | None, NotNull] = None
    settings: Annotated[CompanySettings | None, NotNull] = None


class AIStatus(BaseModel):
    available: bool = Field(description="A model provider is configured (ZAPFLOW_AI_BASE_URL)")
    enabled: bool = Field(description="The company turned its AI agent on (ai_settings.enabled)")
    reason: str | None = Field(description="Why the agent does not answer, if it does not")


class CompanyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    timezone: str
    business_hours: dict[str, list[list[str]]]
    ai_prompt: str | None
    ai_settings: dict[str, Any]
    ai_status: AIStatus
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
