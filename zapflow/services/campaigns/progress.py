"""A campaign's status and progress: counts by recipient status, the ``campaign.progress``
event, status changes made while it runs, and its end (completed, or cancelled)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.models import (
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    Message,
    MessageStatus,
    RecipientStatus,
    utc_now,
)
from zapflow.services.events import Event, stage

FINISHED = {CampaignStatus.COMPLETED, CampaignStatus.CANCELLED}
STOPPED = {CampaignStatus.PAUSED, CampaignStatus.CANCELLED}


def campaign_event(campaign: Campaign, counts: dict[str, int] | None = None) -> Event:
    data = {
        "id": str(campaign.id),
        "status": campaign.status.value,
        "status_reason": campaign.status_reason,
        "counts": counts,
    }
    return Event("campaign.progress", campaign.company_id, data)


async def progress(session: AsyncSession, campaign_id: uuid.UUID) -> dict[str, int]:
    query = (
        select(col(CampaignRecipient.status), func.count())
        .where(col(CampaignRecipient.campaign_id) == campaign_id)
        .group_by(col(CampaignRecipient.status))
    )
    counts = {s.value: 0 for s in RecipientStatus}
    counts.update({str(k): v for k, v in (await session.execute(query)).all()})
    return counts


async def announce(session: AsyncSession, campaign: Campaign) -> None:
    await stage(session, [campaign_event(campaign, await progress(session, campaign.id))])


async def set_status(
    session: AsyncSession, campaign: Campaign, status: CampaignStatus, reason: str | None = None
) -> None:
    if campaign.status in FINISHED or campaign.status == status:
        return
    campaign.status = status
    campaign.status_reason = reason
    await session.flush()
    await announce(session, campaign)


async def finish(session: AsyncSession, campaign_id: uuid.UUID, cancelled: bool) -> None:
    """Completed, or cancelled: the recipients still queued become ``cancelled``."""
    campaign = await session.get(Campaign, campaign_id, with_for_update=True)
    assert campaign is not None
    if cancelled:
        await session.execute(
            update(CampaignRecipient)
            .where(
                col(CampaignRecipient.campaign_id) == campaign_id,
                col(CampaignRecipient.status) == RecipientStatus.QUEUED,
            )
            .values(status=RecipientStatus.CANCELLED, reason="campaign cancelled")
        )
        # their messages, queued with the batch but never claimed, are not sent either
        await session.execute(
            update(Message)
            .where(
                col(Message.id).in_(
                    select(col(CampaignRecipient.message_id)).where(
                        col(CampaignRecipient.campaign_id) == campaign_id,
                        col(CampaignRecipient.status) == RecipientStatus.CANCELLED,
                    )
                ),
                col(Message.status) == MessageStatus.PENDING,
            )
            .values(status=MessageStatus.FAILED, error={"message": "campaign cancelled"})
        )
    if campaign.finished_at is None:
        if campaign.status != CampaignStatus.CANCELLED:
            campaign.status = CampaignStatus.CANCELLED if cancelled else CampaignStatus.COMPLETED
        campaign.finished_at = utc_now()
    await session.flush()
    await announce(session, campaign)
