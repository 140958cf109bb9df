"""Follow-ups: schedule one (or a sequence) on a conversation, list, get, reschedule, cancel.

Each follow-up is a durable timer held by the conversation's Temporal workflow (its id is the
row's ``workflow_id``); see services/followups.py for the state rules.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from zapflow.api.deps import CurrentPrincipal, PublisherDep, Requires, SessionDep
from zapflow.api.paging import Cursor, CursorPage, Limit, fields_param, respond
from zapflow.models import FollowUp, FollowUpStatus, utc_now
from zapflow.schemas import FollowUpPublic
from zapflow.services import followups as service
from zapflow.services.permissions import Permission
from zapflow.services.queries import get_conversation

router = APIRouter(tags=["follow-ups"])

MAX_DELAY = timedelta(days=365)
MAX_STEPS = 10


class TemplateIn(BaseModel):
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
    template: TemplateIn | None = Field(
        None, description="Sent outside WhatsApp's 24-hour window (or always, without text)"
    )

    @model_validator(mode="after")
    def _something_to_send(self) -> Self:
        if self.text is None and self.template is None:
            raise ValueError("give `text`, `template`, or both")
        return self

    def step(self) -> service.Step:
        template = None
        if self.template:
            template = service.Template(
                self.template.name, self.template.language, tuple(self.template.params)
            )
        return service.Step(self.due(), self.text, template)


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
    template: TemplateIn | None = None
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

    def steps_to_schedule(self) -> list[service.Step]:
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


FollowUpFields = Annotated[frozenset[str] | None, Depends(fields_param(FollowUpPublic))]
NOT_PENDING: dict[int | str, dict[str, Any]] = {
    409: {"description": "the follow-up was already sent, cancelled, failed or is being sent"}
}


def _public(rows: list[FollowUp]) -> list[FollowUpPublic]:
    return [FollowUpPublic.model_validate(row) for row in rows]


async def _announce(publisher: PublisherDep, event_type: str, rows: list[FollowUp]) -> None:
    await publisher.emit(*(service.followup_event(event_type, row) for row in rows))


@router.post(
    "/conversations/{conversation_id}/followups",
    status_code=201,
    summary="Schedule a follow-up (or a sequence of them) on a conversation",
    response_model=list[FollowUpPublic],
    responses={
        404: {"description": "no such conversation"},
        422: {"description": "a time in the past, a bad delay, an unknown template, a closed "
              "conversation"},
    }, dependencies=[Requires(Permission.FOLLOWUPS_WRITE)])  # fmt: skip
async def schedule_followups(
    conversation_id: uuid.UUID,
    body: FollowUpCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    publisher: PublisherDep,
) -> Any:
    conversation = await get_conversation(session, principal.company_id, conversation_id)
    options = service.Options(body.cancel_on_reply, body.only_in_business_hours)
    rows = await service.schedule(
        session, conversation, body.steps_to_schedule(), options, principal.user_id
    )
    await _announce(publisher, "followup.scheduled", rows)
    return _public(rows)


@router.get(
    "/followups",
    summary="Follow-ups, latest due first",
    response_model=CursorPage[FollowUpPublic],
    dependencies=[Requires(Permission.FOLLOWUPS_READ)],
)
async def list_followups(
    principal: CurrentPrincipal,
    session: SessionDep,
    fields: FollowUpFields,
    status: Annotated[FollowUpStatus | None, Query(description="Only in this state")] = None,
    conversation_id: Annotated[
        uuid.UUID | None, Query(description="Only on this conversation")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    rows, next_cursor = await service.page_followups(
        session, principal.company_id, status, conversation_id, limit, cursor
    )
    return respond(CursorPage[FollowUpPublic].of(rows, next_cursor), fields)


@router.get(
    "/followups/{followup_id}",
    summary="Get a follow-up",
    response_model=FollowUpPublic,
    dependencies=[Requires(Permission.FOLLOWUPS_READ)],
)
async def get_followup(
    followup_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, fields: FollowUpFields
) -> Any:
    followup = await service.get_followup(session, principal.company_id, followup_id)
    return respond(FollowUpPublic.model_validate(followup), fields)


@router.patch(
    "/followups/{followup_id}",
    summary="Move a pending follow-up to another time",
    response_model=FollowUpPublic,
    responses=NOT_PENDING,
    dependencies=[Requires(Permission.FOLLOWUPS_WRITE)],
)
async def reschedule_followup(
    followup_id: uuid.UUID,
    body: FollowUpReschedule,
    principal: CurrentPrincipal,
    session: SessionDep,
    publisher: PublisherDep,
) -> Any:
    followup = await service.get_followup(session, principal.company_id, followup_id)
    due = body.due()
    moment = due if isinstance(due, datetime) else utc_now() + due
    await service.reschedule(session, followup, moment)
    await _announce(publisher, "followup.scheduled", [followup])
    return FollowUpPublic.model_validate(followup)


@router.delete(
    "/followups/{followup_id}",
    status_code=204,
    summary="Cancel a pending follow-up (or its whole sequence)",
    responses=NOT_PENDING,
    dependencies=[Requires(Permission.FOLLOWUPS_WRITE)],
)
async def cancel_followup(
    followup_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    publisher: PublisherDep,
    whole_sequence: Annotated[
        bool, Query(description="Also cancel the other pending steps of its sequence")
    ] = False,
) -> Response:
    followup = await service.get_followup(session, principal.company_id, followup_id)
    rows = await service.cancel(session, followup, whole_sequence)
    await _announce(publisher, "followup.cancelled", rows)
    return Response(status_code=204)
