"""Persisting inbound traffic: resolve the contact, upsert the conversation, insert messages once.

Redelivery is harmless at every step: contacts are found by their identities
(services/identities.py), the conversation is unique per (instance, remote jid), and a message per
(instance, provider key id). Counters move only by the rows that were really inserted.

Which conversation a message belongs to (``chat_keys``, asked by the relay before it signals):
the person's, not the address's. A conversation on the instance under any of the message's
addresses (its chat JID, its BSUID, its phone) or of a contact holding one of its identities is
the one, the oldest when there are several; a person with none yet is keyed by BSUID when Meta
gives one (it outlives the phone being shared later), else by the chat JID. A conversation's key
never changes, so the workflow of a chat keyed by a phone before BSUIDs existed keeps its id.

Storing several chats (``persist_chats``, the relay's pass) runs one statement per step for them
all: their contacts (``KnownOwners``), one upsert of their conversations (rows locked in
(instance, remote JID) order), one insert of their messages, one bump, one outbox insert; what is
rare (forwarding a new conversation to the person's other one, a typed numbered choice, a
rating's answer) runs only for the chats it applies to. One chat (``persist_inbound``) is the
case of one. The results are those of storing the chats one by one: a group stops before a chat
whose contact or conversation an earlier one has, and after one that reveals a person split in
two (the caller merges them before the next group's contacts are resolved).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, cast

import orjson
from sqlalchemy import (
    Boolean,
    DateTime,
    Integer,
    Row,
    Table,
    Text,
    Update,
    Uuid,
    bindparam,
    case,
    column,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from zapflow.db import advisory_lock
from zapflow.models import (
    Conversation,
    ConversationStatus,
    IdentityKind,
    InboxEvent,
    Message,
    MessageDirection,
    MessageSender,
    MessageStatus,
    MessageType,
    utc_now,
)
from zapflow.schemas.conversations import ConversationSummary
from zapflow.schemas.messages import MessagePublic
from zapflow.services.contacts import forget_contacts
from zapflow.services.csat import capture_replies
from zapflow.services.events import Event, stage
from zapflow.services.identities import (
    Identity,
    Key,
    KnownOwners,
    ResolvedContact,
    alias_key,
    resolve_contact,
)
from zapflow.services.inbox import notify_relay
from zapflow.whatsapp import jid as jids
from zapflow.whatsapp.interactive import Interactive, fits, typed_choice, typed_number
from zapflow.whatsapp.types import InboundMessage, event_from_dict

PREVIEW_LENGTH = 120
CONVERSATIONS: Table = Conversation.__table__  # type: ignore[attr-defined]  # for Core statements


class MessageLike(Protocol):
    """A message as an ORM object or a Core row: what bumping its conversation reads."""

    direction: MessageDirection
    provider_timestamp: datetime
    sent_by: MessageSender
    body: str | None
    media: dict[str, Any] | None
    type: MessageType


@dataclass(frozen=True)
class PersistResult:
    conversation_id: uuid.UUID
    contact_id: uuid.UUID
    new_message_ids: list[uuid.UUID]
    new_inbound: int
    reopened: bool = False  # a closed conversation the customer wrote to again (not a rating)
    phone_replies: int = 0  # messages typed on the business phone (echoed by the provider)
    forwarded_to: str | None = None  # the person's conversation elsewhere took the rows
    revealed: tuple[uuid.UUID, uuid.UUID] | None = None  # see identities.ResolvedContact


@dataclass(frozen=True)
class InboxDelivery:
    """An inbound message as the inbox holds it, with its delivery's correlation id and the
    time the webhook received it."""

    message: InboundMessage
    correlation_id: str | None
    received_at: float  # epoch seconds
    inbox_id: int


# ``= ANY(array)``: one statement for any number of rows (``IN`` is a new one per count)
READ_INBOX = text(
    "SELECT payload, correlation_id, received_at, id FROM inbox_events"
    " WHERE id = ANY(CAST(:ids AS bigint[]))"
).columns(
    *(InboxEvent.__table__.c[name] for name in ("payload", "correlation_id", "received_at", "id"))  # type: ignore[attr-defined]
)


def arrival_order(delivery: InboxDelivery) -> tuple[int, int]:
    """The provider's time, then the inbox's order: providers stamp whole seconds, and two
    messages sent within one would otherwise be ordered at random."""
    return delivery.message.timestamp or 0, delivery.inbox_id


async def read_inbound(session: AsyncSession, inbox_ids: Sequence[int]) -> list[InboxDelivery]:
    """The inbound messages of these inbox rows, in arrival order (one round trip)."""
    deliveries = []
    for payload, correlation_id, received_at, inbox_id in await session.execute(
        READ_INBOX, {"ids": list(inbox_ids)}
    ):
        message = event_from_dict(payload)
        if isinstance(message, InboundMessage):
            delivery = InboxDelivery(message, correlation_id, received_at.timestamp(), inbox_id)
            deliveries.append(delivery)
    return sorted(deliveries, key=arrival_order)


def _provider_time(message: InboundMessage) -> datetime:
    if message.timestamp:
        return datetime.fromtimestamp(message.timestamp, UTC)
    return utc_now()


class ConversationKey(NamedTuple):
    """What a conversation is created with, when new: ``upsert_conversations``' rows."""

    company_id: uuid.UUID
    instance_id: uuid.UUID
    remote_jid: str
    contact_id: uuid.UUID
    workflow_id: str | None = None
    started_at: datetime | None = None  # its first message's time: ``last_message_at``


