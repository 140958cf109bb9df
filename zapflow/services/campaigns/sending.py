"""Sending a campaign: which recipients are due, the room the number's messaging tier leaves,
the wait for business hours, and the recipients' messages queued, claimed and recorded a chunk
at a time through the idempotent send path.

Each recipient's message is queued with ``client_id=campaign:<campaign>:<contact>`` in its
conversation and claimed (``pending`` → ``sending``) before the provider is called, like every
message: a batch retried after a crash finds the message it queued, sent or not, and a claim
left ``sending`` by a killed worker fails as ``delivery_unknown`` instead of sending twice."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
    IdentityKind,
    Message,
    MessageSender,
    MessageStatus,
    RecipientStatus,
    Template,
    WhatsAppInstance,
    utc_now,
)
from zapflow.services import business_hours, messages
from zapflow.services.campaigns.content import content_for
from zapflow.services.campaigns.definition import campaign_template
from zapflow.services.campaigns.progress import STOPPED, announce
from zapflow.services.conversations import (
    ConversationKey,
    message_created,
    refresh_previews,
    upsert_conversations,
)
from zapflow.services.events import stage
from zapflow.services.messages import OutboundContent
from zapflow.services.opt_outs import opted_out
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
    outcome: str | None = None  # why nothing is sent: already_done, delivery_unknown, ...


async def claim(
    session: AsyncSession, campaign: Campaign, recipient_ids: list[int]
) -> list[Prepared]:
    """Claim a chunk of recipients' messages (queued by ``queue_messages``) for sending, in one
    statement, unless the campaign stopped or a contact opted out meanwhile."""
    now = select(col(Campaign.status)).where(col(Campaign.id) == campaign.id)
    if (await session.execute(now)).scalar_one() in STOPPED:  # paused or cancelled meanwhile
        return [Prepared(r, None, outcome="stopped") for r in recipient_ids]
    query = (
        select(CampaignRecipient, opted_out(col(CampaignRecipient.contact_id)))
        .where(col(CampaignRecipient.id).in_(recipient_ids))
        .order_by(col(CampaignRecipient.id))
        .with_for_update(of=CampaignRecipient)
    )
    prepared: dict[int, Prepared] = {}
    claimable: dict[uuid.UUID, CampaignRecipient] = {}
    for recipient, opted in (await session.execute(query)).all():
        assert recipient.id is not None
        if recipient.status != RecipientStatus.QUEUED or recipient.message_id is None:
            prepared[recipient.id] = Prepared(recipient.id, None, outcome="not_queued")
        elif opted:
            _finish_recipient(recipient, RecipientStatus.EXCLUDED, "opted_out")
            prepared[recipient.id] = Prepared(recipient.id, None, outcome="opted_out")
        else:
            recipient.attempts += 1
            claimable[recipient.message_id] = recipient
    jobs = await messages.claim_many(session, list(claimable))
    for message_id, recipient in claimable.items():
        assert recipient.id is not None
        prepared[recipient.id] = _claimed(recipient, message_id, jobs[message_id])
    await session.flush()
    return [prepared[r] for r in recipient_ids if r in prepared]


def _claimed(
    recipient: CampaignRecipient,
    message_id: uuid.UUID,
    job: messages.SendJob | MessageStatus,
) -> Prepared:
    assert recipient.id is not None
    if isinstance(job, messages.SendJob):
        return Prepared(recipient.id, message_id, job)
    if job == MessageStatus.SENDING:  # an attempt died while the provider answered
        return Prepared(recipient.id, message_id, outcome="delivery_unknown")
    sent = job != MessageStatus.FAILED  # sent (or failed) before: recorded, not sent again
    _finish_recipient(recipient, RecipientStatus.SENT if sent else RecipientStatus.FAILED,
                      None if sent else "failed before")  # fmt: skip
    return Prepared(recipient.id, None, outcome="already_done")


async def queue_messages(
    session: AsyncSession,
    campaign: Campaign,
    template: Template | None,
    instance: WhatsAppInstance,
    recipient_ids: list[int],
) -> None:
    """The batch's recipients not queued yet get their messages in bulk (a statement per kind,
    not per recipient): read with their contact, opt-out and BSUID, each conversation upserted,
    the messages inserted ``pending`` with ``client_id=campaign:<campaign>:<contact>``, and their
    ids recorded on the recipients, all in this transaction (so a retried batch finds them).
    An opted-out or unaddressable contact is excluded, a parameter it cannot fill fails it."""
    bsuid = (
        select(col(ContactIdentity.value))
        .where(
            col(ContactIdentity.contact_id) == col(Contact.id),
            col(ContactIdentity.kind) == IdentityKind.BSUID,
        )
        .order_by(col(ContactIdentity.created_at).desc())
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(CampaignRecipient, Contact, opted_out(), bsuid)
        .join(Contact, col(Contact.id) == col(CampaignRecipient.contact_id))
        .where(
            col(CampaignRecipient.id).in_(recipient_ids),
            col(CampaignRecipient.status) == RecipientStatus.QUEUED,
            col(CampaignRecipient.message_id).is_(None),
        )
        .with_for_update(of=CampaignRecipient)
    )
    ready: dict[str, tuple[CampaignRecipient, Contact, OutboundContent]] = {}
    for recipient, contact, opted, found in (await session.execute(query)).all():
        address = _address(contact, found)
        if opted or address is None:
            _finish_recipient(recipient, RecipientStatus.EXCLUDED,
                              "opted_out" if opted else "no_phone")  # fmt: skip
            continue
        try:
            ready[address] = (recipient, contact, content_for(campaign, template, contact))
        except Unprocessable as exc:
            _finish_recipient(recipient, RecipientStatus.FAILED, exc.message)
    if ready:
        await _queue(session, campaign, instance, ready)
    await session.flush()


async def _queue(
    session: AsyncSession,
    campaign: Campaign,
    instance: WhatsAppInstance,
    ready: dict[str, tuple[CampaignRecipient, Contact, OutboundContent]],
) -> None:
    company, number = str(campaign.company_id), str(campaign.instance_id)
    keys = [
        ConversationKey(campaign.company_id, campaign.instance_id, jid, contact.id,
                        ConversationRef(company, number, jid).workflow_id)
        for jid, (_, contact, _) in ready.items()
    ]  # fmt: skip
    upserted = await upsert_conversations(session, keys)
    conversations = {key.remote_jid: row.id for key, row in zip(keys, upserted, strict=True)}
    queued = [
        (conversations[jid], client_id(campaign.id, contact.id), content)
        for jid, (_, contact, content) in ready.items()
    ]
    rows = await messages.queue_many(session, instance, queued, MessageSender.CAMPAIGN)
    for (recipient, _, _), message in zip(ready.values(), rows, strict=True):
        recipient.message_id = message.id


async def refresh_queued(session: AsyncSession, campaign: Campaign) -> None:
    """The messages queued for recipients not sent yet and never claimed (``pending``: queued
    ahead of a pause, or released) rewritten with the campaign's message as it is now, so an
    edit made while paused applies to them at the resume, and announced again
    (``message.created`` with the same id: an open conversation shows the new content in its
    place), with the preview of each conversation it is still the latest message of. A
    contact the new message cannot fill fails, as queueing it would; a template unusable now
    is left to the next batch (which pauses the campaign with the reason)."""
    instance = await session.get(WhatsAppInstance, campaign.instance_id)
    assert instance is not None
    try:
        template = await campaign_template(session, instance, campaign.message)
    except Unprocessable:
        return
    query = (
        select(CampaignRecipient, Contact, Message)
        .join(Contact, col(Contact.id) == col(CampaignRecipient.contact_id))
        .join(Message, col(Message.id) == col(CampaignRecipient.message_id))
        .where(
            col(CampaignRecipient.campaign_id) == campaign.id,
            col(CampaignRecipient.status) == RecipientStatus.QUEUED,
            col(Message.status) == MessageStatus.PENDING,
        )
        .with_for_update(of=Message)
    )
    rewritten = []
    for recipient, contact, message in (await session.execute(query)).all():
        try:
            messages.refill(message, instance, content_for(campaign, template, contact))
            rewritten.append(message)
        except Unprocessable as exc:
            await messages.record_failed(session, message.id, {"message": exc.message}, 0)
            _finish_recipient(recipient, RecipientStatus.FAILED, exc.message)
    await stage(session, [message_created(m) for m in rewritten])
    await refresh_previews(session, rewritten)


def _address(contact: Contact, bsuid: str | None) -> str | None:
    """The chat to send to: the contact's phone, else its newest BSUID (the snapshot queued a
    BSUID-only contact only where the number sends to one)."""
    if contact.phone_number:
        return jids.jid_from_phone(contact.phone_number)
    return jids.jid_from_bsuid(bsuid) if bsuid else None


def _finish_recipient(
    recipient: CampaignRecipient, status: RecipientStatus, reason: str | None
) -> None:
    recipient.status = status
    recipient.reason = reason
    if status == RecipientStatus.SENT:
        recipient.sent_at = utc_now()


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed send: ``sent`` (the provider's id), ``failed`` for good (the
    error), ``deferred`` (until ``defer_until``), or ``released``: refused for now, or never
    tried (the batch halted), back to ``pending`` for a later batch."""

    prepared: Prepared
    kind: str
    provider_id: str | None = None
    error: dict[str, Any] | None = None
    defer_until: datetime | None = None


