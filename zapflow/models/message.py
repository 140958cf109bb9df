import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlmodel import SQLModel

from ._fields import (
    bool_field,
    company_fk,
    created_at_field,
    enum_check,
    enum_field,
    fk,
    jsonb_field,
    text_field,
    timestamp_field,
    uuid_pk,
)


class MessageDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageType(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    INTERACTIVE = "interactive"
    BUTTON = "button"
    REACTION = "reaction"
    TEMPLATE = "template"
    UNSUPPORTED = "unsupported"
    SYSTEM = "system"


class MessageStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # handed to the provider; a crash here must not lead to a second send
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    RECEIVED = "received"
    DELETED = "deleted"


class MessageSender(StrEnum):
    """Who produced the message (``messages.sent_by``)."""

    CUSTOMER = "customer"
    AGENT = "agent"
    AI = "ai"
    FLOW = "flow"
    FOLLOWUP = "followup"
    PHONE = "phone"  # typed on the business phone itself, echoed back by the provider
    CAMPAIGN = "campaign"  # a broadcast's message (and the opt-out confirmation)


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        sa.UniqueConstraint("instance_id", "message_key_id"),
        sa.UniqueConstraint("conversation_id", "client_id"),
        sa.Index("idx_messages_conversation_id", "conversation_id"),
        sa.Index("idx_messages_created_at", sa.text("created_at DESC")),
        sa.Index("idx_messages_key_id", "message_key_id"),
        # conversation history: WHERE conversation_id = ? ORDER BY created_at DESC, id DESC
        sa.Index(
            "idx_messages_conversation_created",
            "conversation_id",
            sa.text("created_at DESC"),
            sa.text("id DESC"),
        ),
        sa.Index("idx_messages_company_created", "company_id", sa.text("created_at DESC")),
        # the messages naming an uploaded file (services/media_files.py): few of all messages
        sa.Index(
            "idx_messages_media_id",
            "company_id",
            sa.text("(media->>'media_id')"),
            postgresql_where=sa.text("(media->>'media_id') IS NOT NULL"),
        ),
        enum_check("direction", MessageDirection),
        enum_check("type", MessageType),
        enum_check("status", MessageStatus),
        enum_check("sent_by", MessageSender),
    )

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    conversation_id: uuid.UUID = fk("conversations.id", ondelete="CASCADE")
    instance_id: uuid.UUID = fk("whatsapp_instances.id", ondelete="CASCADE")
    # Provider message id. NULL only for an outbound message the provider has not accepted yet.
    message_key_id: str | None = None
    client_id: str | None = None  # caller's idempotency key for outbound sends
    direction: MessageDirection = enum_field(MessageDirection)
    from_me: bool = bool_field(False)
    type: MessageType = enum_field(MessageType, MessageType.TEXT)
    body: str | None = text_field(nullable=True)
    media: dict[str, Any] | None = jsonb_field(nullable=True)  # id, url, mime_type, caption, ...
    # normalized extras: location, contacts, interactive reply, reaction target, referral, raw
    payload: dict[str, Any] = jsonb_field()
    participant: str | None = None  # group sender jid
    reply_to_key_id: str | None = None
    provider_timestamp: datetime = timestamp_field(server_now=True)
    status: MessageStatus = enum_field(MessageStatus)
    status_updated_at: datetime | None = timestamp_field()
    error: dict[str, Any] | None = jsonb_field(nullable=True)
    sent_by: MessageSender = enum_field(MessageSender)
    sent_by_user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)
    created_at: datetime = created_at_field()


# Keyword search (services/search.py): the body's words under Portuguese stemming, as written and
# without accents (portuguese_unaccent: made by a migration), stored by Postgres so ranking reads
# them instead of parsing the body again. A column of the table, not of the ORM class: a Message
# loaded anywhere else never carries it, and inserts leave it to the database.
BODY_TSVECTOR = sa.Column(
    "body_tsv",
    TSVECTOR(),
    sa.Computed(
        "to_tsvector('portuguese', coalesce(body, ''))"
        " || to_tsvector('portuguese_unaccent', coalesce(body, ''))",
        persisted=True,
    ),
)
Message.__table__.append_column(BODY_TSVECTOR)  # type: ignore[attr-defined]
sa.Index("idx_messages_body_fts", BODY_TSVECTOR, postgresql_using="gin")