async def upsert_conversation(
    session: AsyncSession,
    company_id: uuid.UUID,
    instance_id: uuid.UUID,
    remote_jid: str,
    contact_id: uuid.UUID,
    workflow_id: str | None = None,
    started_at: datetime | None = None,
) -> uuid.UUID:
    """The conversation's id, created if new; ``started_at`` (its first message's time) starts
    ``last_message_at``, which the inbox sorts by."""
    key = ConversationKey(company_id, instance_id, remote_jid, contact_id, workflow_id, started_at)
    return cast(uuid.UUID, (await upsert_conversations(session, [key]))[0].id)


# One statement for any number of conversations (a multi-row VALUES is a new prepared statement
# per count), Core rows back: every inbound pass and campaign batch runs it
UPSERT_CONVERSATIONS = text(
    """
    INSERT INTO conversations (id, company_id, instance_id, contact_id, remote_jid, workflow_id,
        last_message_at, created_at, updated_at)
    SELECT c.id, c.company_id, c.instance_id, c.contact_id, c.remote_jid, c.workflow_id, c.at,
        CAST(:now AS timestamptz), CAST(:now AS timestamptz)
    FROM unnest(CAST(:ids AS uuid[]), CAST(:companies AS uuid[]), CAST(:instances AS uuid[]),
        CAST(:contacts AS uuid[]), CAST(:jids AS text[]), CAST(:workflows AS text[]),
        CAST(:at AS timestamptz[])) AS c(id, company_id, instance_id, contact_id, remote_jid,
            workflow_id, at)
    ON CONFLICT (instance_id, remote_jid) DO UPDATE SET updated_at = now()
    RETURNING id, status, xmax = 0 AS created, instance_id, remote_jid
    """
).columns(
    CONVERSATIONS.c.id,
    CONVERSATIONS.c.status,
    column("created", Boolean),  # inserted, not updated
    CONVERSATIONS.c.instance_id,
    CONVERSATIONS.c.remote_jid,
)


async def upsert_conversations(
    session: AsyncSession, keys: Sequence[ConversationKey]
) -> list[Row[Any]]:
    """Many conversations in one statement, created if new: a row for each key, in order (its
    ``id``, its ``status`` before this statement, whether it was ``created``). Rows are locked
    in (instance, remote JID) order, whatever the keys' order: two transactions upserting some
    of the same conversations wait for each other instead of deadlocking. Keys are distinct."""
    now = utc_now()
    ordered = sorted(keys, key=lambda k: (k.instance_id, k.remote_jid))
    params = {
        "now": now,
        "ids": [uuid.uuid4() for _ in ordered],
        "companies": [k.company_id for k in ordered],
        "instances": [k.instance_id for k in ordered],
        "contacts": [k.contact_id for k in ordered],
        "jids": [k.remote_jid for k in ordered],
        "workflows": [k.workflow_id for k in ordered],
        "at": [k.started_at or now for k in ordered],
    }
    rows = {(r.instance_id, r.remote_jid): r
            for r in await session.execute(UPSERT_CONVERSATIONS, params)}  # fmt: skip
    return [rows[k.instance_id, k.remote_jid] for k in keys]


