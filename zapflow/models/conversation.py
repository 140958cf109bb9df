import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ._fields import (
    bool_field,
    company_fk,
    created_at_field,
    enum_check,
    enum_field,
    fk,
    int_field,
    timestamp_field,
    updated_at_field,
    uuid_pk,
)


class ConversationStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class ConversationPriority(StrEnum):
    NORMAL = "normal"
    HIGH = "high"  # raised by an SLA escalation


class Conversation(SQLModel, table=True):
    """One chat of one instance with one remote jid (a contact, or a group)."""

    __tablename__ = "conversations"
    __table_args__ = (
        sa.UniqueConstraint("instance_id", "remote_jid"),
        sa.Index("idx_conversations_company_id", "company_id"),
        sa.Index("idx_conversations_instance_id", "instance_id"),
        sa.Index("idx_conversations_remote_jid", "remote_jid"),
        sa.Index("idx_conversations_last_message", sa.text("last_message_at DESC")),
        sa.Index(
            "idx_conversations_is_paused",
            "is_paused",
            postgresql_where=sa.text("is_paused = true"),
        ),
        # inbox list: WHERE company_id = ? ORDER BY last_message_at DESC, id DESC (cursor paging)
        sa.Index(
            "idx_conversations_company_last_message",
            "company_id",
            sa.text("last_message_at DESC"),
            sa.text("id DESC"),
        ),
        sa.Index("idx_conversations_contact_id", "contact_id"),
        # reports: conversations opened per day (services/reports.py), read from the index only
        sa.Index("idx_conversations_company_created", "company_id", "created_at"),
        # a team's queue, in arrival order (routing reads its head)
        sa.Index(
            "idx_conversations_waiting",
            "team_id",
            "waiting_since",
            "id",
            postgresql_where=sa.text("waiting_since IS NOT NULL"),
        ),
        # an agent's open load (least-busy routing, capacity) and the "mine" filter
        sa.Index(
            "idx_conversations_assignee_open",
            "assigned_user_id",
            postgresql_where=sa.text("status = 'open' AND assigned_user_id IS NOT NULL"),
        ),
        enum_check("status", ConversationStatus),
        enum_check("priority", ConversationPriority),
    )

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    instance_id: uuid.UUID = fk("whatsapp_instances.id", ondelete="CASCADE")
    contact_id: uuid.UUID = fk("contacts.id", ondelete="CASCADE")
    remote_jid: str
    status: ConversationStatus = enum_field(ConversationStatus, ConversationStatus.OPEN)
    is_paused: bool = bool_field(False)  # automation (AI, flows) paused: a human has taken over
    assigned_user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)
    team_id: uuid.UUID | None = fk("teams.id", ondelete="SET NULL", nullable=True)
    # queued for a human of the team since then; NULL once assigned (services/routing.py)
    waiting_since: datetime | None = timestamp_field()
    # the member an SLA breach took it from while it waits: routing hands it to anyone else
    passed_over_user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)
    priority: ConversationPriority = enum_field(ConversationPriority, ConversationPriority.NORMAL)
    sla_breached_at: datetime | None = timestamp_field()  # a target of its SLA is past due
    # never NULL: the inbox pages by it (keyset), and a new conversation starts "now"
    last_message_at: datetime = timestamp_field(server_now=True)
    last_inbound_at: datetime | None = timestamp_field()  # opens WhatsApp's 24-hour window
    last_message_preview: str | None = Field(default=None, sa_type=sa.Text)
    unread_count: int = int_field()
    message_count: int = int_field()
    workflow_id: str | None = None  # Temporal ConversationWorkflow id
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
