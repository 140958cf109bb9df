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

from sqlalchemy import DateTime, Integer, Row, Select, Uuid, bindparam, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlmodel import col

from zapflow.db import DriverReads
from zapflow.errors import NotFound, Unprocessable
from zapflow.models import (
    Company,
    Contact,
    Conversation,
    ConversationStatus,
    Message,
    MessageDirection,
    SlaKind,
    SystemNoteKind,
    TeamMember,
    User,
    WhatsAppInstance,
    utc_now,
)
from zapflow.schemas.contacts import ContactRef
from zapflow.schemas.conversations import ConversationPublic, ConversationSummary
from zapflow.services import routing, slas, system_notes
from zapflow.services.conversations import conversation_updated
from zapflow.services.events import stage
from zapflow.services.identities import holders_of, searched_identity
from zapflow.services.inbox import store_read_request
from zapflow.services.paging import cut_page, decode_cursor
from zapflow.services.resolutions import record_close
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
    q: str | None = None  # prefix of the contact's name or phone number; a username or BSUID
    team_id: uuid.UUID | None = None
    teams_of: uuid.UUID | None = None  # in a team this user belongs to
    waiting: bool | None = None  # queued for a human of its team, nobody's yet

    def bound(self) -> tuple[tuple[str, ...], dict[str, Any]]:
        """The filter's shape (which conditions it holds, in which form: one statement per
        shape, see ``_page_statement``) and the values of their ``bindparam``s."""
        shape: list[str] = []
        values: dict[str, Any] = {}
        for name in ("status", "assigned_user_id", "instance_id", "updated_since", "team_id"):
            if getattr(self, name) is not None:
                shape.append(name)
                values[name] = getattr(self, name)
        if self.unassigned is not None:
            shape.append("unassigned" if self.unassigned else "assigned")
        if self.paused is not None:
            shape.append("paused" if self.paused else "not_paused")
        if self.waiting is not None:
            shape.append("waiting" if self.waiting else "not_waiting")
        if self.teams_of is not None:
            shape.append("teams_of")
            values["teams_of"] = self.teams_of
        if self.tags:
            shape.append("tags")
            values["tags"] = list(self.tags)
        if self.q:
            escaped = self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            shape.append("q")
            values["name_prefix"] = escaped + "%"
            identity = searched_identity(self.q)
            if identity is not None:  # a username or BSUID: the contact holding it
                shape.append("identity")
                values["identity_kind"], values["identity_value"] = identity
            digits = jids.digits(self.q)
            if digits and _PHONE_LIKE.fullmatch(self.q):
                # numbers are stored in E.164: "11 9999" and "+55 11 9999" both mean digits
                # after a "+"
                shape.append("phone")
                values["phone_prefix"] = f"+{digits}%"
        return tuple(shape), values


def _conditions(shape: tuple[str, ...]) -> list[ColumnElement[bool]]:
    """The conditions of a filter of this shape, each value a ``bindparam`` of the name
    ``ConversationFilter.bound`` gives it."""
    simple = {
        "status": col(Conversation.status) == bindparam("status"),
        "assigned_user_id": col(Conversation.assigned_user_id) == bindparam("assigned_user_id"),
        "instance_id": col(Conversation.instance_id) == bindparam("instance_id"),
        "updated_since": col(Conversation.updated_at) >= bindparam("updated_since"),
        "unassigned": col(Conversation.assigned_user_id).is_(None),
        "assigned": col(Conversation.assigned_user_id).is_not(None),
        "paused": col(Conversation.is_paused).is_(True),
        "not_paused": col(Conversation.is_paused).is_(False),
        "tags": col(Contact.tags).contains(bindparam("tags")),
        "team_id": col(Conversation.team_id) == bindparam("team_id"),
        "teams_of": col(Conversation.team_id).in_(
            select(col(TeamMember.team_id)).where(col(TeamMember.user_id) == bindparam("teams_of"))
        ),
        "waiting": col(Conversation.waiting_since).is_not(None),
        "not_waiting": col(Conversation.waiting_since).is_(None),
    }
    found = [simple[name] for name in shape if name in simple]
    if "q" in shape:
        matches = [col(Contact.name).ilike(bindparam("name_prefix"), escape="\\")]
        if "phone" in shape:
            matches.append(col(Contact.phone_number).like(bindparam("phone_prefix")))
        if "identity" in shape:
            holders = holders_of(
                bindparam("company_id", type_=Uuid()),
                bindparam("identity_kind"),
                bindparam("identity_value"),
            )
            matches.append(col(Contact.id).in_(holders))
        found.append(or_(*matches))
    return found


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