class ChatAddress(NamedTuple):
    """How an inbound message names its chat: what ``chat_keys`` reads."""

    company_id: uuid.UUID
    instance_id: uuid.UUID
    remote_jid: str
    user_id: str | None = None
    phone: str | None = None
    lid: str | None = None

    def new_key(self) -> str:
        """The key of a conversation this person does not have yet."""
        if self.user_id and not jids.is_group(self.remote_jid):
            return jids.jid_from_bsuid(self.user_id)
        return self.remote_jid

    def jids(self) -> list[str]:
        """The keys a conversation of this person may already have."""
        found = [self.remote_jid, self.new_key()]
        if self.phone:
            found.append(jids.jid_from_phone(self.phone))
        if self.lid:
            found.append(self.lid)
        return list(dict.fromkeys(found))

    def identities(self) -> list[Key]:
        found: list[Key] = [alias_key(j) for j in self.jids()]
        if self.user_id:
            found.append(alias_key(self.user_id))
        if self.phone:
            found.append((IdentityKind.PHONE, self.phone))
        return list(dict.fromkeys(found))


# the oldest conversation on the instance under one of the addresses or of a contact holding one
# of the identities, for every address at once (one statement per relay pass)
CHAT_KEYS = text(
    """
    WITH addresses AS (
        SELECT * FROM unnest(CAST(:a_index AS int[]), CAST(:a_instance AS uuid[]),
            CAST(:a_jid AS text[])) AS a(i, instance_id, jid)
    ), names AS (
        SELECT * FROM unnest(CAST(:n_index AS int[]), CAST(:n_company AS uuid[]),
            CAST(:n_instance AS uuid[]), CAST(:n_kind AS text[]), CAST(:n_value AS text[]))
            AS n(i, company_id, instance_id, kind, value)
    ), found AS (
        SELECT a.i, c.remote_jid, c.created_at FROM addresses a
        JOIN conversations c ON c.instance_id = a.instance_id AND c.remote_jid = a.jid
        UNION ALL
        SELECT n.i, c.remote_jid, c.created_at FROM names n
        JOIN contact_identities ci
            ON ci.company_id = n.company_id AND ci.kind = n.kind AND ci.value = n.value
        JOIN conversations c ON c.contact_id = ci.contact_id AND c.instance_id = n.instance_id
    )
    SELECT DISTINCT ON (i) i, remote_jid FROM found ORDER BY i, created_at, remote_jid
    """
)


async def chat_keys(
    connection: AsyncConnection | AsyncSession, addresses: Sequence[ChatAddress]
) -> list[str]:
    """The conversation key (its ``remote_jid``) of each address, in order (see the module's
    docstring). A group is its own key."""
    names = ("a_index", "a_instance", "a_jid", "n_index", "n_company", "n_instance", "n_kind")
    params: dict[str, list[Any]] = {name: [] for name in (*names, "n_value")}
    for i, address in enumerate(addresses):
        if jids.is_group(address.remote_jid):
            continue
        for jid in address.jids():
            params["a_index"].append(i)
            params["a_instance"].append(address.instance_id)
            params["a_jid"].append(jid)
        for kind, value in address.identities():
            params["n_index"].append(i)
            params["n_company"].append(address.company_id)
            params["n_instance"].append(address.instance_id)
            params["n_kind"].append(kind.value)
            params["n_value"].append(value)
    keys = [address.new_key() for address in addresses]
    if params["a_index"]:
        for i, remote_jid in await connection.execute(CHAT_KEYS, params):
            keys[i] = remote_jid
    return keys


