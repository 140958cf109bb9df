"""Defining a campaign: its instance, audience, message (a usable template with parameter
sources that resolve, or text on Evolution) and pacing, checked before it is stored; and
editing it before it starts, or while it is paused (then not its audience nor schedule)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from zapflow.errors import Conflict, Unprocessable
from zapflow.models import (
    Campaign,
    CampaignStatus,
    Template,
    WhatsAppInstance,
    WhatsAppProvider,
)
from zapflow.services import templates
from zapflow.services.campaigns.audience import audience_dict
from zapflow.services.campaigns.content import parameter_values
from zapflow.services.campaigns.progress import campaign_event
from zapflow.services.contacts import ContactFilter
from zapflow.services.deals import scoped_reference
from zapflow.services.events import stage
from zapflow.services.inbox import store_campaign_command
from zapflow.services.number_pace import number_rate
from zapflow.services.queries import get_scoped


@dataclass(frozen=True)
class NewCampaign:
    name: str
    instance_id: uuid.UUID
    audience: ContactFilter
    message: dict[str, Any]  # {"template": {name, language}, "parameters": {...}} | {"text"}
    scheduled_at: datetime | None
    throughput: int | None
    business_hours_only: bool = False


async def campaign_template(
    session: AsyncSession, instance: WhatsAppInstance, message: dict[str, Any]
) -> Template | None:
    if "text" in message:
        return None
    if instance.provider != WhatsAppProvider.CLOUD:
        raise Unprocessable(
            "Evolution numbers have no templates: send a text",
            details={"field": "message.template"},
        )
    spec = message["template"]
    template = await templates.find_template(
        session, instance.company_id, instance.id, spec["name"], spec.get("language"),
        "message.template",
    )  # fmt: skip
    templates.check_usable(template, "message.template")
    return template


async def _checked_message(
    session: AsyncSession, instance: WhatsAppInstance, message: dict[str, Any]
) -> dict[str, Any]:
    """The message as stored: a usable template whose parameters' sources fit its components
    (named by its stored name and language), or a text."""
    template = await campaign_template(session, instance, message)
    if template is None:
        return dict(message)
    templates.components_for(template, parameter_values(message.get("parameters") or {}, None))
    return {**message, "template": {"name": template.name, "language": template.language}}


async def create_campaign(
    session: AsyncSession,
    company_id: uuid.UUID,
    new: NewCampaign,
    user_id: uuid.UUID | None,
) -> Campaign:
    """Checks the template and the parameters' sources, stores the campaign and, in the same
    transaction, the inbox command that has the relay start its workflow."""
    instance = await scoped_reference(
        session, WhatsAppInstance, company_id, new.instance_id, "instance_id"
    )
    campaign = Campaign(
        company_id=company_id,
        name=new.name,
        instance_id=instance.id,
        audience=audience_dict(new.audience),
        message=await _checked_message(session, instance, new.message),
        scheduled_at=new.scheduled_at,
        throughput=min(new.throughput or number_rate(instance.settings), 1000),
        business_hours_only=new.business_hours_only,
        created_by_user_id=user_id,
    )
    session.add(campaign)
    await session.flush()
    campaign.workflow_id = f"campaign/{company_id}/{campaign.id}"
    await session.flush()
    await stage(session, [campaign_event(campaign)])
    await store_campaign_command(session, instance, campaign.id, "start")
    return campaign


EDITABLE = {CampaignStatus.SCHEDULED, CampaignStatus.PAUSED}
# once the audience is snapshotted: who it goes to is fixed, and the schedule has passed
FIXED_ONCE_STARTED = ("audience", "scheduled_at")


async def edit_campaign(
    session: AsyncSession, company_id: uuid.UUID, campaign_id: uuid.UUID, changes: dict[str, Any]
) -> Campaign:
    """Change a campaign before it starts, or while it is paused (``changes``: any of
    ``name``, ``audience`` (a ContactFilter), ``message``, ``scheduled_at``, ``throughput``,
    ``business_hours_only``), checked as creating checks them. Once started only the name, the
    message and the pacing change: each batch reads them from the row, and the resume rewrites
    the messages queued but not claimed (``sending.refresh_queued``), so the edit applies to
    every recipient not sent yet. The row is locked, so an edit and the snapshot at the start
    cannot cross: whichever comes second sees the other. The inbox command committed with it
    has the relay wake the workflow, which reads the schedule from the row."""
    campaign = await get_scoped(session, Campaign, company_id, campaign_id)
    await session.refresh(campaign, with_for_update=True)
    if campaign.status not in EDITABLE:
        raise Conflict(_why_not_editable(campaign), details={"status": campaign.status.value})
    fixed = [f for f in FIXED_ONCE_STARTED if f in changes]
    if campaign.started_at is not None and fixed:
        raise Conflict(
            f"{fixed[0]}: the campaign started at {campaign.started_at.isoformat()} and its "
            "audience is snapshotted; while it is paused its name, message, throughput and "
            "business_hours_only can change (cancel it and create another for a new audience)",
            details={"field": fixed[0], "status": campaign.status.value},
        )
    instance = await session.get(WhatsAppInstance, campaign.instance_id)
    assert instance is not None
    if "message" in changes:
        campaign.message = await _checked_message(session, instance, changes["message"])
    if "audience" in changes:
        campaign.audience = audience_dict(changes["audience"])
    if "throughput" in changes:
        campaign.throughput = min(changes["throughput"] or number_rate(instance.settings), 1000)
    for field in ("name", "scheduled_at", "business_hours_only"):
        if field in changes:
            setattr(campaign, field, changes[field])
    await session.flush()
    await stage(session, [campaign_event(campaign)])
    await store_campaign_command(session, instance, campaign.id, "edit")
    return campaign


def _why_not_editable(campaign: Campaign) -> str:
    if campaign.started_at is None:  # finished before it started (cancelled)
        return f"a {campaign.status.value} campaign cannot be edited"
    return (
        f"a {campaign.status.value} campaign cannot be edited: it started at "
        f"{campaign.started_at.isoformat()} (pause it first to change its message or pacing)"
    )