def _joined(
    company_id: uuid.UUID | BindParameter[uuid.UUID], *columns: Any
) -> Select[*tuple[Any, ...]]:
    """``columns`` of the company's conversations joined with their contacts and instances
    (typed loosely)."""
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


_PAGES: dict[tuple[tuple[str, ...], bool], Select[*tuple[Any, ...]]] = {}
_POSITION = (col(Conversation.last_message_at), col(Conversation.id))


def _page_statement(shape: tuple[str, ...], after: bool) -> Select[*tuple[Any, ...]]:
    """The page's statement for filters of ``shape`` (``after``: following a cursor), built
    once: values ``company_id``, the filter's, ``after_at`` and ``after_id``, ``rows``."""
    key = (shape, after)
    statement = _PAGES.get(key)
    if statement is None:
        statement = (
            _joined(bindparam("company_id", type_=Uuid()), *_PUBLIC_COLUMNS)
            .where(*_conditions(shape))
            .order_by(*(column.desc() for column in _POSITION))
            .limit(bindparam("rows", type_=Integer))
        )
        if after:
            cursor = tuple_(
                bindparam("after_at", type_=DateTime(timezone=True)),
                bindparam("after_id", type_=Uuid()),
            )
            statement = statement.where(tuple_(*_POSITION) < cursor)
        # the shapes are a few hundred at most: which conditions, never their values
        statement = _PAGES[key] = statement
    return statement


async def page_conversations(
    reads: DriverReads,
    company_id: uuid.UUID,
    filters: ConversationFilter,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Most recent message first, as ``ConversationPublic`` dicts (the list is the API's
    busiest read: one statement per shape of filter, compiled once, through ``DriverReads``;
    no ORM objects). The cursor is the last row's (last_message_at, id), so it stays valid
    under inserts and, holding no filter, cannot widen another query's scope."""
    shape, values = filters.bound()
    if cursor:
        values["after_at"], values["after_id"] = decode_cursor(cursor, (datetime, uuid.UUID))
    statement = _page_statement(shape, cursor is not None)
    found = await reads.fetch_fixed(statement, company_id=company_id, rows=limit + 1, **values)
    rows = [_public(row) for row in found]
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
) -> ConversationRow:
    """Apply what differs, announced as ``conversation.updated``; a repeat changes nothing and
    announces nothing."""
    row = await get_conversation_row(session, company_id, conversation_id, lock=True)
    await _apply(session, row, changes)
    return row


async def mark_read(
    session: AsyncSession, company_id: uuid.UUID, conversation_id: uuid.UUID
) -> ConversationRow:
    """The unread count goes to 0. When it was not 0 and the number sends read receipts
    (its settings' ``mark_read``, else the company's), the customer's latest message is marked
    read at WhatsApp too, with the typing indicator (``MarkReadWorkflow``), through
    the inbox: the page never waits for the provider, and a failure there changes nothing
    here."""
    row = await get_conversation_row(session, company_id, conversation_id, lock=True)
    unread = row.conversation.unread_count
    await _apply(session, row, {"unread_count": 0})
    if unread:
        await _tell_whatsapp_read(session, row.conversation)
    return row