# what a message row says (a column the database computes, the search's tsvector, stays there)
MESSAGE_COLUMNS = [
    c
    for c in Message.__table__.columns  # type: ignore[attr-defined]
    if c.computed is None
]
# One statement for any number of conversations and messages (a multi-row VALUES is a new
# prepared statement per size); rows come back as Core rows, no ORM unit of work
INSERT_MESSAGES = text(
    f"""
    INSERT INTO messages (company_id, conversation_id, instance_id, message_key_id, direction,
        from_me, type, body, media, payload, participant, reply_to_key_id, provider_timestamp,
        status, sent_by, created_at)
    SELECT m.company_id, m.conversation_id, m.instance_id, m.key_id, m.direction, m.from_me,
        m.type, m.body, m.media::jsonb, m.payload::jsonb, m.participant, m.reply_to, m.at,
        m.status, m.sent_by, now() + m.n * interval '1 microsecond'
    FROM unnest(CAST(:companies AS uuid[]), CAST(:conversations AS uuid[]),
        CAST(:instances AS uuid[]), CAST(:key_ids AS text[]), CAST(:directions AS text[]),
        CAST(:from_me AS bool[]), CAST(:types AS text[]), CAST(:bodies AS text[]),
        CAST(:media AS text[]), CAST(:payloads AS text[]), CAST(:participants AS text[]),
        CAST(:reply_to AS text[]), CAST(:at AS timestamptz[]), CAST(:statuses AS text[]),
        CAST(:sent_by AS text[])) WITH ORDINALITY
        AS m(company_id, conversation_id, instance_id, key_id, direction, from_me, type, body,
             media, payload, participant, reply_to, at, status, sent_by, n)
    ON CONFLICT (instance_id, message_key_id) DO NOTHING
    RETURNING {", ".join(c.name for c in MESSAGE_COLUMNS)}
    """
).columns(*MESSAGE_COLUMNS)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, default=str).decode()


class Batch(NamedTuple):
    """One conversation's messages to insert (``insert_batches``)."""

    company_id: uuid.UUID
    instance_id: uuid.UUID
    conversation_id: uuid.UUID
    messages: Sequence[InboundMessage]


async def insert_messages(
    session: AsyncSession,
    messages: Sequence[InboundMessage],
    company_id: uuid.UUID,
    instance_id: uuid.UUID,
    conversation_id: uuid.UUID,
) -> list[Row[Any]]:
    """Insert what is new; a key id already stored is skipped. Returns the inserted rows."""
    batch = Batch(company_id, instance_id, conversation_id, messages)
    return (await insert_batches(session, [batch]))[0]


async def insert_batches(session: AsyncSession, batches: Sequence[Batch]) -> list[list[Row[Any]]]:
    """``insert_messages`` for several conversations in one statement: each batch's inserted
    rows, in the order given. The thread is read by ``created_at``, the transaction's time,
    which one statement's rows share: each row's is a microsecond after the one before it, so
    they read in that order (two messages sent within one second used to swap at random)."""
    pairs = [(b, m) for b in batches for m in b.messages]
    theirs = [not m.from_me for _, m in pairs]
    params = {
        "companies": [b.company_id for b, _ in pairs],
        "conversations": [b.conversation_id for b, _ in pairs],
        "instances": [b.instance_id for b, _ in pairs],
        "key_ids": [m.key_id for _, m in pairs],
        "directions": [
            MessageDirection.INBOUND if t else MessageDirection.OUTBOUND for t in theirs
        ],
        "from_me": [m.from_me for _, m in pairs],
        "types": [m.type for _, m in pairs],
        "bodies": [m.body for _, m in pairs],
        "media": [_json(m.media) for _, m in pairs],
        "payloads": [_json(m.payload) for _, m in pairs],
        "participants": [m.participant for _, m in pairs],
        "reply_to": [m.reply_to_key_id for _, m in pairs],
        "at": [_provider_time(m) for _, m in pairs],
        "statuses": [MessageStatus.RECEIVED if t else MessageStatus.SENT for t in theirs],
        "sent_by": [MessageSender.CUSTOMER if t else MessageSender.PHONE for t in theirs],
    }
    inserted: dict[uuid.UUID, list[Row[Any]]] = {b.conversation_id: [] for b in batches}
    if pairs:
        for row in await session.execute(INSERT_MESSAGES, params):
            inserted[row.conversation_id].append(row)
    return [sorted(inserted[b.conversation_id], key=lambda m: m.created_at) for b in batches]


