"""Controlling and reading campaigns: pause, resume, cancel, one campaign, the list."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.errors import Conflict
from zapflow.models import (
    Campaign,
    CampaignStatus,
    WhatsAppInstance,
)
from zapflow.services.campaigns.progress import announce
from zapflow.services.campaigns.sending import refresh_queued
from zapflow.services.inbox import store_campaign_command
from zapflow.services.queries import get_scoped

ACTIONS = {
    "pause": ({CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.WAITING_TIER},
              CampaignStatus.PAUSED),
    "resume": ({CampaignStatus.PAUSED}, CampaignStatus.RUNNING),
    "cancel": ({CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED,
                CampaignStatus.WAITING_TIER}, CampaignStatus.CANCELLED),
}  # fmt: skip


async def control(
    session: AsyncSession,
    company_id: uuid.UUID,
    campaign_id: uuid.UUID,
    action: str,
) -> Campaign:
    """Pause, resume or cancel: the row changes now, and the inbox command committed with it
    has the relay signal the workflow (its sends check the row, so a signal that arrives late
    sends nothing it should not)."""
    campaign = await get_scoped(session, Campaign, company_id, campaign_id)
    allowed, target = ACTIONS[action]
    if campaign.status not in allowed:
        raise Conflict(f"a {campaign.status.value} campaign cannot {action}")
    if target == CampaignStatus.RUNNING and campaign.started_at is None:
        target = CampaignStatus.SCHEDULED  # resumed before its time: it waits for it again
    elif target == CampaignStatus.RUNNING:  # an edit made while paused applies from now
        await refresh_queued(session, campaign)
    campaign.status = target
    campaign.status_reason = None
    await session.flush()
    await announce(session, campaign)
    instance = await session.get(WhatsAppInstance, campaign.instance_id)
    assert instance is not None
    await store_campaign_command(session, instance, campaign.id, action)
    return campaign


async def get_campaign(
    session: AsyncSession, company_id: uuid.UUID, campaign_id: uuid.UUID
) -> Campaign:
    return await get_scoped(session, Campaign, company_id, campaign_id)


async def list_campaigns(
    session: AsyncSession, company_id: uuid.UUID, limit: int = 100
) -> list[Campaign]:
    query = (
        select(Campaign)
        .where(col(Campaign.company_id) == company_id)
        .order_by(col(Campaign.created_at).desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())
