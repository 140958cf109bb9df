"""Broadcast campaigns: the audience's count before creating one, create (its CampaignWorkflow
is started by the inbox relay from a command committed with the campaign), edit before it
starts or while paused, list, get, per-recipient status, stats, and pause / resume / cancel
(the row changes and a command is queued for the relay, which signals the workflow). Progress
is also live on the event stream (``campaign.progress``)."""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlmodel import col

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep
from zapflow.api.routes.contacts import Filter
from zapflow.errors import Unprocessable
from zapflow.models import CampaignRecipient, RecipientStatus, WhatsAppInstance
from zapflow.schemas.campaigns import (
    AudienceCount,
    AudienceIn,
    CampaignCreate,
    CampaignEdit,
    CampaignList,
    CampaignPublic,
    CampaignStats,
    MessageIn,
    RecipientList,
    RecipientPublic,
)
from zapflow.schemas.contacts import normalize_tags
from zapflow.services import campaigns as service
from zapflow.services import contacts
from zapflow.services.deals import scoped_reference
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/campaigns", tags=["campaigns"])


@router.get(
    "/audience",
    summary="How many contacts a campaign with this audience would reach",
    response_model=AudienceCount,
    dependencies=[Requires(Permission.CAMPAIGNS_READ)],
)
async def count_audience(
    principal: CurrentPrincipal,
    session: SessionDep,
    where: Filter,
    instance_id: Annotated[
        uuid.UUID | None,
        Query(
            description="The number that would send: contacts known only by a BSUID count as "
            "recipients where it sends to one (a Cloud API number), as `no_phone` elsewhere; "
            "without it, every contact without a phone counts as `no_phone`"
        ),
    ] = None,
) -> AudienceCount:
    by_bsuid = False
    if instance_id is not None:
        instance = await scoped_reference(
            session, WhatsAppInstance, principal.company_id, instance_id, "instance_id"
        )
        by_bsuid = service.sends_by_bsuid(instance, None)
    counts = await service.count_audience(session, principal.company_id, where, by_bsuid)
    return AudienceCount(**counts)


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
) -> CampaignPublic:
    new = service.NewCampaign(
        name=body.name,
        instance_id=body.instance_id,
        audience=checked_audience(body.audience),
        message=campaign_message(body.message),
        scheduled_at=body.scheduled_at.astimezone(UTC) if body.scheduled_at else None,
        throughput=body.throughput,
        business_hours_only=body.business_hours_only,
    )
    campaign = await service.create_campaign(session, principal.company_id, new, principal.user_id)
    return CampaignPublic.model_validate(campaign)


@router.patch(
    "/{campaign_id}",
    summary="Edit a campaign before it starts, or while it is paused (applied at the resume; "
    "409 while running or finished, or for its audience or schedule once started)",
    response_model=CampaignPublic,
    dependencies=[Requires(Permission.CAMPAIGNS_MANAGE)],
)
async def edit_campaign(
    campaign_id: uuid.UUID, body: CampaignEdit, principal: CurrentPrincipal, session: SessionDep
) -> CampaignPublic:
    changes: dict[str, Any] = {f: getattr(body, f) for f in body.model_fields_set}
    if body.audience is not None:
        changes["audience"] = checked_audience(body.audience)
    if body.message is not None:
        changes["message"] = campaign_message(body.message)
    if body.scheduled_at is not None:
        changes["scheduled_at"] = body.scheduled_at.astimezone(UTC)
    campaign = await service.edit_campaign(session, principal.company_id, campaign_id, changes)
    return CampaignPublic.model_validate(campaign)


def checked_audience(audience: AudienceIn) -> contacts.ContactFilter:
    """The audience as the contacts' filter, its tags normalized (a 422 naming a bad one)."""
    try:
        tags = tuple(normalize_tags(audience.tags))
    except ValueError as exc:
        raise Unprocessable(f"audience.tags: {exc}", details={"field": "audience.tags"}) from None
    return contacts.ContactFilter(audience.q, tags, audience.created_since)


def campaign_message(message: MessageIn) -> dict[str, Any]:
    """The message as a campaign stores it (the fields given)."""
    return message.model_dump(exclude_none=True)


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
        campaign_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
    ) -> CampaignPublic:
        campaign = await service.control(session, principal.company_id, campaign_id, action)
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
