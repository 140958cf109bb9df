"""Broadcast campaigns: creation (audience as ``GET /contacts`` filters it, a template with
per-recipient parameters from contact fields, or text for Evolution), the audience snapshot, the
sending of one recipient through the idempotent send path, pacing facts (the number's messaging
tier), pause/resume/cancel and the stats.

Each recipient's message is queued with ``client_id=campaign:<campaign>:<contact>`` in its
conversation and claimed (``pending`` → ``sending``) before the provider is called, like every
message: a batch retried after a crash finds the message it queued, sent or not, and a claim
left ``sending`` by a killed worker fails as ``delivery_unknown`` instead of sending twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.db import after_commit
from zapflow.errors import Conflict, Unprocessable
from zapflow.models import (
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    Contact,
    Conversation,
    Message,
    MessageSender,
    OptOut,
    RecipientStatus,
    Template,
    WhatsAppInstance,
    WhatsAppProvider,
    utc_now,
)
from zapflow.services import messages, templates
from zapflow.services.contacts import ContactFilter, filtered
from zapflow.services.conversations import upsert_conversation
from zapflow.services.deals import scoped_reference
from zapflow.services.events import Event, stage
from zapflow.services.messages import OutboundContent, queue_outbound
from zapflow.services.queries import get_scoped
from zapflow.whatsapp import jid as jids
from zapflow.workflows.inputs import ConversationRef

FINISHED = {CampaignStatus.COMPLETED, CampaignStatus.CANCELLED}
STOPPED = {CampaignStatus.PAUSED, CampaignStatus.CANCELLED}
CONTACT_FIELDS = ("name", "phone_number", "email")
TIERS = (250, 1_000, 2_000, 10_000, 100_000)  # Meta's messaging tiers; none set: unlimited


def client_id(campaign_id: uuid.UUID, contact_id: uuid.UUID) -> str:
    return f"campaign:{campaign_id}:{contact_id}"


# --- what each recipient gets ----------------------------------------------------------------


def resolve(source: Any, contact: Contact | None, where: str) -> str | None:
    """A parameter's value for ``contact``: ``{"value": ...}``, or ``{"field": "name" |
    "phone_number" | "email" | "custom_fields.<key>", "fallback": ...}``; None when the contact
    has no value and there is no fallback. Without a contact (checking a campaign), a field
    reads as a sample."""
    if not isinstance(source, dict):
        raise Unprocessable(
            f"{where}: give {{'field': ...}} or {{'value': ...}}", details={"field": where}
        )
    if "value" in source:
        return str(source["value"])
    name = source.get("field")
    if not isinstance(name, str) or not (
        name in CONTACT_FIELDS or name.startswith("custom_fields.")
    ):
        raise Unprocessable(
            f"{where}.field: one of name, phone_number, email, custom_fields.<key>",
            details={"field": f"{where}.field"},
        )
    fallback = source.get("fallback")
    if contact is None:
        return "sample"
    if name.startswith("custom_fields."):
        value = (contact.custom_fields or {}).get(name.removeprefix("custom_fields."))
    else:
        value = getattr(contact, name)
    found = str(value).strip() if value not in (None, "") else ""
    return found or (str(fallback) if fallback not in (None, "") else None)


def parameter_values(
    parameters: dict[str, Any], contact: Contact | None, where: str = "message.parameters"
) -> dict[str, Any]:
    """The template values (as ``templates.components_for`` takes them) for ``contact``; a
    missing value (no fallback) is a 422 naming the parameter."""

    def one(source: Any, at: str) -> str:
        value = resolve(source, contact, at)
        if value is None:
            problem = f"the contact has no {source.get('field')} and there is no fallback"
            raise Unprocessable(f"{at}: {problem}", details={"field": at})
        return value

    values: dict[str, Any] = {}
    for part, given in parameters.items():
        at = f"{where}.{part}"
        if part == "header":
            values[part] = one(given, at)
        elif isinstance(given, list):
            values[part] = [one(s, f"{at}.{i + 1}") for i, s in enumerate(given)]
        elif isinstance(given, dict):
            values[part] = {k: one(s, f"{at}.{k}") for k, s in given.items()}
        else:
            raise Unprocessable(f"{at}: a list or an object of parameters", details={"field": at})
    return values


def render_text(text: str, contact: Contact) -> str:
    """A text message's ``{{name}}``-style fields filled from the contact (empty if absent)."""

    def field(match: Any) -> str:
        return resolve({"field": match.group(1), "fallback": ""}, contact, "message.text") or ""

    return templates.PLACEHOLDER.sub(field, text)