# the latest message among the conversation's last 50 that went out as numbered choices (buttons
# or a list on a number without them: ``payload.outbound.fallback``)
LAST_NUMBERED = text(
    """
    SELECT id, payload->'outbound'->'interactive' AS spec FROM (
        SELECT id, payload, created_at FROM messages WHERE conversation_id = :conversation_id
        ORDER BY created_at DESC, id DESC LIMIT 50) AS recent
    WHERE payload->'outbound'->>'fallback' = 'numbered_text'
      AND payload->'outbound'->'interactive'->>'type' IN ('button', 'list')
    ORDER BY created_at DESC, id DESC LIMIT 1
    """
)


async def typed_choices(
    session: AsyncSession, conversation_id: uuid.UUID, messages: Sequence[InboundMessage]
) -> list[InboundMessage]:
    """``messages``, with a number the customer typed under the conversation's latest numbered
    choices as the reply it stands for (``interactive.typed_choice``, what a flow's ``ask``
    reads too): the choice's id and title, as a tapped one's, and what was typed. One read,
    only when a message is a bare number."""
    if not any(map(_typed, messages)):
        return list(messages)
    sent = (await session.execute(LAST_NUMBERED, {"conversation_id": conversation_id})).first()
    if sent is None or not fits(sent.spec):  # a row this code never wrote: stored as typed
        return list(messages)
    spec = Interactive.model_validate(sent.spec)
    titles = dict(spec.choices())
    kind = "button_reply" if spec.type == "button" else "list_reply"
    answered: list[InboundMessage] = []
    for message in messages:
        chosen = typed_choice(message.body or "", list(titles)) if _typed(message) else None
        if chosen is None:
            answered.append(message)
            continue
        payload = {"interactive_type": kind, "id": chosen, "title": titles[chosen],
                   "typed": message.body, "answers": str(sent.id)}  # fmt: skip
        answered.append(replace(message, type="interactive", body=titles[chosen], payload=payload))
    return answered


def _typed(message: InboundMessage) -> bool:
    return (
        not message.from_me
        and message.type == "text"
        and typed_number(message.body or "") is not None
    )


# a message from one of these is a human taking the conversation over (services/ai_agent.py)
HUMAN_SENDERS = (MessageSender.AGENT, MessageSender.PHONE)


class Bump(NamedTuple):
    """A conversation's inserted messages, to move it by; ``reopen`` False: its inbound ones
    leave it closed (a rating's answer)."""

    conversation_id: uuid.UUID
    new_messages: Sequence[MessageLike]
    reopen: bool = True


# a bump's values, one array each (``unnest``: one statement for any number of conversations)
BUMP_FIELDS: dict[str, Any] = {
    "id": Uuid(), "added": Integer(), "inbound": Integer(), "latest_at": DateTime(timezone=True),
    "preview": Text(), "inbound_at": DateTime(timezone=True), "reopen": Boolean(),
    "human": Boolean(),
}  # fmt: skip


def _bump_values(bump: Bump) -> tuple[Any, ...]:
    inbound = [m for m in bump.new_messages if m.direction == MessageDirection.INBOUND]
    latest = bump.new_messages[-1]
    return (
        bump.conversation_id,
        len(bump.new_messages),
        len(inbound),
        latest.provider_timestamp,
        _preview(latest),
        inbound[-1].provider_timestamp if inbound else None,  # greatest() ignores a NULL
        bool(inbound) and bump.reopen,
        any(m.sent_by in HUMAN_SENDERS for m in bump.new_messages),
    )


