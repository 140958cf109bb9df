import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

from ._fields import (
    company_fk,
    enum_check,
    enum_field,
    fk,
    jsonb_field,
    text_field,
    timestamp_field,
    uuid_pk,
)


class FlowRunStatus(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class FlowRun(SQLModel, table=True):
    """One execution of a flow version in one conversation (mirrors its FlowWorkflow)."""

    __tablename__ = "flow_runs"
    __table_args__ = (
        sa.Index("idx_flow_runs_company_started", "company_id", sa.text("started_at DESC")),
        sa.Index("idx_flow_runs_flow_id", "flow_id"),
        sa.Index("idx_flow_runs_conversation_id", "conversation_id"),
        enum_check("status", FlowRunStatus),
    )

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    flow_id: uuid.UUID = fk("flows.id", ondelete="CASCADE")
    flow_version: int
    conversation_id: uuid.UUID = fk("conversations.id", ondelete="CASCADE")
    contact_id: uuid.UUID = fk("contacts.id", ondelete="CASCADE")
    status: FlowRunStatus = enum_field(FlowRunStatus, FlowRunStatus.RUNNING)
    current_node_id: str | None = None
    variables: dict[str, Any] = jsonb_field()
    transcript: list[dict[str, Any]] = jsonb_field(list)
    workflow_id: str | None = None
    error: str | None = text_field(nullable=True)
    started_at: datetime = timestamp_field(server_now=True)
    ended_at: datetime | None = timestamp_field()
