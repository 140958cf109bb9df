"""Controlling and reading campaigns: pause, resume, cancel, one campaign, the list."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.db import after_commit
from zapflow.errors import Conflict
from zapflow.models import (
    Campaign,
    CampaignStatus,
)
from zapflow.services.campaigns.progress import announce
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
    signal: Callable[[Campaign, str], Any],
) -> Campaign:
    """Pause, resume or cancel: the row changes now, the workflow hears it after the commit
    (and its sends check the row, so a signal that arrives late sends nothing it should not)."""
    campaign = await get_scoped(session, Campaign, company_id, campaign_id)
    allowed, target = ACTIONS[action]
    if campaign.status not in allowed:
        raise Conflict(f"a {campaign.status.value} campaign cannot {action}")
    campaign.status = target
    campaign.status_reason = None
    await session.flush()
    await announce(session, campaign)
    after_commit(session, lambda: signal(campaign, action))
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
