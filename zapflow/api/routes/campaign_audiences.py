"""A campaign's audience before sending: the preview of a draft (counts, exclusions by reason, a
sample with the message each would get, the cost estimate), a campaign's cost estimate, and the
CSV audience (contacts created or updated from a file and tagged as a list)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep
from zapflow.api.routes.campaigns import campaign_message, checked_audience
from zapflow.api.uploads import IMPORT_BODY, CsvUpload
from zapflow.errors import Unprocessable
from zapflow.models import WhatsAppInstance
from zapflow.schemas.campaign_audiences import (
    AudiencePreview,
    AudienceUpload,
    CostEstimate,
    PreviewRequest,
    SampleContact,
)
from zapflow.schemas.campaigns import AudienceIn
from zapflow.services import campaign_audiences as service
from zapflow.services import campaigns
from zapflow.services.deals import scoped_reference
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/campaigns", tags=["campaigns"])


@router.post(
    "/preview",
    summary="Preview a draft campaign: who it reaches, who is left out and why, a sample with "
    "each one's message, and the cost estimate",
    response_model=AudiencePreview,
    responses={422: {"description": "The template or a parameter's source, named by field"}},
    dependencies=[Requires(Permission.CAMPAIGNS_READ)],
)
async def preview(
    body: PreviewRequest, principal: CurrentPrincipal, session: SessionDep
) -> AudiencePreview:
    company_id = principal.company_id
    instance = await scoped_reference(
        session, WhatsAppInstance, company_id, body.instance_id, "instance_id"
    )
    where = checked_audience(body.audience)
    message = campaign_message(body.message) if body.message else None
    template = await service.message_template(session, instance, message) if message else None
    by_bsuid = campaigns.sends_by_bsuid(instance, template)
    found = await service.reach(session, company_id, where, instance.id, by_bsuid)
    sample_query = service.sample_query(company_id, where, body.sample, by_bsuid)
    rows = (await session.execute(sample_query)).scalars()
    sample = []
    for contact in rows:
        shown = SampleContact.model_validate(contact)
        if message is not None:
            try:
                shown.message = service.rendered(message, template, contact)
            except Unprocessable as exc:
                shown.problem = exc.message
        sample.append(shown)
    return AudiencePreview(
        contacts=found.contacts,
        recipients=found.recipients,
        excluded=found.excluded,
        sample=sample,
        estimate=CostEstimate(**service.estimate(instance.provider, template, found))
        if message is not None
        else None,
    )


@router.get(
    "/{campaign_id}/estimate",
    summary="A campaign's cost estimate: recipients by Meta's pricing category, inside and "
    "outside the 24-hour window (shown, never charged)",
    response_model=CostEstimate,
    dependencies=[Requires(Permission.CAMPAIGNS_READ)],
)
async def estimate(
    campaign_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> CostEstimate:
    campaign = await campaigns.get_campaign(session, principal.company_id, campaign_id)
    return CostEstimate(**await service.campaign_estimate(session, campaign))


@router.post(
    "/audiences/csv",
    summary="Upload a CSV audience: its contacts are created or updated (by phone) and tagged "
    "as a list, which a campaign's audience then names",
    response_model=AudienceUpload,
    openapi_extra=IMPORT_BODY,
    responses={
        413: {"description": "The file is over 10 MB or 100,000 rows"},
        422: {"description": "No header row, unknown columns, not UTF-8, or a bad list name"},
    },
    dependencies=[Requires(Permission.CAMPAIGNS_MANAGE)],
)
async def upload_audience(
    principal: CurrentPrincipal,
    session: SessionDep,
    upload: CsvUpload,
    name: Annotated[
        str | None,
        Query(
            alias="list",
            max_length=50,
            description="The list's name (its tag); by default one from the file's content",
        ),
    ] = None,
) -> AudienceUpload:
    tag, report = await service.import_audience(session, principal.company_id, upload, name)
    return AudienceUpload(tag=tag, audience=AudienceIn(tags=[tag]), report=report)
