import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ._fields import (
    bigint_identity_pk,
    company_fk,
    enum_check,
    enum_field,
    enum_type,
    fk,
    int_field,
    jsonb_field,
    text_field,
    timestamp_field,
)
from .whatsapp_instance import WhatsAppProvider


class InboxEventType(StrEnum):
    MESSAGE = "message"
    STATUS = "status"
    OUTBOUND = "outbound"  # an agent's (or automation's) message queued for sending
    FOLLOWUP = "followup"  # a conversation's follow-ups changed: its workflow reloads its timers
    FLOW_START = "flow_start"  # a flow run to start as its conversation's child (API, triggers)
    FLOW_CANCEL = "flow_cancel"  # a flow run to cancel (API)
    READ = "read"  # tell WhatsApp an agent read the customer's message (mark read + typing)
    CAMPAIGN = "campaign"  # a campaign created, paused, resumed or cancelled (API)
    ROUTING = "routing"  # a team's queue or members changed: its routing workflow runs a pass
    SLA = "sla"  # a conversation's SLA targets changed: its workflow reloads its SLA timers
    OTHER = "other"


class InboxEventStatus(StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    REJECTED = "rejected"
    FAILED = "failed"


class InboxEvent(SQLModel, table=True):
    """A normalized webhook delivery, stored before the 200 and relayed to Temporal later."""

    __tablename__ = "inbox_events"
    __table_args__ = (
        # provider redeliveries land on this and are dropped (INSERT ... ON CONFLICT DO NOTHING)
        sa.UniqueConstraint("instance_id", "dedupe_key"),
        # the relay's queue: pending rows in arrival order
        sa.Index("idx_inbox_events_pending", "id", postgresql_where=sa.text("status = 'pending'")),
        enum_check("provider", WhatsAppProvider),
        enum_check("event_type", InboxEventType),
        enum_check("status", InboxEventStatus),
    )

    id: int | None = bigint_identity_pk()
    company_id: uuid.UUID = company_fk()
    # NULL for a team's ``routing`` row (it belongs to no number)
    instance_id: uuid.UUID | None = fk("whatsapp_instances.id", ondelete="CASCADE", nullable=True)
    provider: WhatsAppProvider | None = Field(default=None, sa_type=enum_type(WhatsAppProvider))
    event_type: InboxEventType = enum_field(InboxEventType)
    dedupe_key: str = text_field()
    payload: dict[str, Any] = jsonb_field()
    status: InboxEventStatus = enum_field(InboxEventStatus, InboxEventStatus.PENDING)
    error: str | None = text_field(nullable=True)
    received_at: datetime = timestamp_field(server_now=True)
    processed_at: datetime | None = timestamp_field()
    attempts: int = int_field()
    correlation_id: str | None = None
    # an inbound message for this conversation key, whatever its addresses say: a copy of a row
    # that reached another key first (services/conversations.forward)
    conversation_key: str | None = text_field(nullable=True)
    # a relay forwards the row until then (worker/relay.py); a relay that died lets it expire
    claimed_until: datetime | None = timestamp_field()
    # an inbound message the relay stored: its conversation's persist result, signalled again
    # (not persisted again) when the row is retried (worker/relay.py)
    persisted: dict[str, Any] | None = jsonb_field(nullable=True)