async def _tell_whatsapp_read(session: AsyncSession, conversation: Conversation) -> None:
    company = await session.get(Company, conversation.company_id)
    instance = await session.get(WhatsAppInstance, conversation.instance_id)
    assert company is not None and instance is not None
    default = (company.settings or {}).get("mark_read")
    if (instance.settings or {}).get("mark_read", default) is not True:
        return
    latest = (
        select(col(Message.id))
        .where(
            col(Message.conversation_id) == conversation.id,
            col(Message.direction) == MessageDirection.INBOUND,
            col(Message.message_key_id).is_not(None),
        )
        .order_by(col(Message.created_at).desc(), col(Message.id).desc())
        .limit(1)
    )
    message_id = (await session.execute(latest)).scalar_one_or_none()
    if message_id is not None:
        await store_read_request(session, instance, message_id)


async def assign_conversation(
    session: AsyncSession,
    company_id: uuid.UUID,
    conversation_id: uuid.UUID,
    user_id: uuid.UUID,
    actor_user_id: uuid.UUID | None = None,
) -> ConversationRow:
    """Like ``change_conversation``; the user must be an active user of the company. A change
    of assignee leaves a system note naming who assigned it (``actor_user_id``)."""
    row = await get_conversation_row(session, company_id, conversation_id, lock=True)
    await ensure_active_user(session, company_id, user_id)
    # taken by a person: out of its team's queue
    taken = {"assigned_user_id": user_id, "waiting_since": None, "passed_over_user_id": None}
    if await _apply(session, row, taken):
        await system_notes.add(
            session,
            row.conversation,
            SystemNoteKind.ASSIGNED,
            actor_user_id=actor_user_id,
            user_id=user_id,
            team_id=row.conversation.team_id,
        )
    return row


async def unassign_conversation(
    session: AsyncSession,
    company_id: uuid.UUID,
    conversation_id: uuid.UUID,
    actor_user_id: uuid.UUID | None = None,
) -> ConversationRow:
    """Nobody's again: a conversation of a team goes back to the team's queue (its routing is
    woken and assigns it anew), oldest first by when it was unassigned; a system note says who
    unassigned whom."""
    row = await get_conversation_row(session, company_id, conversation_id, lock=True)
    conversation = row.conversation
    previous, team_id = conversation.assigned_user_id, conversation.team_id
    changes: dict[str, Any] = {"assigned_user_id": None}
    if team_id is not None and previous is not None:
        changes["waiting_since"] = utc_now()
        changes["passed_over_user_id"] = None  # unassigned by hand: anyone may get it
    if await _apply(session, row, changes):
        await system_notes.add(
            session,
            conversation,
            SystemNoteKind.UNASSIGNED,
            actor_user_id=actor_user_id,
            user_id=previous,
            team_id=team_id,
        )
        if team_id is not None:
            await routing.request_pass(session, company_id, [team_id])
    return row


async def _apply(session: AsyncSession, row: ConversationRow, changes: dict[str, Any]) -> bool:
    """Whether anything changed. Reopening holds the conversation to its team's SLA anew;
    closing completes its resolution target (and cancels a first response never given:
    services/slas.py) and wakes the routing of the assignee's teams (a place freed)."""
    # the row is locked (FOR UPDATE), so concurrent repeats of an action change it only once
    differing = {k: v for k, v in changes.items() if getattr(row.conversation, k) != v}
    for name, value in differing.items():
        setattr(row.conversation, name, value)
    if differing:
        await session.flush()
        await stage(session, [conversation_updated(row.conversation)])
    if differing.get("status") == ConversationStatus.OPEN:
        await slas.restart(session, row.conversation.id)
    if differing.get("status") == ConversationStatus.CLOSED:
        await record_close(session, row.conversation)
        await slas.complete(
            session,
            row.conversation.id,
            [SlaKind.RESOLUTION],
            row.conversation.assigned_user_id,
            cancel=[SlaKind.FIRST_RESPONSE],
        )
        if row.conversation.assigned_user_id is not None:  # a place freed in their teams
            teams = await routing.member_teams(session, row.conversation.assigned_user_id)
            await routing.request_pass(session, row.conversation.company_id, teams)
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