def content_for(campaign: Campaign, template: Template | None, contact: Contact) -> OutboundContent:
    message = campaign.message
    if template is None:
        return OutboundContent(type="text", text=render_text(str(message["text"]), contact))
    values = parameter_values(message.get("parameters") or {}, contact)
    components = templates.components_for(template, values)
    spec = {"name": template.name, "language": template.language, "components": components}
    return OutboundContent(type="template", template=spec)


# --- creating ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewCampaign:
    name: str
    instance_id: uuid.UUID
    audience: ContactFilter
    message: dict[str, Any]  # {"template": {name, language}, "parameters": {...}} | {"text"}
    scheduled_at: datetime | None
    throughput: int | None


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


def instance_throughput(instance: WhatsAppInstance) -> int:
    found = (instance.settings or {}).get("throughput")
    return int(found) if isinstance(found, int) and 1 <= found <= 1000 else 80


async def create_campaign(
    session: AsyncSession,
    company_id: uuid.UUID,
    new: NewCampaign,
    user_id: uuid.UUID | None,
    start: Callable[[Campaign], Any],
) -> Campaign:
    """Checks the template and the parameters' sources, stores the campaign, and has ``start``
    (its workflow's start) run after the commit."""
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
        throughput=min(new.throughput or instance_throughput(instance), 1000),
        created_by_user_id=user_id,
    )
    session.add(campaign)
    await session.flush()
    campaign.workflow_id = f"campaign/{company_id}/{campaign.id}"
    await session.flush()
    await stage(session, [campaign_event(campaign)])
    after_commit(session, lambda: start(campaign))
    return campaign


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


def campaign_event(campaign: Campaign, counts: dict[str, int] | None = None) -> Event:
    data = {
        "id": str(campaign.id),
        "status": campaign.status.value,
        "status_reason": campaign.status_reason,
        "counts": counts,
    }
    return Event("campaign.progress", campaign.company_id, data)


async def count_audience(
    session: AsyncSession, company_id: uuid.UUID, where: ContactFilter
) -> dict[str, int]:
    """How many contacts the filter finds, and how many of them would be excluded (why)."""
    opted = select(col(OptOut.contact_id)).where(col(OptOut.contact_id) == col(Contact.id))
    query = filtered(
        company_id,
        where,
        func.count(),
        func.count().filter(opted.exists()),
        func.count().filter(col(Contact.phone_number).is_(None)),
    )
    total, opted_out, no_phone = (await session.execute(query)).one()
    return {"contacts": total, "opted_out": opted_out, "no_phone": no_phone}


# --- the snapshot and the sending ------------------------------------------------------------


async def snapshot(session: AsyncSession, campaign_id: uuid.UUID) -> int:
    """The audience as it is now, once (a retried call finds it taken): queued recipients in
    the contacts' order, and the excluded ones with their reason."""
    campaign = await session.get(Campaign, campaign_id, with_for_update=True)
    assert campaign is not None
    if campaign.started_at is not None:
        return 0
    opted = select(col(OptOut.contact_id)).where(col(OptOut.contact_id) == col(Contact.id))
    reason = case(
        (opted.exists(), literal("opted_out")),
        (col(Contact.phone_number).is_(None), literal("no_phone")),
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
    campaign.status = CampaignStatus.RUNNING
    await session.flush()
    await stage(session, [campaign_event(campaign)])
    return int(getattr(result, "rowcount", 0) or 0)


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
        if contact is None or not contact.phone_number:
            _finish_recipient(recipient, RecipientStatus.EXCLUDED, "no_phone")
            return Prepared(recipient_id, None, outcome="no_phone")
        try:
            content = content_for(campaign, template, contact)
        except Unprocessable as exc:
            _finish_recipient(recipient, RecipientStatus.FAILED, exc.message)
            return Prepared(recipient_id, None, outcome="parameters")
        conversation = await _conversation(session, campaign, contact)
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


async def _conversation(
    session: AsyncSession, campaign: Campaign, contact: Contact
) -> Conversation:
    assert contact.phone_number is not None
    remote_jid = jids.jid_from_phone(contact.phone_number)
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
    if campaign.finished_at is None:
        if campaign.status != CampaignStatus.CANCELLED:
            campaign.status = CampaignStatus.CANCELLED if cancelled else CampaignStatus.COMPLETED
        campaign.finished_at = utc_now()
    await session.flush()
    await announce(session, campaign)


# --- control and reading -----------------------------------------------------------------

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
