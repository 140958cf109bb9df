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
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, cast

import orjson
from sqlalchemy import (
    Row,
    Table,
    Update,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

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
from zapflow.services.identities import Identity, Key, alias_key, resolve_contact
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


async def read_inbound(session: AsyncSession, inbox_ids: Sequence[int]) -> list[InboxDelivery]:
    """The inbound messages of these inbox rows, in the provider's order (one round trip)."""
    deliveries = []
    for payload, correlation_id, received_at, inbox_id in await session.execute(
        READ_INBOX, {"ids": list(inbox_ids)}
    ):
        message = event_from_dict(payload)
        if isinstance(message, InboundMessage):
            delivery = InboxDelivery(message, correlation_id, received_at.timestamp(), inbox_id)
            deliveries.append(delivery)
    return sorted(deliveries, key=lambda d: (d.message.timestamp or 0, d.message.key_id))


def _provider_time(message: InboundMessage) -> datetime:
    if message.timestamp:
        return datetime.fromtimestamp(message.timestamp, UTC)
    return utc_now()


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
    args = (company_id, instance_id, remote_jid, contact_id, workflow_id, started_at)
    row = await _upsert_row(session, *args)
    return cast(uuid.UUID, row.id)


async def _upsert_row(
    session: AsyncSession,
    company_id: uuid.UUID,
    instance_id: uuid.UUID,
    remote_jid: str,
    contact_id: uuid.UUID,
    workflow_id: str | None,
    started_at: datetime | None,
) -> Row[Any]:
    """``upsert_conversation``'s row: its id, its status before this batch, and whether it
    was created."""
    params = {
        "id": uuid.uuid4(),
        "company_id": company_id,
        "instance_id": instance_id,
        "contact_id": contact_id,
        "remote_jid": remote_jid,
        "workflow_id": workflow_id,
        "last_message_at": started_at or utc_now(),
    }
    return (await session.execute(UPSERT_CONVERSATION, params)).one()


# Built once, in Core (no ORM bulk insert): every inbound batch runs it
UPSERT_COLUMNS = ("id", "company_id", "instance_id", "contact_id", "remote_jid", "workflow_id",
                  "last_message_at")  # fmt: skip
UPSERT_CONVERSATION = (
    insert(CONVERSATIONS)
    .values({name: bindparam(name) for name in UPSERT_COLUMNS})
    .on_conflict_do_update(
        index_elements=["instance_id", "remote_jid"],
        set_={"updated_at": func.now()},
    )
    .returning(
        CONVERSATIONS.c.id,
        CONVERSATIONS.c.status,
        literal_column("xmax = 0").label("created"),  # inserted, not updated
    )
)


async def upsert_conversations(
    session: AsyncSession,
    company_id: uuid.UUID,
    instance_id: uuid.UUID,
    chats: dict[str, tuple[uuid.UUID, str]],
) -> dict[str, uuid.UUID]:
    """Many chats' conversations in one statement (remote JID → contact id and workflow id),
    created if new: their ids by remote JID."""
    rows = [
        {"id": uuid.uuid4(), "company_id": company_id, "instance_id": instance_id,
         "contact_id": contact_id, "remote_jid": remote_jid, "workflow_id": workflow_id,
         "last_message_at": utc_now()}
        for remote_jid, (contact_id, workflow_id) in chats.items()
    ]  # fmt: skip
    statement = (
        insert(CONVERSATIONS)
        .values(rows)
        .on_conflict_do_update(
            index_elements=["instance_id", "remote_jid"], set_={"updated_at": func.now()}
        )
        .returning(CONVERSATIONS.c.remote_jid, CONVERSATIONS.c.id)
    )
    return {jid: conversation_id for jid, conversation_id in await session.execute(statement)}


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
# One statement for any batch size (a multi-row VALUES is a new prepared statement per size);
# rows come back as Core rows, no ORM unit of work
INSERT_MESSAGES = text(
    f"""
    INSERT INTO messages (company_id, conversation_id, instance_id, message_key_id, direction,
        from_me, type, body, media, payload, participant, reply_to_key_id, provider_timestamp,
        status, sent_by)
    SELECT CAST(:company_id AS uuid), CAST(:conversation_id AS uuid), CAST(:instance_id AS uuid),
        m.key_id, m.direction, m.from_me, m.type,
        m.body, m.media::jsonb, m.payload::jsonb, m.participant, m.reply_to, m.at, m.status,
        m.sent_by
    FROM unnest(CAST(:key_ids AS text[]), CAST(:directions AS text[]), CAST(:from_me AS bool[]),
        CAST(:types AS text[]), CAST(:bodies AS text[]), CAST(:media AS text[]),
        CAST(:payloads AS text[]), CAST(:participants AS text[]), CAST(:reply_to AS text[]),
        CAST(:at AS timestamptz[]), CAST(:statuses AS text[]), CAST(:sent_by AS text[]))
        AS m(key_id, direction, from_me, type, body, media, payload, participant, reply_to, at,
             status, sent_by)
    ON CONFLICT (instance_id, message_key_id) DO NOTHING
    RETURNING {", ".join(c.name for c in MESSAGE_COLUMNS)}
    """
).columns(*MESSAGE_COLUMNS)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, default=str).decode()


