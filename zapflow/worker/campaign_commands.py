"""Campaign commands from the inbox (``campaign`` rows: start, pause, resume, cancel), relayed
to the campaigns' workflows.

Each command makes the workflow match the campaign's row as it is when relayed, not the action
it was stored with: a signal-with-start carrying the signal the row's status calls for
(``reschedule`` for a campaign still ``scheduled``: the workflow reads its schedule, maybe edited,
from the row). So the start is never lost after the commit (the row stays
pending until Temporal took it), a command relayed twice or out of order (two relays) leaves
the workflow as the row says, and a finished campaign is left alone. ``REJECT_DUPLICATE`` keeps
a closed campaign workflow from starting again under its id.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlmodel import col
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from zapflow.config import Settings
from zapflow.db import SessionFactory
from zapflow.models import Campaign, CampaignStatus
from zapflow.workflows.campaign import CampaignWorkflow
from zapflow.workflows.inputs import CampaignInput

RPC_TIMEOUT = timedelta(seconds=5)
SIGNAL_FOR = {
    CampaignStatus.SCHEDULED: "reschedule",
    CampaignStatus.PAUSED: "pause",
    CampaignStatus.CANCELLED: "cancel",
}


async def relay_campaign_commands(
    temporal: Client, sessions: SessionFactory, settings: Settings, rows: Sequence[tuple[int, str]]
) -> tuple[list[int], list[int]]:
    """Of the inbox rows (id, campaign id), those relayed (done) and those Temporal refused (to
    try again), one call per campaign however many of its commands are in the pass."""
    by_campaign: dict[uuid.UUID, list[int]] = {}
    for row_id, campaign_id in rows:
        by_campaign.setdefault(uuid.UUID(campaign_id), []).append(row_id)
    async with sessions() as session:
        query = select(Campaign).where(col(Campaign.id).in_(list(by_campaign)))
        found = {c.id: c for c in (await session.execute(query)).scalars()}
    results = await asyncio.gather(
        *(_command(temporal, settings, found.get(campaign_id)) for campaign_id in by_campaign)
    )
    done: list[int] = []
    failed: list[int] = []
    for ids, ok in zip(by_campaign.values(), results, strict=True):
        (done if ok else failed).extend(ids)
    return done, failed


async def _command(temporal: Client, settings: Settings, campaign: Campaign | None) -> bool:
    if campaign is None or campaign.finished_at is not None or campaign.workflow_id is None:
        return True  # deleted or finished: nothing to tell
    signal = SIGNAL_FOR.get(campaign.status, "resume")  # running, waiting_tier: resume
    scheduled = campaign.scheduled_at.isoformat() if campaign.scheduled_at else None
    try:
        await temporal.start_workflow(
            CampaignWorkflow.run,
            CampaignInput(str(campaign.id), scheduled_at=scheduled),
            id=campaign.workflow_id,
            task_queue=settings.campaigns_task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            start_signal=signal,
            rpc_timeout=RPC_TIMEOUT,
        )
    except WorkflowAlreadyStartedError:
        return True  # running already (a start relayed twice), or closed
    except (RPCError, OSError, TimeoutError):
        return False
    return True
