"""Follow-ups' shapes: a step (when, and what to send), the create and reschedule bodies, and the
public shape shared by the API responses and the ``followup.*`` live events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from zapflow.models import FollowUpStatus, utc_now


@dataclass(frozen=True)
class Template:
    name: str
    language: str | None = None
    params: Sequence[str] = ()


@dataclass(frozen=True)
class Step:
    """One message of a follow-up (a sequence has several): when, and what to send."""

    due: datetime | timedelta  # a moment, or a delay after the previous step (or now)
    text: str | None = None
    template: Template | None = None


class FollowUpPublic(BaseModel):
    """A follow-up; also the data of ``followup.*`` events."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    contact_id: uuid.UUID
    status: FollowUpStatus
    scheduled_for: datetime = Field(description="When it fires (in business hours if asked)")
    message_text: str | None
    template_name: str | None
    template_params: dict[str, Any] | None
    cancel_on_reply: bool
    only_in_business_hours: bool
    sequence_id: uuid.UUID | None
    sequence_step: int | None
    workflow_id: str | None = Field(description="The Temporal workflow holding its timer")
    message_id: uuid.UUID | None = Field(description="The message it sent (once fired)")
    failure_reason: str | None
    created_by_user_id: uuid.UUID | None
    sent_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime


MAX_DELAY = timedelta(days=365)


MAX_STEPS = 10


class FollowUpTemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=512, description="A template in settings.templates")
    language: str | None = Field(None, max_length=16, examples=["pt_BR"])
    params: list[str] = Field(default_factory=list, max_length=20)


class When(BaseModel):
    """Exactly one of ``at`` (a moment with its zone) or ``after`` (a delay)."""

    at: AwareDatetime | None = Field(None, description="When to send, with its time zone")
    after: timedelta | None = Field(
        None,
        description="How long from now (or after the previous step): ISO 8601 (`P2D`, "
        "`PT30M`) or seconds; more than zero, at most a year",
    )

    @model_validator(mode="after")
    def _one_moment(self) -> Self:
        if (self.at is None) == (self.after is None):
            raise ValueError("give exactly one of `at` and `after`")
        if self.at is not None and self.at <= utc_now():
            raise ValueError(f"`at` ({self.at.isoformat()}) is in the past")
        if self.after is not None and not timedelta(0) < self.after <= MAX_DELAY:
            raise ValueError("`after` must be more than zero and at most 365 days")
        return self

    def due(self) -> datetime | timedelta:
        due = self.at or self.after
        assert due is not None
        return due


class StepIn(When):
    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, min_length=1, max_length=4096)
    template: FollowUpTemplateIn | None = Field(
        None, description="Sent outside WhatsApp's 24-hour window (or always, without text)"
    )

    @model_validator(mode="after")
    def _something_to_send(self) -> Self:
        if self.text is None and self.template is None:
            raise ValueError("give `text`, `template`, or both")
        return self

    def step(self) -> Step:
        template = None
        if self.template:
            template = Template(
                self.template.name, self.template.language, tuple(self.template.params)
            )
        return Step(self.due(), self.text, template)


class FollowUpCreate(BaseModel):
    """One follow-up (``at``/``after`` with ``text``/``template``), or a sequence (``steps``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"after": "P2D", "text": "Oi! Conseguiu ver a proposta?"},
                {
                    "at": "2026-12-01T09:00:00-03:00",
                    "text": "Bom dia! Posso ajudar?",
                    "template": {"name": "retomar_contato", "language": "pt_BR"},
                    "only_in_business_hours": True,
                },
                {
                    "steps": [
                        {"after": "P1D", "text": "Ficou alguma dúvida?"},
                        {"after": "P3D", "template": {"name": "retomar_contato"}},
                    ]
                },
            ]
        },
    )

    at: AwareDatetime | None = None
    after: timedelta | None = None
    text: str | None = None
    template: FollowUpTemplateIn | None = None
    steps: list[StepIn] | None = Field(
        None,
        min_length=1,
        max_length=MAX_STEPS,
        description="A sequence: each step's `after` counts from the previous step",
    )
    cancel_on_reply: bool = Field(True, description="Cancel when the customer writes")
    only_in_business_hours: bool = Field(
        False, description="Move a time outside the company's hours to its next opening"
    )

    def steps_to_schedule(self) -> list[Step]:
        single = self.model_dump(include={"at", "after", "text", "template"}, exclude_none=True)
        if self.steps is not None:
            if single:
                raise ValueError("give either `steps` or a single follow-up, not both")
            return [step.step() for step in self.steps]
        return [StepIn.model_validate(single).step()]

    @model_validator(mode="after")
    def _valid_steps(self) -> Self:
        self.steps_to_schedule()
        return self


class FollowUpReschedule(When):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"after": "PT4H"}]})