async def insert_messages(
    session: AsyncSession,
    messages: Sequence[InboundMessage],
    company_id: uuid.UUID,
    instance_id: uuid.UUID,
    conversation_id: uuid.UUID,
) -> list[Row[Any]]:
    """Insert what is new; a key id already stored is skipped. Returns the inserted rows."""
    theirs = [not m.from_me for m in messages]
    params = {
        "company_id": company_id,
        "conversation_id": conversation_id,
        "instance_id": instance_id,
        "key_ids": [m.key_id for m in messages],
        "directions": [
            MessageDirection.INBOUND if t else MessageDirection.OUTBOUND for t in theirs
        ],
        "from_me": [m.from_me for m in messages],
        "types": [m.type for m in messages],
        "bodies": [m.body for m in messages],
        "media": [_json(m.media) for m in messages],
        "payloads": [_json(m.payload) for m in messages],
        "participants": [m.participant for m in messages],
        "reply_to": [m.reply_to_key_id for m in messages],
        "at": [_provider_time(m) for m in messages],
        "statuses": [MessageStatus.RECEIVED if t else MessageStatus.SENT for t in theirs],
        "sent_by": [MessageSender.CUSTOMER if t else MessageSender.PHONE for t in theirs],
    }
    inserted = (await session.execute(INSERT_MESSAGES, params)).all()
    return sorted(inserted, key=lambda m: (m.provider_timestamp, m.message_key_id or ""))


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


def _bump(
    target: Any,
    conversation_id: uuid.UUID,
    new_messages: Sequence[MessageLike],
    reopen: bool = True,
) -> Update:
    """Move counters, last-message fields and the 24-hour window by the inserted messages;
    an inbound one reopens the conversation unless ``reopen`` is False (a rating's answer)."""
    inbound = [m for m in new_messages if m.direction == MessageDirection.INBOUND]
    latest = new_messages[-1]
    values: dict[str, Any] = {
        "message_count": Conversation.message_count + len(new_messages),
        "unread_count": Conversation.unread_count + len(inbound),
        "last_message_at": func.greatest(Conversation.last_message_at, latest.provider_timestamp),
        "last_message_preview": _preview(latest),
        "updated_at": func.now(),
    }
    if inbound:
        values["last_inbound_at"] = func.greatest(
            Conversation.last_inbound_at, inbound[-1].provider_timestamp
        )
        if reopen:
            values["status"] = ConversationStatus.OPEN
    if any(m.sent_by in HUMAN_SENDERS for m in new_messages):
        values["is_paused"] = True  # a human took over: automation steps aside
    return update(target).where(col(Conversation.id) == conversation_id).values(**values)