RECORDED = {"sent", "failed", "deferred", "released"}


async def record(session: AsyncSession, outcomes: list[Outcome]) -> None:
    """A chunk's sends recorded in one transaction: the messages and their recipients."""
    outcomes = [o for o in outcomes if o.kind in RECORDED and o.prepared.message_id is not None]
    sent = {
        o.prepared.message_id: o.provider_id or ""
        for o in outcomes
        if o.kind == "sent" and o.prepared.message_id is not None
    }
    if sent:
        await messages.record_sent_many(session, sent)
    query = (
        select(CampaignRecipient)
        .where(col(CampaignRecipient.id).in_([o.prepared.recipient_id for o in outcomes]))
        .order_by(col(CampaignRecipient.id))
        .with_for_update()
    )
    recipients = {r.id: r for r in await session.scalars(query)}
    for outcome in outcomes:
        recipient, message_id = (
            recipients[outcome.prepared.recipient_id],
            outcome.prepared.message_id,
        )
        assert message_id is not None
        if outcome.kind == "sent":
            _finish_recipient(recipient, RecipientStatus.SENT, None)
        elif outcome.kind == "failed":
            error = outcome.error or {}
            await messages.record_failed(session, message_id, error, attempts=1)
            _finish_recipient(recipient, RecipientStatus.FAILED, _failure_reason(error))
        else:
            await messages.release(session, message_id, outcome.error)
            if outcome.defer_until is not None:
                recipient.not_before = outcome.defer_until
                recipient.reason = f"deferred: {(outcome.error or {}).get('message')}"
    await session.flush()


def _failure_reason(error: dict[str, Any]) -> str:
    """A failed recipient's reason: the provider's code and message."""
    if error.get("code"):
        return f"{error.get('code')}: {error.get('message')}"
    return str(error.get("message"))
