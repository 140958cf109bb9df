"""Defining a campaign: its instance, audience, message (a usable template with parameter
sources that resolve, or text on Evolution) and pacing, checked before it is stored."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from zapflow.errors import Unprocessable
from zapflow.models import (
    Campaign,
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


@dataclass(frozen=True)
class NewCampaign:
    name: str
    instance_id: uuid.UUID
    audience: ContactFilter
    message: dict[str, Any]  # {"template": {name, language}, "parameters": {...}} | {"text"}
    scheduled_at: datetime | None
    throughput: int | None
    business_hours_only: bool = False


async def _campaign_template(
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
    template = await _campaign_template(session, instance, new.message)
    if template is not None:
        templates.components_for(
            template, parameter_values(new.message.get("parameters") or {}, None)
        )
    message = dict(new.message)
    if template is not None:
        message["template"] = {"name": template.name, "language": template.language}
    campaign = Campaign(
        company_id=company_id,
        name=new.name,
        instance_id=instance.id,
        audience=audience_dict(new.audience),
        message=message,
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