async def bump_conversation(
    session: AsyncSession, conversation_id: uuid.UUID, new_messages: Sequence[Message]
) -> Conversation:
    """``_bump`` through the ORM: the session's copy of the conversation is refreshed."""
    statement = _bump(Conversation, conversation_id, new_messages).returning(Conversation)
    return (await session.execute(statement)).scalar_one()


SUMMARY_COLUMNS = [
    CONVERSATIONS.c[name] for name in ("company_id", *ConversationSummary.model_fields)
]


async def _bump_row(
    session: AsyncSession,
    conversation_id: uuid.UUID,
    new_messages: Sequence[Row[Any]],
    reopen: bool = True,
) -> Row[Any]:
    """``_bump`` in Core, returning what ``conversation.updated`` says (no ORM)."""
    statement = _bump(CONVERSATIONS, conversation_id, new_messages, reopen)
    statement = statement.returning(*SUMMARY_COLUMNS)
    return (await session.execute(statement)).one()


def _preview(message: MessageLike) -> str:
    preview = message.body or (message.media or {}).get("caption") or f"[{message.type}]"
    return preview[:PREVIEW_LENGTH]


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


async def persist_inbound(
    session: AsyncSession,
    company_id: uuid.UUID,
    instance_id: uuid.UUID,
    remote_jid: str,
    messages: Sequence[InboundMessage],
    workflow_id: str | None = None,
    inbox_ids: Sequence[int] = (),
) -> PersistResult:
    """Store the chat's messages. ``inbox_ids`` (the rows they were read from, all of them)
    may go to the person's conversation under another key instead (``forward``), when this
    key has none yet."""
    identity = Identity.of_chat(remote_jid, messages)
    contact = await resolve_contact(session, company_id, identity)
    if contact.changed:  # before the events' publishing: who hears of them reads the new contact
        forget_contacts(session, [contact.id])
    started_at = min(map(_provider_time, messages))
    args = (company_id, instance_id, remote_jid, contact.id, workflow_id, started_at)
    upserted = await _upsert_row(session, *args)
    conversation_id: uuid.UUID = upserted.id
    # a contact this transaction created has no other conversation (a first message: no lock,
    # no read)
    if upserted.created and inbox_ids and not contact.created and not jids.is_group(remote_jid):
        other = await person_conversation(session, instance_id, contact.id, remote_jid)
        if other is not None:  # never seen by anyone: this transaction made it
            await session.execute(delete(CONVERSATIONS).where(CONVERSATIONS.c.id == upserted.id))
            await forward(session, inbox_ids, other)
            return PersistResult(
                conversation_id, contact.id, [], 0, forwarded_to=other, revealed=contact.revealed
            )
    if not upserted.created:  # a new conversation has sent no choices
        messages = await typed_choices(session, conversation_id, messages)
    new = await insert_messages(session, messages, company_id, instance_id, conversation_id)
    events: list[Event] = []
    new_inbound = sum(m.direction == MessageDirection.INBOUND for m in new)
    reopened = False
    if new:
        # a rating is awaited only by a closed conversation (services/csat.py); its answers
        # leave it closed
        closed = upserted.status == ConversationStatus.CLOSED
        rated = closed and await capture_replies(session, conversation_id, new)
        reopened = closed and not rated and new_inbound > 0
        conversation = await _bump_row(session, conversation_id, new, reopen=not rated)
        events = [*map(message_created, new), conversation_updated(conversation)]
    await stage(session, events)
    return PersistResult(
        conversation_id=conversation_id,
        contact_id=contact.id,
        new_message_ids=[m.id for m in new],
        new_inbound=new_inbound,
        reopened=reopened,
        phone_replies=sum(m.sent_by == MessageSender.PHONE for m in new),
        revealed=contact.revealed,
    )


async def person_conversation(
    session: AsyncSession, instance_id: uuid.UUID, contact_id: uuid.UUID, remote_jid: str
) -> str | None:
    """The key of the contact's conversation on the number other than ``remote_jid`` (the
    oldest), read after a lock per contact and number: two persists that each create one for
    the same person wait for each other, and the second finds the first's."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"),
        {"name": f"conversation:{instance_id}:{contact_id}"},
    )
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
