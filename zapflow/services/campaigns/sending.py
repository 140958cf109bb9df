"""Sending a campaign: which recipients are due, the room the number's messaging tier leaves,
the wait for business hours, and one recipient through the idempotent send path.

Each recipient's message is queued with ``client_id=campaign:<campaign>:<contact>`` in its
conversation and claimed (``pending`` → ``sending``) before the provider is called, like every
message: a batch retried after a crash finds the message it queued, sent or not, and a claim
left ``sending`` by a killed worker fails as ``delivery_unknown`` instead of sending twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.errors import Unprocessable
from zapflow.models import (
    Campaign,
    CampaignRecipient,
    Company,
    Contact,
    ContactIdentity,
    Conversation,
    IdentityKind,
    MessageSender,
    OptOut,
    RecipientStatus,
    Template,
    WhatsAppInstance,
    utc_now,
)
from zapflow.services import business_hours, messages
from zapflow.services.campaigns.content import content_for
from zapflow.services.campaigns.progress import STOPPED, announce
from zapflow.services.conversations import upsert_conversation
from zapflow.services.messages import queue_outbound
from zapflow.whatsapp import jid as jids
from zapflow.workflows.inputs import ConversationRef

TIERS = (250, 1_000, 2_000, 10_000, 100_000)  # Meta's messaging tiers; none set: unlimited


def client_id(campaign_id: uuid.UUID, contact_id: uuid.UUID) -> str:
    return f"campaign:{campaign_id}:{contact_id}"


@dataclass(frozen=True)
class Due:
    recipient_ids: list[int]
    next_deferred: datetime | None  # the earliest deferred recipient, when none is due now


async def due_recipients(session: AsyncSession, campaign_id: uuid.UUID, limit: int) -> Due:
    now = utc_now()
    queued = and_(
        col(CampaignRecipient.campaign_id) == campaign_id,
        col(CampaignRecipient.status) == RecipientStatus.QUEUED,
    )
    ready = or_(
        col(CampaignRecipient.not_before).is_(None), col(CampaignRecipient.not_before) <= now
    )
    query = select(col(CampaignRecipient.id)).where(queued, ready)
    ids = list(
        (await session.execute(query.order_by(col(CampaignRecipient.id)).limit(limit))).scalars()
    )
    later = None
    if not ids:
        later = (
            await session.execute(select(func.min(col(CampaignRecipient.not_before))).where(queued))
        ).scalar_one()
    return Due([i for i in ids if i is not None], later)


async def tier_room(
    session: AsyncSession, instance: WhatsAppInstance, window: timedelta
) -> tuple[int | None, datetime | None]:
    """Recipients the number's messaging tier still allows in the rolling window (None: no
    tier set), and when the window's oldest send leaves it."""
    tier = (instance.settings or {}).get("messaging_tier")
    if not isinstance(tier, int) or tier <= 0:
        return None, None
    since = utc_now() - window
    query = (
        select(
            func.count(func.distinct(col(CampaignRecipient.contact_id))),
            func.min(col(CampaignRecipient.sent_at)),
        )
        .join(Campaign, col(Campaign.id) == col(CampaignRecipient.campaign_id))
        .where(col(Campaign.instance_id) == instance.id, col(CampaignRecipient.sent_at) > since)
    )
    used, oldest = (await session.execute(query)).one()
    reopens = oldest + window if oldest is not None else None
    return max(tier - used, 0), reopens


OUTSIDE_HOURS = "outside business hours"


async def hours_wait(session: AsyncSession, campaign: Campaign) -> float:
    """Seconds until the company's business hours open, for a campaign that sends only inside
    them (0: open now, or it sends at any hour); the wait is the campaign's status reason."""
    if not campaign.business_hours_only:
        return 0.0
    company = await session.get(Company, campaign.company_id)
    assert company is not None
    now = utc_now()
    opening = business_hours.next_opening(now, company.timezone, company.business_hours)
    reason = OUTSIDE_HOURS if opening > now else None
    if campaign.status_reason in (None, OUTSIDE_HOURS) and campaign.status_reason != reason:
        campaign.status_reason = reason
        await session.flush()
        await announce(session, campaign)
    return (opening - now).total_seconds()


@dataclass(frozen=True)
class Prepared:
    recipient_id: int
    message_id: uuid.UUID | None  # None: nothing to send (excluded, failed, done before)
    job: messages.SendJob | None = None
    outcome: str | None = None  # why nothing is sent: already_sent, delivery_unknown, ...