def _bump(target: Any, bumps: Sequence[Bump]) -> Update:
    """Move counters, last-message fields and the 24-hour window of each conversation by its
    inserted messages, in one statement; an inbound one reopens it unless told not to, a
    human's pauses its automation. The rows are locked already (the upsert, or the caller's
    read), so the join's order locks nothing new."""
    rows = [_bump_values(b) for b in bumps]
    arrays = [
        bindparam(f"bump_{name}", [row[i] for row in rows], type_=ARRAY(kind))
        for i, (name, kind) in enumerate(BUMP_FIELDS.items())
    ]
    names = [column(name, kind) for name, kind in BUMP_FIELDS.items()]
    bump = func.unnest(*arrays).table_valued(*names).render_derived(name="bump")
    c = CONVERSATIONS.c
    return (
        update(target)
        .where(c.id == bump.c.id)
        .values(
            message_count=c.message_count + bump.c.added,
            unread_count=c.unread_count + bump.c.inbound,
            last_message_at=func.greatest(c.last_message_at, bump.c.latest_at),
            last_message_preview=bump.c.preview,
            last_inbound_at=func.greatest(c.last_inbound_at, bump.c.inbound_at),
            status=case((bump.c.reopen, ConversationStatus.OPEN), else_=c.status),
            is_paused=or_(c.is_paused, bump.c.human),  # a human took over: automation steps aside
            updated_at=func.now(),
        )
    )


async def bump_conversation(
    session: AsyncSession, conversation_id: uuid.UUID, new_messages: Sequence[Message]
) -> Conversation:
    """``_bump`` through the ORM: the session's copy of the conversation is refreshed."""
    statement = _bump(Conversation, [Bump(conversation_id, new_messages)]).returning(Conversation)
    return (await session.execute(statement)).scalar_one()


SUMMARY_COLUMNS = [
    CONVERSATIONS.c[name] for name in ("company_id", *ConversationSummary.model_fields)
]


async def _bump_rows(session: AsyncSession, bumps: Sequence[Bump]) -> dict[uuid.UUID, Row[Any]]:
    """``_bump`` in Core, returning what ``conversation.updated`` says (no ORM), by id."""
    if not bumps:
        return {}
    statement = _bump(CONVERSATIONS, bumps).returning(*SUMMARY_COLUMNS)
    return {row.id: row for row in await session.execute(statement)}


def _preview(message: MessageLike) -> str:
    preview = message.body or (message.media or {}).get("caption") or f"[{message.type}]"
    return preview[:PREVIEW_LENGTH]


# the conversations whose latest message (in thread order) is one given: their new preview
REFRESH_PREVIEWS = text(
    """
    UPDATE conversations AS c SET last_message_preview = v.preview, updated_at = now()
    FROM unnest(CAST(:conversations AS uuid[]), CAST(:messages AS uuid[]),
                CAST(:previews AS text[])) AS v(conversation_id, message_id, preview)
    JOIN messages AS m ON m.id = v.message_id
    WHERE c.id = v.conversation_id AND NOT EXISTS (
        SELECT 1 FROM messages AS later WHERE later.conversation_id = c.id
        AND (later.created_at, later.id) > (m.created_at, m.id))
    RETURNING """
    + ", ".join(f"c.{column.name}" for column in SUMMARY_COLUMNS)
).columns(*SUMMARY_COLUMNS)


async def refresh_previews(session: AsyncSession, rewritten: Sequence[Message]) -> None:
    """After messages' content was replaced in place (a campaign edited while paused): the
    previews of the conversations each is still the latest of, announced
    (``conversation.updated``)."""
    if not rewritten:
        return
    params = {
        "conversations": [m.conversation_id for m in rewritten],
        "messages": [m.id for m in rewritten],
        "previews": [_preview(m) for m in rewritten],
    }
    await session.flush()  # the rewritten rows, before the statement reads their times
    updated = await session.execute(REFRESH_PREVIEWS, params)
    await stage(session, [conversation_updated(row) for row in updated])


def message_created(message: Message | Row[Any]) -> Event:
    return Event(
        "message.created",
        message.company_id,
        MessagePublic.model_validate(message).model_dump(mode="json"),
        message.conversation_id,
    )


