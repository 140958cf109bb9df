"""A campaign's audience: the contact filter it stores, the count before creating one (with the
exclusions), and the snapshot taken once when it starts.

Who can be sent to: a contact with a phone, or, from a Cloud API number, one known only by its
BSUID (Meta's business-scoped user id, sent as the message's ``recipient``); but not with an
authentication template, which Meta sends to phone numbers only (error 131062). The others are
excluded as ``no_phone``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.models import (
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    Contact,
    ContactIdentity,
    IdentityKind,
    Template,
    WhatsAppInstance,
    WhatsAppProvider,
    utc_now,
)
from zapflow.services.campaigns.progress import campaign_event
from zapflow.services.contacts import ContactFilter, filtered
from zapflow.services.events import stage
from zapflow.services.opt_outs import opted_out


def audience_dict(where: ContactFilter) -> dict[str, Any]:
    return {
        "q": where.q,
        "tags": list(where.tags),
        "created_since": where.created_since.isoformat() if where.created_since else None,
    }


def audience_filter(audience: dict[str, Any]) -> ContactFilter:
    since = audience.get("created_since")
    return ContactFilter(
        q=audience.get("q"),
        tags=tuple(audience.get("tags") or ()),
        created_since=datetime.fromisoformat(since) if since else None,
    )


def sends_by_bsuid(instance: WhatsAppInstance, template: Template | None) -> bool:
    """Whether this number (and message) reaches a contact known only by its BSUID."""
    authentication = template is not None and template.category.upper() == "AUTHENTICATION"
    return instance.provider == WhatsAppProvider.CLOUD and not authentication


def addressable(by_bsuid: bool) -> ColumnElement[bool]:
    """A contact the campaign can address: a phone, or a BSUID when the number sends to one."""
    phone = col(Contact.phone_number).is_not(None)
    if not by_bsuid:
        return phone
    bsuid = exists().where(
        col(ContactIdentity.contact_id) == col(Contact.id),
        col(ContactIdentity.kind) == IdentityKind.BSUID,
    )
    return or_(phone, bsuid)


async def _by_bsuid(session: AsyncSession, campaign: Campaign) -> bool:
    instance = await session.get(WhatsAppInstance, campaign.instance_id)
    assert instance is not None
    spec = campaign.message.get("template")
    template = None
    if spec is not None:
        template = (
            await session.execute(
                select(Template).where(
                    col(Template.instance_id) == instance.id,
                    col(Template.name) == spec["name"],
                    col(Template.language) == spec.get("language"),
                )
            )
        ).scalar_one_or_none()
    return sends_by_bsuid(instance, template)


def audience_counts(by_bsuid: bool) -> tuple[ColumnElement[int], ...]:
    """The filter's contacts, then the ones a snapshot would leave out by reason in its order:
    opted out, then nothing to send to (``no_phone``, as ``addressable`` says)."""
    opted = opted_out()
    return (
        func.count(),
        func.count().filter(opted),
        func.count().filter(and_(~opted, ~addressable(by_bsuid))),
    )


async def count_audience(
    session: AsyncSession, company_id: uuid.UUID, where: ContactFilter, by_bsuid: bool
) -> dict[str, int]:
    """How many contacts the filter finds, and how many of them would be excluded (why)."""
    query = filtered(company_id, where, *audience_counts(by_bsuid))
    total, opted, no_phone = (await session.execute(query)).one()
    return {"contacts": total, "opted_out": opted, "no_phone": no_phone}


async def snapshot_when_due(session: AsyncSession, campaign_id: uuid.UUID) -> float:
    """Seconds until the campaign's schedule as the row says now (edits included), or 0 once
    its audience is snapshotted (now, or before)."""
    campaign = await session.get(Campaign, campaign_id, with_for_update=True)
    assert campaign is not None
    now = utc_now()
    if campaign.started_at is None and campaign.scheduled_at and campaign.scheduled_at > now:
        return (campaign.scheduled_at - now).total_seconds()
    await snapshot(session, campaign_id)
    return 0.0


async def snapshot(session: AsyncSession, campaign_id: uuid.UUID) -> int:
    """The audience as it is now, once (a retried call finds it taken): queued recipients in
    the contacts' order, and the excluded ones with their reason."""
    campaign = await session.get(Campaign, campaign_id, with_for_update=True)
    assert campaign is not None
    if campaign.started_at is not None:
        return 0
    reason = case(
        (opted_out(), literal("opted_out")),
        (~addressable(await _by_bsuid(session, campaign)), literal("no_phone")),
        else_=literal(None),
    )
    status = case((reason.is_(None), literal("queued")), else_=literal("excluded"))
    rows = filtered(
        campaign.company_id,
        audience_filter(campaign.audience),
        literal(campaign.id),
        col(Contact.id),
        status,
        reason,
    ).order_by(col(Contact.created_at), col(Contact.id))
    statement = (
        insert(CampaignRecipient)
        .from_select(["campaign_id", "contact_id", "status", "reason"], rows)
        .on_conflict_do_nothing()
    )
    result = await session.execute(statement)
    campaign.started_at = utc_now()
    if campaign.status == CampaignStatus.SCHEDULED:  # paused before its time: stays paused
        campaign.status = CampaignStatus.RUNNING
    await session.flush()
    await stage(session, [campaign_event(campaign)])
    return int(getattr(result, "rowcount", 0) or 0)
