"""Opt-outs: a contact who asked not to receive broadcasts (through the API, by writing one
of the company's keywords, such as SAIR, PARAR or STOP, which is answered with a confirmation, or
by stopping the business's marketing messages in WhatsApp itself: Meta's ``user_preferences``
webhook, source ``whatsapp``). An opted-out contact is never in a campaign's audience; a
recipient who opts out after the snapshot is excluded when its turn comes."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, exists
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.cache import Cache
from zapflow.models import Company, Contact, Conversation, MessageSender, OptOut
from zapflow.services.company_settings import cached_company_in
from zapflow.services.contacts import forget_contacts
from zapflow.services.events import Event, stage
from zapflow.services.identities import Identity, resolve_contact
from zapflow.services.messages import OutboundContent, queue_outbound
from zapflow.services.queries import get_scoped
from zapflow.whatsapp.types import InboundMessage, PreferenceUpdate

PREFERENCE_SOURCE = "whatsapp"  # the user's own setting in WhatsApp (Meta's user_preferences)
DEFAULT_KEYWORDS = ("SAIR", "PARAR", "STOP", "CANCELAR", "DESCADASTRAR")
KEYWORD_MAX = 40  # longer messages are conversation, not an opt-out keyword
DEFAULT_CONFIRMATION = (
    "Pronto, você não receberá mais nossas campanhas. Se mudar de ideia, é só nos escrever."
)


def opted_out(contact_id: Any = Contact.id) -> ColumnElement[bool]:
    """The SQL condition "this contact opted out" (``contact_id``: the column naming it), the
    one every audience count, snapshot and send uses."""
    return exists().where(col(OptOut.contact_id) == contact_id)


def _folded(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.strip().strip(".!").upper())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def keywords_of(setting: object) -> set[str]:
    """The folded keywords of a company's ``opt_out_keywords`` setting (the defaults when unset)."""
    words = setting if isinstance(setting, list) and setting else DEFAULT_KEYWORDS
    return {_folded(str(w)) for w in words if str(w).strip()}


async def opt_out(
    session: AsyncSession, company_id: uuid.UUID, contact_id: uuid.UUID, source: str,
    reason: str | None = None,
) -> bool:  # fmt: skip
    """Record the opt-out (True if new; an earlier one is kept as it was)."""
    await get_scoped(session, Contact, company_id, contact_id)
    statement = (
        insert(OptOut)
        .values(contact_id=contact_id, company_id=company_id, source=source, reason=reason)
        .on_conflict_do_nothing(index_elements=["contact_id"])
        .returning(col(OptOut.contact_id))
    )
    created = (await session.execute(statement)).first() is not None
    if created:
        data = {"contact_id": str(contact_id), "source": source, "reason": reason}
        await stage(session, [Event("contact.opted_out", company_id, data)])
    return created


async def opt_in(session: AsyncSession, company_id: uuid.UUID, contact_id: uuid.UUID) -> None:
    await get_scoped(session, Contact, company_id, contact_id)
    await session.execute(
        delete(OptOut).where(
            col(OptOut.contact_id) == contact_id, col(OptOut.company_id) == company_id
        )
    )


async def get_opt_out(
    session: AsyncSession, company_id: uuid.UUID, contact_id: uuid.UUID
) -> OptOut | None:
    await get_scoped(session, Contact, company_id, contact_id)
    return await session.get(OptOut, contact_id)


async def opt_out_by_keyword(
    session: AsyncSession,
    cache: Cache,
    company_id: uuid.UUID,
    conversation_id: uuid.UUID,
    messages: Sequence[InboundMessage],
) -> bool:
    """A customer's message that is only an opt-out keyword opts the contact out and queues the
    confirmation (once per message: its client id is the message's)."""
    # a keyword is a short message, checked against the cached company: no query unless said
    texts = [m for m in messages if not m.from_me and m.body and len(m.body) <= KEYWORD_MAX]
    if not texts:
        return False
    company_settings = (await cached_company_in(session, cache, company_id))["settings"] or {}
    words = keywords_of(company_settings.get("opt_out_keywords"))
    said = next((m for m in texts if _folded(m.body or "") in words), None)
    if said is None:
        return False
    conversation = await session.get(Conversation, conversation_id)
    assert conversation is not None
    company = await session.get(Company, conversation.company_id)
    assert company is not None
    created = await opt_out(
        session, company.id, conversation.contact_id, "keyword", _folded(said.body or "")
    )
    if created:
        confirmation = (company.settings or {}).get("opt_out_confirmation") or DEFAULT_CONFIRMATION
        await queue_outbound(
            session,
            conversation,
            OutboundContent(type="text", text=str(confirmation)[:4096]),
            sent_by=MessageSender.CAMPAIGN,
            client_id=f"optout:{said.key_id}",
        )
    return created


async def apply_preference(
    session: AsyncSession, company_id: uuid.UUID, event: PreferenceUpdate
) -> None:
    """Meta's marketing preference: ``stop`` opts the contact out (source ``whatsapp``, Meta's
    detail as the reason); ``resume`` lifts an opt-out that came from it only (one by keyword
    or by an operator stays). The contact is found by its identities, BSUID first, and created
    when none has them, so the preference already holds when the person first writes."""
    if event.category != "marketing_messages" or event.value not in ("stop", "resume"):
        return
    identity = Identity(
        phone=event.phone, lid=None, aliases=(), name=event.name, user_id=event.user_id
    )
    contact = await resolve_contact(session, company_id, identity)
    if contact.changed:
        forget_contacts(session, [contact.id])
    if event.value == "stop":
        reason = event.detail or "stopped marketing messages in WhatsApp"
        await opt_out(session, company_id, contact.id, PREFERENCE_SOURCE, reason)
        return
    await session.execute(
        delete(OptOut).where(
            col(OptOut.contact_id) == contact.id,
            col(OptOut.company_id) == company_id,
            col(OptOut.source) == PREFERENCE_SOURCE,
        )
    )