def conversation_updated(conversation: Conversation | Row[Any]) -> Event:
    return Event(
        "conversation.updated",
        conversation.company_id,
        ConversationSummary.model_validate(conversation).model_dump(mode="json"),
        conversation.id,
    )


@dataclass(frozen=True)
class Chat:
    """One conversation's part of a persist: its key and the messages for it. ``inbox_ids``
    (the rows they were read from, all of them) may go to the person's conversation under
    another key instead (``forward``), when this key has none yet."""

    company_id: uuid.UUID
    instance_id: uuid.UUID
    remote_jid: str
    messages: Sequence[InboundMessage]
    workflow_id: str | None = None
    inbox_ids: Sequence[int] = ()


async def persist_inbound(
    session: AsyncSession,
    company_id: uuid.UUID,
    instance_id: uuid.UUID,
    remote_jid: str,
    messages: Sequence[InboundMessage],
    workflow_id: str | None = None,
    inbox_ids: Sequence[int] = (),
    known: KnownOwners | None = None,
) -> PersistResult:
    """Store the chat's messages (``persist_chats`` of one)."""
    chat = Chat(company_id, instance_id, remote_jid, messages, workflow_id, inbox_ids)
    return (await persist_chats(session, [chat], known))[0]


async def persist_chats(
    session: AsyncSession, chats: Sequence[Chat], known: KnownOwners | None = None
) -> list[PersistResult]:
    """Store the messages of the first chats, as storing them one by one would, in one
    statement per step for them all (the conversations' upsert, the messages' insert, the
    bump, the events): the results of a prefix of ``chats`` (``_group``); the caller stores
    the rest after what follows from these. ``known``: their contacts' identities, read at
    once."""
    contacts = await _group(session, chats, known)
    chats = chats[: len(contacts)]
    keys = [
        ConversationKey(chat.company_id, chat.instance_id, chat.remote_jid, contact.id,
                        chat.workflow_id, min(map(_provider_time, chat.messages)))
        for chat, contact in zip(chats, contacts, strict=True)
    ]  # fmt: skip
    upserted = await upsert_conversations(session, keys)
    forwarded = [
        await _forwarded(session, chat, contact, row)
        for chat, contact, row in zip(chats, contacts, upserted, strict=True)
    ]
    kept = [i for i, other in enumerate(forwarded) if other is None]
    batches = [
        Batch(chats[i].company_id, chats[i].instance_id, upserted[i].id, await _answers(
            session, upserted[i], chats[i].messages))
        for i in kept
    ]  # fmt: skip
    inserted = dict(zip(kept, await insert_batches(session, batches), strict=True))
    rated = {i: await _rated(session, upserted[i], new) for i, new in inserted.items() if new}
    bumps = [Bump(upserted[i].id, inserted[i], not rated[i]) for i in rated]
    bumped = await _bump_rows(session, bumps)
    events = [
        event for i in rated
        for event in [*map(message_created, inserted[i]),
                      conversation_updated(bumped[upserted[i].id])]
    ]  # fmt: skip
    await stage(session, events)
    return [
        PersistResult(row.id, contact.id, [], 0, forwarded_to=other, revealed=contact.revealed)
        if other is not None
        else _stored(row, contact, inserted[i], rated.get(i, False))
        for i, (row, contact, other) in enumerate(zip(upserted, contacts, forwarded, strict=True))
    ]


def _stored(
    row: Row[Any], contact: ResolvedContact, new: list[Row[Any]], rated: bool
) -> PersistResult:
    new_inbound = sum(m.direction == MessageDirection.INBOUND for m in new)
    closed = row.status == ConversationStatus.CLOSED
    return PersistResult(
        conversation_id=row.id,
        contact_id=contact.id,
        new_message_ids=[m.id for m in new],
        new_inbound=new_inbound,
        reopened=closed and not rated and new_inbound > 0,
        phone_replies=sum(m.sent_by == MessageSender.PHONE for m in new),
        revealed=contact.revealed,
    )