async def prepare(
    session: AsyncSession, campaign: Campaign, template: Template | None, recipient_id: int
) -> Prepared:
    """Queue the recipient's message (found again by its client id) and claim it for sending."""
    now = select(col(Campaign.status)).where(col(Campaign.id) == campaign.id)
    if (await session.execute(now)).scalar_one() in STOPPED:  # paused or cancelled meanwhile
        return Prepared(recipient_id, None, outcome="stopped")
    recipient = await session.get(CampaignRecipient, recipient_id, with_for_update=True)
    assert recipient is not None
    if recipient.status != RecipientStatus.QUEUED:
        return Prepared(recipient_id, None, outcome="not_queued")
    if await session.get(OptOut, recipient.contact_id) is not None:
        _finish_recipient(recipient, RecipientStatus.EXCLUDED, "opted_out")
        return Prepared(recipient_id, None, outcome="opted_out")
    if recipient.message_id is None:
        contact = await session.get(Contact, recipient.contact_id)
        address = await _address(session, contact) if contact is not None else None
        if contact is None or address is None:
            _finish_recipient(recipient, RecipientStatus.EXCLUDED, "no_phone")
            return Prepared(recipient_id, None, outcome="no_phone")
        try:
            content = content_for(campaign, template, contact)
        except Unprocessable as exc:
            _finish_recipient(recipient, RecipientStatus.FAILED, exc.message)
            return Prepared(recipient_id, None, outcome="parameters")
        conversation = await _conversation(session, campaign, contact, address)
        message, _ = await queue_outbound(
            session, conversation, content, sent_by=MessageSender.CAMPAIGN,
            client_id=client_id(campaign.id, contact.id), via_relay=False,
        )  # fmt: skip
        recipient.message_id = message.id
    recipient.attempts += 1
    await session.flush()
    try:
        job = await messages.claim(session, recipient.message_id)
    except messages.AlreadyDone as done:
        sent = str(done) != "failed"
        _finish_recipient(recipient, RecipientStatus.SENT if sent else RecipientStatus.FAILED,
                          None if sent else "failed before")  # fmt: skip
        return Prepared(recipient_id, None, outcome="already_done")
    except messages.DeliveryUnknown:
        return Prepared(recipient_id, recipient.message_id, outcome="delivery_unknown")
    return Prepared(recipient_id, recipient.message_id, job)


async def _address(session: AsyncSession, contact: Contact) -> str | None:
    """The chat to send to: the contact's phone, else its newest BSUID (the snapshot queued a
    BSUID-only contact only where the number sends to one)."""
    if contact.phone_number:
        return jids.jid_from_phone(contact.phone_number)
    query = (
        select(col(ContactIdentity.value))
        .where(
            col(ContactIdentity.contact_id) == contact.id,
            col(ContactIdentity.kind) == IdentityKind.BSUID,
        )
        .order_by(col(ContactIdentity.created_at).desc())
        .limit(1)
    )
    bsuid = (await session.execute(query)).scalar_one_or_none()
    return jids.jid_from_bsuid(bsuid) if bsuid else None


async def _conversation(
    session: AsyncSession, campaign: Campaign, contact: Contact, remote_jid: str
) -> Conversation:
    ref = ConversationRef(str(campaign.company_id), str(campaign.instance_id), remote_jid)
    conversation_id = await upsert_conversation(
        session, campaign.company_id, campaign.instance_id, remote_jid, contact.id, ref.workflow_id
    )
    conversation = await session.get(Conversation, conversation_id)
    assert conversation is not None
    return conversation


def _finish_recipient(
    recipient: CampaignRecipient, status: RecipientStatus, reason: str | None
) -> None:
    recipient.status = status
    recipient.reason = reason
    if status == RecipientStatus.SENT:
        recipient.sent_at = utc_now()


async def record_outcome(
    session: AsyncSession,
    recipient_id: int,
    status: RecipientStatus | None,
    reason: str | None = None,
    defer_until: datetime | None = None,
) -> None:
    """The recipient's send went (``SENT``), failed for good (``FAILED`` with the reason), or is
    deferred (``defer_until``); None and no deferral: left queued for the next batch."""
    recipient = await session.get(CampaignRecipient, recipient_id, with_for_update=True)
    assert recipient is not None
    if status is not None:
        _finish_recipient(recipient, status, reason)
    if defer_until is not None:
        recipient.not_before = defer_until
        recipient.reason = reason
    await session.flush()
