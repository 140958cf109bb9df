import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ._fields import (
    company_fk,
    created_at_field,
    enum_check,
    enum_field,
    fk,
    jsonb_field,
    text_field,
    timestamp_field,
    updated_at_field,
    uuid_pk,
)


class TemplateStatus(StrEnum):
    """Meta's template statuses (``status`` of the Graph API, ``event`` of the webhook)."""

    APPROVED = "APPROVED"
    PENDING = "PENDING"
    IN_APPEAL = "IN_APPEAL"
    REJECTED = "REJECTED"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"
    PENDING_DELETION = "PENDING_DELETION"
    DELETED = "DELETED"
    ARCHIVED = "ARCHIVED"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    UNKNOWN = "UNKNOWN"


class Template(SQLModel, table=True):
    """A WhatsApp Business Account's message template, as the Graph API last described it."""

    __tablename__ = "message_templates"
    __table_args__ = (
        sa.UniqueConstraint("instance_id", "name", "language"),
        sa.Index("idx_message_templates_company", "company_id", "name"),
        sa.Index("idx_message_templates_graph_id", "company_id", "graph_id"),
        enum_check("status", TemplateStatus),
    )

    name: str = Field(max_length=512)
    language: str = Field(max_length=16)
    category: str = Field(default="UTILITY", max_length=32)  # MARKETING | UTILITY | AUTHENTICATION
    parameter_format: str = Field(default="POSITIONAL", max_length=16)  # POSITIONAL | NAMED
    components: list[dict[str, Any]] = jsonb_field(list)
    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    instance_id: uuid.UUID = fk("whatsapp_instances.id", ondelete="CASCADE")
    graph_id: str | None = None  # Meta's template id
    status: TemplateStatus = enum_field(TemplateStatus, TemplateStatus.PENDING)
    reason: str | None = text_field(nullable=True)  # why rejected, paused or disabled
    quality: str | None = Field(default=None, max_length=16)  # GREEN | YELLOW | RED | UNKNOWN
    synced_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
