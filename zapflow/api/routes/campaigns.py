"""Broadcast campaigns: the audience's count before creating one, create (its CampaignWorkflow
starts after the commit), list, get, per-recipient status, stats, and pause / resume / cancel
(the row changes, then the workflow is signalled). Progress is also live on the event stream
(``campaign.progress``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlmodel import col

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, SettingsDep, TemporalDep
from zapflow.api.routes.contacts import Filter
from zapflow.errors import Unprocessable
from zapflow.models import Campaign, CampaignRecipient, CampaignStatus, RecipientStatus
from zapflow.services import campaigns as service
from zapflow.services import contacts
from zapflow.services.permissions import Permission
from zapflow.workflows.inputs import CampaignInput

router = APIRouter(prefix="/campaigns", tags=["campaigns"])


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
    workflow_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime


class CampaignList(BaseModel):
    data: list[CampaignPublic]


class AudienceCount(BaseModel):
    contacts: int = Field(description="Contacts the filter finds")
    opted_out: int = Field(description="Of them, opted out (left out)")
    no_phone: int = Field(description="Of them, without a phone number (left out)")


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


@router.get(
    "/audience",
    summary="How many contacts a campaign with this audience would reach",
    response_model=AudienceCount,
    dependencies=[Requires(Permission.CAMPAIGNS_READ)],
)
async def count_audience(
    principal: CurrentPrincipal, session: SessionDep, where: Filter
) -> AudienceCount:
    return AudienceCount(**await service.count_audience(session, principal.company_id, where))


@router.post(
    "",
    summary="Create a campaign (it starts now, or at `scheduled_at`)",
    status_code=201,
    response_model=CampaignPublic,
    dependencies=[Requires(Permission.CAMPAIGNS_MANAGE)],
)
async def create_campaign(
    body: CampaignCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> CampaignPublic:
    try:
        tags = tuple(contacts.normalize_tags(body.audience.tags))
    except ValueError as exc:
        raise Unprocessable(f"audience.tags: {exc}", details={"field": "audience.tags"}) from None
    message = body.message.model_dump(exclude_none=True)
    new = service.NewCampaign(
        name=body.name,
        instance_id=body.instance_id,
        audience=contacts.ContactFilter(body.audience.q, tags, body.audience.created_since),
        message=message,
        scheduled_at=body.scheduled_at.astimezone(UTC) if body.scheduled_at else None,
        throughput=body.throughput,
    )

    async def start(campaign: Campaign) -> None:
        client = await temporal.get()
        scheduled = campaign.scheduled_at.isoformat() if campaign.scheduled_at else None
        await client.start_workflow(
            "CampaignWorkflow",
            CampaignInput(str(campaign.id), scheduled_at=scheduled),
            id=campaign.workflow_id or "",
            task_queue=settings.campaigns_task_queue,
        )

    campaign = await service.create_campaign(
        session, principal.company_id, new, principal.user_id, start
    )
    return CampaignPublic.model_validate(campaign)


@router.get(
    "",
    summary="The company's campaigns, newest first",
    response_model=CampaignList,
    dependencies=[Requires(Permission.CAMPAIGNS_READ)],
)
async def list_campaigns(principal: CurrentPrincipal, session: SessionDep) -> CampaignList:
    rows = await service.list_campaigns(session, principal.company_id)
    return CampaignList(data=[CampaignPublic.model_validate(r) for r in rows])


@router.get(
    "/{campaign_id}",
    summary="One campaign",
    response_model=CampaignPublic,
    dependencies=[Requires(Permission.CAMPAIGNS_READ)],
)
async def get_campaign(
    campaign_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> CampaignPublic:
    campaign = await service.get_campaign(session, principal.company_id, campaign_id)
    return CampaignPublic.model_validate(campaign)


@router.get(
    "/{campaign_id}/stats",
    summary="Delivered, read and reply rates; failures and exclusions by reason",
    response_model=CampaignStats,
    dependencies=[Requires(Permission.CAMPAIGNS_READ)],
)
async def campaign_stats(
    campaign_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> CampaignStats:
    campaign = await service.get_campaign(session, principal.company_id, campaign_id)
    return CampaignStats(**await service.stats(session, campaign))


@router.get(
    "/{campaign_id}/recipients",
    summary="The campaign's recipients in sending order, with their status and reason",
    response_model=RecipientList,
    dependencies=[Requires(Permission.CAMPAIGNS_READ)],
)
async def list_recipients(
    campaign_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    status: Annotated[RecipientStatus | None, Query()] = None,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RecipientList:
    await service.get_campaign(session, principal.company_id, campaign_id)
    query = select(CampaignRecipient).where(
        col(CampaignRecipient.campaign_id) == campaign_id, col(CampaignRecipient.id) > after
    )
    if status is not None:
        query = query.where(col(CampaignRecipient.status) == status)
    rows = list(
        (await session.execute(query.order_by(col(CampaignRecipient.id)).limit(limit))).scalars()
    )
    next_after = rows[-1].id if len(rows) == limit else None
    return RecipientList(
        data=[RecipientPublic.model_validate(r) for r in rows], next_after=next_after
    )


def _control(action: str) -> Any:
    async def control(
        campaign_id: uuid.UUID,
        principal: CurrentPrincipal,
        session: SessionDep,
        temporal: TemporalDep,
    ) -> CampaignPublic:
        async def signal(campaign: Campaign, action: str) -> None:
            client = await temporal.get()
            await client.get_workflow_handle(campaign.workflow_id or "").signal(action)

        campaign = await service.control(session, principal.company_id, campaign_id, action, signal)
        return CampaignPublic.model_validate(campaign)

    return control


for _action in ("pause", "resume", "cancel"):
    router.add_api_route(
        f"/{{campaign_id}}/{_action}",
        _control(_action),
        methods=["POST"],
        summary=f"{_action.capitalize()} the campaign",
        response_model=CampaignPublic,
        dependencies=[Requires(Permission.CAMPAIGNS_MANAGE)],
        name=f"{_action}_campaign",
    )