async def _group(
    session: AsyncSession, chats: Sequence[Chat], known: KnownOwners | None
) -> list[ResolvedContact]:
    """The contacts of the first chats, which can be stored together as one by one: up to the
    first whose contact reveals a person split in two (its merge, by the caller, comes before
    the next chat's contact is resolved), and before one whose contact or conversation an
    earlier one of them has (one by one, its first message, other conversation or flow trigger
    reads what the earlier stored). That one is resolved again with the rest: harmless, as
    every redelivery is."""
    contacts: list[ResolvedContact] = []
    taken: set[Any] = set()
    for chat in chats:
        identity = Identity.of_chat(chat.remote_jid, chat.messages)
        contact = await resolve_contact(session, chat.company_id, identity, known)
        if contact.changed:  # before the events' publishing: who hears of them reads it new
            forget_contacts(session, [contact.id])
        chat_key = (chat.instance_id, chat.remote_jid)
        if contact.id in taken or chat_key in taken:
            break
        contacts.append(contact)
        taken |= {contact.id, chat_key}
        if contact.revealed:
            break
    return contacts


async def _forwarded(
    session: AsyncSession, chat: Chat, contact: ResolvedContact, upserted: Row[Any]
) -> str | None:
    """The key of the person's other conversation that takes a new conversation's rows (then
    this one, seen by nobody, is deleted), or None. A contact this transaction created has no
    other conversation (a first message: no lock, no read)."""
    if not upserted.created or not chat.inbox_ids or contact.created:
        return None
    if jids.is_group(chat.remote_jid):
        return None
    other = await person_conversation(session, chat.instance_id, contact.id, chat.remote_jid)
    if other is not None:  # never seen by anyone: this transaction made it
        await session.execute(delete(CONVERSATIONS).where(CONVERSATIONS.c.id == upserted.id))
        await forward(session, chat.inbox_ids, other)
    return other


async def _answers(
    session: AsyncSession, upserted: Row[Any], messages: Sequence[InboundMessage]
) -> Sequence[InboundMessage]:
    """The messages, a typed number as the choice it answers; a new conversation has sent no
    choices."""
    if upserted.created:
        return messages
    return await typed_choices(session, upserted.id, messages)


async def _rated(session: AsyncSession, upserted: Row[Any], new: Sequence[Row[Any]]) -> bool:
    """Whether the new messages answer a closed conversation's rating (services/csat.py):
    they leave it closed. A rating is awaited only by a closed conversation."""
    closed = upserted.status == ConversationStatus.CLOSED
    return closed and await capture_replies(session, upserted.id, new)


async def person_conversation(
    session: AsyncSession, instance_id: uuid.UUID, contact_id: uuid.UUID, remote_jid: str
) -> str | None:
    """The key of the contact's conversation on the number other than ``remote_jid`` (the
    oldest), read after a lock per contact and number: two persists that each create one for
    the same person wait for each other, and the second finds the first's."""
    await advisory_lock(session, f"conversation:{instance_id}:{contact_id}")
    query = (
        select(col(Conversation.remote_jid))
        .where(
            col(Conversation.instance_id) == instance_id,
            col(Conversation.contact_id) == contact_id,
            col(Conversation.remote_jid) != remote_jid,
        )
        .order_by(col(Conversation.created_at), col(Conversation.id))
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


# a copy of each inbox row for the conversation it belongs to (the original was relayed already)
FORWARD = text(
    """
    INSERT INTO inbox_events (company_id, instance_id, provider, event_type, dedupe_key, payload,
        correlation_id, received_at, conversation_key)
    SELECT company_id, instance_id, provider, event_type,
        'forward:' || id || ':' || CAST(:key AS text), payload, correlation_id, received_at,
        CAST(:key AS text)
      FROM inbox_events WHERE id = ANY(CAST(:ids AS bigint[]))
    ON CONFLICT (instance_id, dedupe_key) DO NOTHING
    """
)


async def forward(session: AsyncSession, inbox_ids: Sequence[int], remote_jid: str) -> None:
    """Queue these inbound rows again for the conversation keyed ``remote_jid`` (its workflow
    stores them and does what a reply does there); a retried forward stores nothing twice."""
    await session.execute(FORWARD, {"ids": list(inbox_ids), "key": remote_jid})
    await notify_relay(session)
