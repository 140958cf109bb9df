"""The agents' desk, what they do with conversations: the filtered conversation list (the UI's
"Inbox" page), one conversation, and the actions (assign, pause the bot, close, mark read). The
pipeline's writes live in ``conversations.py``; the webhook inbox is ``inbox.py``.

Every read joins the contact and the instance, so a page of any size is one query.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from zapflow.db import DriverReads
from zapflow.errors import NotFound, Unprocessable
from zapflow.models import (
    Contact,
    Conversation,
    ConversationStatus,
    TeamMember,
    User,
    WhatsAppInstance,
    utc_now,
)
from zapflow.schemas.contacts import ContactRef
from zapflow.schemas.conversations import ConversationPublic, ConversationSummary
from zapflow.services.paging import cut_page, keyset
from zapflow.whatsapp import jid as jids

_PHONE_LIKE = re.compile(r"\+?[\d\s().-]+")
_SUMMARY_FIELDS = tuple(ConversationSummary.model_fields)
AnyRow = Row[*tuple[Any, ...]]


@dataclass(frozen=True)
class ConversationFilter:
    """Conditions of the conversation list; every one given must hold."""

    status: ConversationStatus | None = None
    assigned_user_id: uuid.UUID | None = None
    unassigned: bool | None = None  # False: assigned to someone
    paused: bool | None = None
    tags: tuple[str, ...] = ()  # the contact has all of them
    instance_id: uuid.UUID | None = None
    updated_since: datetime | None = None
    q: str | None = None  # prefix of the contact's name or phone number
    team_id: uuid.UUID | None = None
    teams_of: uuid.UUID | None = None  # in a team this user belongs to
    waiting: bool | None = None  # queued for a human of its team, nobody's yet

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.status is not None:
            found.append(col(Conversation.status) == self.status)
        if self.assigned_user_id is not None:
            found.append(col(Conversation.assigned_user_id) == self.assigned_user_id)
        if self.unassigned is not None:
            assignee = col(Conversation.assigned_user_id)
            found.append(assignee.is_(None) if self.unassigned else assignee.is_not(None))
        if self.paused is not None:
            found.append(col(Conversation.is_paused).is_(self.paused))
        if self.tags:
            found.append(col(Contact.tags).contains(list(self.tags)))
        if self.instance_id is not None:
            found.append(col(Conversation.instance_id) == self.instance_id)
        if self.updated_since is not None:
            found.append(col(Conversation.updated_at) >= self.updated_since)
        if self.q:
            found.append(_contact_prefix(self.q))
        if self.team_id is not None:
            found.append(col(Conversation.team_id) == self.team_id)
        if self.teams_of is not None:
            mine = select(col(TeamMember.team_id)).where(col(TeamMember.user_id) == self.teams_of)
            found.append(col(Conversation.team_id).in_(mine))
        if self.waiting is not None:
            since = col(Conversation.waiting_since)
            found.append(since.is_not(None) if self.waiting else since.is_(None))
        return found


def _contact_prefix(q: str) -> ColumnElement[bool]:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    matches = [col(Contact.name).ilike(escaped + "%", escape="\\")]
    digits = jids.digits(q)
    if digits and _PHONE_LIKE.fullmatch(q):
        # numbers are stored in E.164: "11 9999" and "+55 11 9999" both mean digits after a "+"
        matches.append(col(Contact.phone_number).like(f"+{digits}%"))
    return or_(*matches)


@dataclass(frozen=True)
class ConversationRow:
    conversation: Conversation
    contact: ContactRef
    instance_name: str

    @classmethod
    def of(cls, row: AnyRow) -> ConversationRow:
        conversation, contact_id, name, phone_number, instance_name = row
        contact = ContactRef(id=contact_id, name=name, phone_number=phone_number)
        return cls(conversation, contact, instance_name)

    def public(self) -> ConversationPublic:
        own = {name: getattr(self.conversation, name) for name in _SUMMARY_FIELDS}
        return ConversationPublic(
            **own,
            created_at=self.conversation.created_at,
            contact=self.contact,
            instance_name=self.instance_name,
        )

    def cursor_key(self) -> tuple[datetime, uuid.UUID]:
        return self.conversation.last_message_at, self.conversation.id


def _joined(company_id: uuid.UUID, *columns: Any) -> Select[*tuple[Any, ...]]:
    """``columns`` of the company's conversations joined with their contacts and instances
    (typed loosely: ``keyset`` takes a ``Select[Any]``)."""
    return (
        select(*columns)
        .join(Contact, col(Contact.id) == col(Conversation.contact_id))
        .join(WhatsAppInstance, col(WhatsAppInstance.id) == col(Conversation.instance_id))
        .where(col(Conversation.company_id) == company_id)
    )


def _rows(company_id: uuid.UUID) -> Select[*tuple[Any, ...]]:
    """The company's conversations, each with its contact's id, name and phone, and its
    instance's name."""
    return _joined(
        company_id,
        Conversation,
        col(Contact.id),
        col(Contact.name),
        col(Contact.phone_number),
        col(WhatsAppInstance.name),
    )


