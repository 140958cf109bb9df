"""A campaign's stats: delivered, read and reply rates among the sent, failures and exclusions
by reason."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.models import (
    Campaign,
    CampaignRecipient,
    Conversation,
    Message,
    RecipientStatus,
)
from zapflow.services.campaigns.progress import progress


async def stats(session: AsyncSession, campaign: Campaign) -> dict[str, Any]:
    """Counts by recipient status, delivered/read/replied among the sent (from their messages'
    statuses and the conversations' last inbound), and failures and exclusions by reason."""
    counts = await progress(session, campaign.id)
    r, m, c = CampaignRecipient, Message, Conversation
    sent_query = (
        select(
            func.count().filter(col(m.status).in_(["delivered", "read"])),
            func.count().filter(col(m.status) == "read"),
            func.count().filter(col(c.last_inbound_at) > col(r.sent_at)),
        )
        .select_from(r)
        .join(m, col(m.id) == col(r.message_id))
        .join(c, col(c.id) == col(m.conversation_id))
        .where(col(r.campaign_id) == campaign.id, col(r.status) == RecipientStatus.SENT)
    )
    delivered, read, replied = (await session.execute(sent_query)).one()
    reasons_query = (
        select(col(r.status), col(r.reason), func.count())
        .where(col(r.campaign_id) == campaign.id, col(r.reason).is_not(None))
        .group_by(col(r.status), col(r.reason))
    )
    reasons: dict[str, dict[str, int]] = {"failed": {}, "excluded": {}, "deferred": {}}
    for status, reason, n in (await session.execute(reasons_query)).all():
        key = "deferred" if status == RecipientStatus.QUEUED else str(status)
        reasons.setdefault(key, {})[str(reason)] = n
    sent = counts["sent"]

    def share(n: int) -> float:
        return round(100 * n / sent, 1) if sent else 0.0

    return {
        "counts": counts,
        "delivered": delivered, "read": read, "replied": replied,
        "delivered_pct": share(delivered), "read_pct": share(read), "reply_pct": share(replied),
        "reasons": reasons,
    }  # fmt: skip
