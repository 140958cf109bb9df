"""A campaign's audience before it is sent: the preview (how many contacts it reaches, who is
left out and why, a sample with the message each would get) and the cost estimate (recipients
by Meta's pricing category, inside or outside WhatsApp's 24-hour window), both read-only; and a
CSV audience (the file's contacts created or updated, and tagged with the list's tag, which the
campaign's audience then names).

The estimate counts, it charges nothing and quotes no price (Meta's rates vary by the
recipient's country and change): Meta bills marketing and authentication templates on every
delivery, utility templates only outside the customer's 24-hour window, and free-form
(service) messages not at all, which may only go inside that window.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.errors import PayloadTooLarge, Unprocessable
from zapflow.models import (
    Campaign,
    CampaignRecipient,
    Contact,
    Conversation,
    RecipientStatus,
    Template,
    WhatsAppInstance,
    WhatsAppProvider,
    utc_now,
)
from zapflow.schemas.contacts import ImportReport, normalize_tag
from zapflow.services import campaigns, contact_csv, templates
from zapflow.services.campaigns.definition import campaign_template
from zapflow.services.contacts import ContactFilter, filtered
from zapflow.services.opt_outs import opted_out

SERVICE_WINDOW = timedelta(hours=24)
MAX_SAMPLE = 10
# A CSV audience is at most this many lines (a record per line, but a quoted cell may hold line
# breaks, so the bound is on lines): counted before any row is imported.
MAX_AUDIENCE_LINES = 100_001
CSV_TAG_PREFIX = "csv-"


# --- who it reaches --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reach:
    contacts: int  # the filter's contacts
    opted_out: int  # left out: they opted out
    no_phone: int  # left out: nothing to send to, no phone (nor a BSUID the number can use)
    inside_window: int  # of the recipients, inside the 24-hour window on the instance

    @property
    def recipients(self) -> int:
        return self.contacts - self.opted_out - self.no_phone

    @property
    def excluded(self) -> dict[str, int]:
        return {"opted_out": self.opted_out, "no_phone": self.no_phone}


def _in_window(instance_id: uuid.UUID) -> ColumnElement[bool]:
    """The customer wrote to this number in the last 24 hours (Meta's service window)."""
    return exists().where(
        col(Conversation.contact_id) == col(Contact.id),
        col(Conversation.instance_id) == instance_id,
        col(Conversation.last_inbound_at) > utc_now() - SERVICE_WINDOW,
    )


def _reachable(by_bsuid: bool) -> ColumnElement[bool]:
    """Who a snapshot queues (services/campaigns.snapshot excludes the others, same order)."""
    return and_(~opted_out(), campaigns.addressable(by_bsuid))


async def reach(
    session: AsyncSession,
    company_id: uuid.UUID,
    where: ContactFilter,
    instance_id: uuid.UUID,
    by_bsuid: bool,
) -> Reach:
    """One count over the filter's contacts: the left out by reason, and the window."""
    query = filtered(
        company_id,
        where,
        *campaigns.audience_counts(by_bsuid),
        func.count().filter(and_(_reachable(by_bsuid), _in_window(instance_id))),
    )
    contacts, opted_out, no_phone, inside = (await session.execute(query)).one()
    return Reach(contacts, opted_out, no_phone, inside)


async def recipients_reach(session: AsyncSession, campaign: Campaign) -> Reach:
    """A started campaign's snapshot: its recipients not excluded, and the window now."""
    recipient = and_(
        col(CampaignRecipient.contact_id) == col(Contact.id),
        col(CampaignRecipient.campaign_id) == campaign.id,
    )
    query = select(
        func.count(),
        func.count().filter(col(CampaignRecipient.reason) == "opted_out"),
        func.count().filter(col(CampaignRecipient.reason) == "no_phone"),
        func.count().filter(
            and_(
                col(CampaignRecipient.status) != RecipientStatus.EXCLUDED,
                _in_window(campaign.instance_id),
            )
        ),
    ).where(recipient)
    contacts, opted_out, no_phone, inside = (await session.execute(query)).one()
    return Reach(contacts, opted_out, no_phone, inside)


def sample_query(
    company_id: uuid.UUID, where: ContactFilter, limit: int, by_bsuid: bool
) -> Select[Any]:
    """The first recipients in sending order (the snapshot's order)."""
    return (
        filtered(company_id, where)
        .where(_reachable(by_bsuid))
        .order_by(col(Contact.created_at), col(Contact.id))
        .limit(min(limit, MAX_SAMPLE))
    )


# --- what they get ---------------------------------------------------------------------------


async def message_template(
    session: AsyncSession, instance: WhatsAppInstance, message: dict[str, Any]
) -> Template | None:
    """The campaign's template checked as creating the campaign checks it (None for a text)."""
    template = await campaign_template(session, instance, message)
    if template is not None:
        parameters = message.get("parameters") or {}
        templates.components_for(template, campaigns.parameter_values(parameters, None))
    return template


def rendered(message: dict[str, Any], template: Template | None, contact: Contact) -> str:
    """The message as ``contact`` would read it: the template's header, body and footer with
    the contact's values, or the text with its fields; a 422 naming a parameter it lacks."""
    if template is None:
        return campaigns.render_text(str(message["text"]), contact)
    values = campaigns.parameter_values(message.get("parameters") or {}, contact)
    named = templates.parameters_of(template).named
    parts = []
    for component in template.components:
        kind = str(component.get("type", "")).upper()
        text = str(component.get("text") or "")
        if kind not in ("HEADER", "BODY", "FOOTER") or not text:
            continue
        given = values.get(kind.lower())
        parts.append(_fill(text, given, named))
    return "\n\n".join(parts)


def _fill(text: str, given: Any, named: bool) -> str:
    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if isinstance(given, str):
            return given
        if isinstance(given, dict):
            return str(given.get(key, match.group(0)))
        if isinstance(given, list) and not named and key.isdecimal() and 0 < int(key) <= len(given):
            return str(given[int(key) - 1])
        return match.group(0)

    return templates.PLACEHOLDER.sub(one, text)


# --- what it costs ---------------------------------------------------------------------------

PRICING = {"MARKETING": "marketing", "UTILITY": "utility", "AUTHENTICATION": "authentication"}


def estimate(provider: WhatsAppProvider, template: Template | None, reach: Reach) -> dict[str, Any]:
    """The recipients by Meta's pricing category: what Meta bills, what is free (service), and
    what Meta would refuse (free-form text outside the window)."""
    inside = reach.inside_window
    outside = reach.recipients - inside
    counts = {"marketing": 0, "utility": 0, "authentication": 0, "service": 0}
    undeliverable = 0
    category = PRICING.get(template.category.upper(), "utility") if template else None
    if provider != WhatsAppProvider.CLOUD:
        note = "Evolution numbers are not Meta's Cloud API: Meta bills nothing for them"
    elif category is None:
        counts["service"] = inside
        undeliverable = outside
        note = "free-form text goes only inside the 24-hour window: the others need a template"
    elif category == "utility":
        counts["service"], counts["utility"] = inside, outside
        note = "utility templates inside the 24-hour window are free"
    else:
        counts[category] = reach.recipients
        note = f"{category} templates are billed inside the 24-hour window too"
    billable = counts["marketing"] + counts["utility"] + counts["authentication"]
    return {
        "pricing_category": category,
        "recipients": reach.recipients,
        "inside_window": inside,
        "outside_window": outside,
        "by_category": counts,
        "billable": billable,
        "free": counts["service"],
        "undeliverable": undeliverable,
        "note": note,
    }


async def campaign_estimate(session: AsyncSession, campaign: Campaign) -> dict[str, Any]:
    """A campaign's estimate: over its snapshot once started, else over its audience now."""
    instance = await session.get(WhatsAppInstance, campaign.instance_id)
    assert instance is not None  # the campaign's row cascades with its instance
    template = None
    if "template" in campaign.message:
        spec = campaign.message["template"]
        template = await templates.find_template(
            session, campaign.company_id, instance.id, spec["name"], spec.get("language"),
            "message.template",
        )  # fmt: skip
    if campaign.started_at is not None:
        found = await recipients_reach(session, campaign)
    else:
        where = campaigns.audience_filter(campaign.audience)
        by_bsuid = campaigns.sends_by_bsuid(instance, template)
        found = await reach(session, campaign.company_id, where, instance.id, by_bsuid)
    return estimate(instance.provider, template, found)


# --- a CSV audience ----------------------------------------------------------------------------


def _measure(spool: IO[bytes]) -> tuple[str, int]:
    """The file's SHA-256 and its number of lines, read once in chunks, then rewound."""
    digest = hashlib.sha256()
    lines = 0
    last = b""
    while chunk := spool.read(1024 * 1024):
        digest.update(chunk)
        lines += chunk.count(b"\n")
        last = chunk
    spool.seek(0)
    return digest.hexdigest(), lines + (1 if last and not last.endswith(b"\n") else 0)


def list_tag(name: str | None, digest: str) -> str:
    """The list's tag: the name given, else one from the file's content (the same file again
    is the same list)."""
    if name is None:
        return CSV_TAG_PREFIX + digest[:12]
    try:
        return normalize_tag(name)
    except ValueError as exc:
        raise Unprocessable(f"list: {exc}", details={"field": "list"}) from None


async def import_audience(
    session: AsyncSession, company_id: uuid.UUID, spool: IO[bytes], name: str | None
) -> tuple[str, ImportReport]:
    """The file's contacts created or updated (by phone, as the contacts import does) and
    tagged with the list's tag; bad rows are reported with their line and column, the good
    ones kept. Importing the same file again changes nothing more."""
    digest, lines = await asyncio.to_thread(_measure, spool)
    if lines > MAX_AUDIENCE_LINES:
        raise PayloadTooLarge(
            f"file: {lines} lines, over {MAX_AUDIENCE_LINES - 1} recipients: split it",
            details={"field": "file", "limit_rows": MAX_AUDIENCE_LINES - 1},
        )
    tag = list_tag(name, digest)
    report = await contact_csv.import_contacts(session, company_id, spool, "update", tag=tag)
    return tag, report