_OWN_PUBLIC_FIELDS = (*_SUMMARY_FIELDS, "created_at")
_PUBLIC_COLUMNS = (
    *(col(getattr(Conversation, name)) for name in _OWN_PUBLIC_FIELDS),
    col(Contact.name),
    col(Contact.phone_number),
    col(WhatsAppInstance.name),
)


def _public(row: AnyRow) -> dict[str, Any]:
    """A ``ConversationPublic`` as a dict of the column values (in its fields' order), without
    a model per row."""
    public = dict(zip(_SUMMARY_FIELDS, row, strict=False))
    *_, created_at, name, phone_number, instance_name = row
    public["instance_name"] = instance_name
    public["contact"] = {"id": public["contact_id"], "name": name, "phone_number": phone_number}
    public["created_at"] = created_at
    return public


async def page_conversations(
    reads: DriverReads,
    company_id: uuid.UUID,
    filters: ConversationFilter,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Most recent message first, as ``ConversationPublic`` dicts (the list is the API's
    busiest read: columns through ``DriverReads``, not ORM objects). The cursor is the last
    row's (last_message_at, id), so it stays valid under inserts and, holding no filter, cannot
    widen another query's scope."""
    query = keyset(
        _joined(company_id, *_PUBLIC_COLUMNS).where(*filters.conditions()),
        [col(Conversation.last_message_at), col(Conversation.id)],
        (datetime, uuid.UUID),
        limit,
        cursor,
    )
    rows = [_public(row) for row in await reads.fetch(query)]
    return cut_page(rows, limit, lambda row: (row["last_message_at"], row["id"]))


async def get_conversation_row(
    session: AsyncSession, company_id: uuid.UUID, conversation_id: uuid.UUID, *, lock: bool = False
) -> ConversationRow:
    query = _rows(company_id).where(col(Conversation.id) == conversation_id)
    if lock:
        query = query.with_for_update(of=Conversation)
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise NotFound("conversation not found")
    return ConversationRow.of(row)


async def change_conversation(
    session: AsyncSession,
    company_id: uuid.UUID,
    conversation_id: uuid.UUID,
    changes: dict[str, Any],
) -> tuple[ConversationRow, bool]:
    """Apply what differs; returns the row and whether anything changed."""
    row = await get_conversation_row(session, company_id, conversation_id, lock=True)
    return row, await _apply(session, row, changes)


async def assign_conversation(
    session: AsyncSession, company_id: uuid.UUID, conversation_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[ConversationRow, bool]:
    """Like ``change_conversation``; the user must be an active user of the company."""
    row = await get_conversation_row(session, company_id, conversation_id, lock=True)
    await ensure_active_user(session, company_id, user_id)
    # taken by a person: out of its team's queue
    return row, await _apply(session, row, {"assigned_user_id": user_id, "waiting_since": None})


async def unassign_conversation(
    session: AsyncSession, company_id: uuid.UUID, conversation_id: uuid.UUID
) -> tuple[ConversationRow, bool]:
    """Nobody's again: a conversation of a team goes back to the team's queue (its routing
    assigns it anew), oldest first by when it was unassigned."""
    row = await get_conversation_row(session, company_id, conversation_id, lock=True)
    changes: dict[str, Any] = {"assigned_user_id": None}
    if row.conversation.team_id is not None and row.conversation.assigned_user_id is not None:
        changes["waiting_since"] = utc_now()
    return row, await _apply(session, row, changes)


async def _apply(session: AsyncSession, row: ConversationRow, changes: dict[str, Any]) -> bool:
    # the row is locked (FOR UPDATE), so concurrent repeats of an action change it only once
    differing = {k: v for k, v in changes.items() if getattr(row.conversation, k) != v}
    for name, value in differing.items():
        setattr(row.conversation, name, value)
    if differing:
        await session.flush()
    return bool(differing)


async def ensure_active_user(
    session: AsyncSession, company_id: uuid.UUID, user_id: uuid.UUID, field: str = "body.user_id"
) -> None:
    query = select(col(User.id)).where(
        col(User.id) == user_id, col(User.company_id) == company_id, col(User.is_active).is_(True)
    )
    if (await session.execute(query)).scalar_one_or_none() is None:
        message = "no active user with this id in your company"
        raise Unprocessable(
            f"user_id: {message}",
            details=[{"field": field, "message": message, "type": "unknown_user"}],
        )
