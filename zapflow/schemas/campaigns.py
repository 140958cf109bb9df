"""Campaigns' shapes: the creation body (audience, message with its parameters' sources,
schedule, pace), the edit before it starts, the public campaign, its recipients, the
audience's count and the stats."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from zapflow.models import CampaignStatus, RecipientStatus


class AudienceIn(BaseModel):
    """Contacts as ``GET /contacts`` filters them; opted-out contacts are always left out."""

    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(default_factory=list, max_length=20)
    q: str | None = Field(None, max_length=200)
    created_since: AwareDatetime | None = None


class TemplateRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=512)
    language: str | None = Field(None, max_length=16)


class MessageIn(BaseModel):
    """A template (Cloud API) with per-recipient parameters, or a text (Evolution)."""

    model_config = ConfigDict(extra="forbid")

    template: TemplateRef | None = None
    parameters: dict[str, Any] | None = Field(
        None,
        description="`header`, `body` (a list, or an object for named parameters), `buttons` "
        '(index → source); a source is `{"field": "name" | "phone_number" | "email" | '
        '"custom_fields.<key>", "fallback": "..."}` or `{"value": "..."}`',
    )
    text: str | None = Field(None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.template is None) == (self.text is None):
            raise ValueError("give exactly one of `template` and `text`")
        if self.text is not None and self.parameters:
            raise ValueError("`parameters` go with a template")
        return self


class CampaignCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Natal 2026",
                    "instance_id": "5e0c2b1a-7f7e-4c55-8a3b-2c1d0e9f8a7b",
                    "audience": {"tags": ["vip"]},
                    "message": {
                        "template": {"name": "promo_natal", "language": "pt_BR"},
                        "parameters": {"body": [{"field": "name", "fallback": "cliente"}]},
                    },
                    "scheduled_at": "2026-12-20T09:00:00-03:00",
                    "throughput": 80,
                    "business_hours_only": True,
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    instance_id: uuid.UUID
    audience: AudienceIn = Field(default_factory=AudienceIn)
    message: MessageIn
    scheduled_at: AwareDatetime | None = Field(None, description="None: start now")
    throughput: int | None = Field(
        None, ge=1, le=1000, description="Messages per second at most (default: the number's)"
    )
    business_hours_only: bool = Field(
        False, description="Send only inside the company's business hours (its time zone)"
    )


class CampaignEdit(BaseModel):
    """The fields to change (the others stay) while the campaign has not started."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"scheduled_at": "2026-12-21T09:00:00-03:00", "audience": {"tags": ["vip", "sp"]}}
            ]
        },
    )

    name: str | None = Field(None, min_length=1, max_length=200)
    audience: AudienceIn | None = None
    message: MessageIn | None = None
    scheduled_at: AwareDatetime | None = Field(None, description="null: start now")
    throughput: int | None = Field(None, ge=1, le=1000, description="null: the number's")
    business_hours_only: bool | None = None

    @model_validator(mode="after")
    def _not_null(self) -> Self:
        for field in ("name", "audience", "message", "business_hours_only"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"`{field}` cannot be null")
        return self


class CampaignPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    instance_id: uuid.UUID
    status: CampaignStatus
    status_reason: str | None
    audience: dict[str, Any]
    message: dict[str, Any]
    scheduled_at: datetime | None
    throughput: int
    business_hours_only: bool
    workflow_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime


class CampaignList(BaseModel):
    data: list[CampaignPublic]


class AudienceCount(BaseModel):
    contacts: int = Field(description="Contacts the filter finds")
    opted_out: int = Field(description="Of them, opted out (left out)")
    no_phone: int = Field(
        description="Of the rest, nothing to send to (left out): no phone, nor a BSUID the "
        "number sends to"
    )


class RecipientPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    contact_id: uuid.UUID
    status: RecipientStatus
    reason: str | None
    message_id: uuid.UUID | None
    attempts: int
    sent_at: datetime | None


class RecipientList(BaseModel):
    data: list[RecipientPublic]
    next_after: int | None = Field(description="Give it as `after` for the next page")


class CampaignStats(BaseModel):
    counts: dict[str, int]
    delivered: int
    read: int
    replied: int
    delivered_pct: float
    read_pct: float
    reply_pct: float
    reasons: dict[str, dict[str, int]] = Field(description="failed / excluded / deferred")
