"""Merging two contacts who are one person, and finding such pairs.

``merge_contacts`` moves everything of the merged contact to the survivor in the caller's
transaction: conversations (their messages with them), deals, notes, follow-ups, flow runs,
message embeddings and WhatsApp identities; two conversations on one number become one
(services/conversation_merge.py); tags are joined; fields both hold with different
values are conflicts, and the survivor's value wins unless the caller chose the merged one
(``take``). The merged contact is deleted; a ``contact_merges`` row keeps what it was, what moved
and how each conflict was settled. Each moved conversation's workflow is told through the inbox
(a ``followup`` event: it reloads its follow-ups, whose contact changed), never by a call to
Temporal from here. ``preview`` runs the same and rolls it back.

Duplicates (``find_duplicates``): the same name with the same last 8 digits of phone (a number
written with and without Brazil's ninth digit) or with one of them phoneless (a BSUID-only
contact), and a phone that is one contact's identity and another's column (a contact created by
the API or an import after the number reached the first one through its BSUID).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from zapflow.errors import NotFound, Unprocessable
from zapflow.models import (
    Contact,
    ContactIdentity,
    ContactMerge,
    Conversation,
    ConversationEmbedding,
    Deal,
    FlowRun,
    FollowUp,
    IdentityKind,
    Message,
    Note,
    WhatsAppInstance,
)
from zapflow.services.contacts import forget_contacts
from zapflow.services.conversation_merge import merge_split
from zapflow.services.inbox import store_followups_changed

# the fields compared between the two contacts; custom fields are compared key by key
FIELDS = ("name", "email", "phone_number", "lid")
# every table that references a contact, with the contact's company beside it
MOVED = tuple(
    model.__tablename__
    for model in (
        Conversation,
        Deal,
        Note,
        FollowUp,
        FlowRun,
        ConversationEmbedding,
        ContactIdentity,
    )
)


@dataclass
class MergeReport:
    survivor_id: uuid.UUID
    merged_id: uuid.UUID
    moved: dict[str, int]
    conflicts: list[dict[str, Any]]
    contact: dict[str, Any] = field(default_factory=dict)  # the survivor after the merge
    merge_id: uuid.UUID | None = None


async def merge_contacts(
    session: AsyncSession,
    company_id: uuid.UUID,
    survivor_id: uuid.UUID,
    merged_id: uuid.UUID,
    take: frozenset[str] = frozenset(),
    user_id: uuid.UUID | None = None,
) -> MergeReport:
    """Merge ``merged_id`` into ``survivor_id``; ``take`` names the fields (``email``,
    ``custom_fields.plan``) whose merged value wins a conflict."""
    if survivor_id == merged_id:
        raise Unprocessable("contact_id: a contact cannot be merged into itself")
    survivor, merged = await _lock_pair(session, company_id, survivor_id, merged_id)
    before = merged.model_dump(mode="json")
    conflicts, values = _settle(survivor, merged, take)
    moved = await _move(session, company_id, survivor_id, merged_id)
    # two chats of one person on one number (a phone's and a BSUID's) become the older one
    moved["conversations_merged"] = (await merge_split(session, company_id, survivor_id))[
        "conversations"
    ]
    await session.execute(delete(Contact).where(col(Contact.id) == merged_id))
    for name, value in values.items():
        setattr(survivor, name, value)
    survivor.tags = sorted({*survivor.tags, *merged.tags})
    await session.flush()
    record = ContactMerge(
        company_id=company_id, survivor_id=survivor_id, merged_id=merged_id,
        merged_contact=before, moved=moved, conflicts=conflicts, user_id=user_id,
    )  # fmt: skip
    session.add(record)
    await session.flush()
    await _tell_workflows(session, company_id, survivor_id, moved)
    forget_contacts(session, [survivor_id, merged_id])
    return MergeReport(
        survivor_id, merged_id, moved, conflicts, survivor.model_dump(mode="json"), record.id
    )


async def _lock_pair(
    session: AsyncSession, company_id: uuid.UUID, survivor_id: uuid.UUID, merged_id: uuid.UUID
) -> tuple[Contact, Contact]:
    """Both contacts, locked in id order (two merges of one pair cannot deadlock); another
    company's contact is a 404."""
    query = (
        select(Contact)
        .where(col(Contact.company_id) == company_id, col(Contact.id).in_([survivor_id, merged_id]))
        .order_by(col(Contact.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    found = {c.id: c for c in (await session.execute(query)).scalars()}
    if survivor_id not in found:
        raise NotFound("contact not found")
    if merged_id not in found:
        raise NotFound("contact_id: contact not found")
    return found[survivor_id], found[merged_id]


def _settle(
    survivor: Contact, merged: Contact, take: frozenset[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The conflicts (both hold different values) and the survivor's new values: its own,
    the merged one where it had none, or the merged one where the caller took it."""
    known = {*FIELDS, *(f"custom_fields.{k}" for k in merged.custom_fields)}
    if unknown := sorted(take - known):
        raise Unprocessable(f"take: no such field to take: {', '.join(unknown)}")
    conflicts: list[dict[str, Any]] = []
    values: dict[str, Any] = {}
    for name in FIELDS:
        mine, theirs = getattr(survivor, name), getattr(merged, name)
        if theirs in (None, "") or mine == theirs:
            continue
        if mine in (None, "") or name in take:
            values[name] = theirs
        if mine not in (None, ""):
            conflicts.append(_conflict(name, mine, theirs, name in take))
    custom = dict(survivor.custom_fields)
    for key, theirs in merged.custom_fields.items():
        mine = custom.get(key)
        chosen = f"custom_fields.{key}" in take
        if key in custom and mine != theirs:
            conflicts.append(_conflict(f"custom_fields.{key}", mine, theirs, chosen))
        if key not in custom or chosen:
            custom[key] = theirs
    values["custom_fields"] = custom
    if "phone_number" in values:
        values["wa_id"] = merged.wa_id
    return conflicts, values


def _conflict(name: str, mine: Any, theirs: Any, took: bool) -> dict[str, Any]:
    return {
        "field": name,
        "survivor": mine,
        "merged": theirs,
        "kept": "merged" if took else "survivor",
    }


async def _move(
    session: AsyncSession, company_id: uuid.UUID, survivor_id: uuid.UUID, merged_id: uuid.UUID
) -> dict[str, int]:
    moved: dict[str, int] = {}
    conversations = select(col(Conversation.id)).where(col(Conversation.contact_id) == merged_id)
    count_messages = select(func.count()).where(col(Message.conversation_id).in_(conversations))
    moved["messages"] = (await session.execute(count_messages)).scalar_one()
    for name in MOVED:
        table = SQLModel.metadata.tables[str(name)]
        statement = (
            update(table)
            .where(table.c.company_id == company_id, table.c.contact_id == merged_id)
            .values(contact_id=survivor_id)
        )
        result: Any = await session.execute(statement)
        moved[table.name] = result.rowcount
    return moved


async def _tell_workflows(
    session: AsyncSession, company_id: uuid.UUID, survivor_id: uuid.UUID, moved: dict[str, int]
) -> None:
    if not moved.get("conversations"):
        return
    query = (
        select(Conversation, WhatsAppInstance)
        .join(WhatsAppInstance, col(WhatsAppInstance.id) == col(Conversation.instance_id))
        .where(
            col(Conversation.contact_id) == survivor_id, col(Conversation.company_id) == company_id
        )
    )
    for conversation, instance in (await session.execute(query)).all():
        await store_followups_changed(session, instance, conversation.remote_jid)


async def merge_revealed(
    session: AsyncSession, company_id: uuid.UUID, phone_holder: uuid.UUID, bsuid_holder: uuid.UUID
) -> MergeReport | None:
    """Meta named a BSUID's phone in one message while two contacts hold them: the phone's
    (from before BSUIDs) and a phoneless one of that BSUID. They are one person (the phone
    would have found the first had the BSUID been new): merged into the phone's, recorded
    without a user. Not when the phone's contact has a BSUID of its own (two people, or a
    number change Meta tells apart)."""
    own_bsuid = select(func.count()).where(
        col(ContactIdentity.contact_id) == phone_holder,
        col(ContactIdentity.kind) == IdentityKind.BSUID,
    )
    if (await session.execute(own_bsuid)).scalar_one():
        return None
    try:
        return await merge_contacts(session, company_id, phone_holder, bsuid_holder)
    except NotFound:  # another message's persist merged them first
        return None


DUPLICATES = text(
    """
    SELECT a.id AS contact_id, b.id AS other_id,
           CASE WHEN a.phone_number IS NULL OR b.phone_number IS NULL THEN 'name_one_without_phone'
                ELSE 'name_and_phone_suffix' END AS reason
      FROM contacts a
      JOIN contacts b ON b.company_id = a.company_id AND b.id > a.id
     WHERE a.company_id = :company_id
       AND a.name <> '' AND lower(a.name) = lower(b.name)
       AND (a.phone_number IS NULL OR b.phone_number IS NULL
            OR right(a.phone_number, 8) = right(b.phone_number, 8))
    UNION ALL
    SELECT i.contact_id, c.id, 'identity'
      FROM contact_identities i
      JOIN contacts c ON c.company_id = i.company_id AND c.phone_number = i.value
       AND c.id <> i.contact_id
     WHERE i.company_id = :company_id AND i.kind = 'phone'
     LIMIT :limit
    """
)


async def find_duplicates(
    session: AsyncSession, company_id: uuid.UUID, limit: int = 100
) -> list[dict[str, Any]]:
    """Pairs of contacts that look like one person, with the reason."""
    rows = await session.execute(DUPLICATES, {"company_id": company_id, "limit": limit})
    return [dict(row._mapping) for row in rows]
