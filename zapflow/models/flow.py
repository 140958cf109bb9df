import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

from ._fields import (
    company_fk,
    created_at_field,
    enum_check,
    enum_field,
    jsonb_field,
    text_field,
    updated_at_field,
    uuid_pk,
)


class FlowStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class Flow(SQLModel, table=True):
    __tablename__ = "flows"
    __table_args__ = (
        sa.Index("idx_flows_company_id", "company_id"),
        enum_check("status", FlowStatus),
    )

    name: str
    description: str | None = text_field(nullable=True)
    draft_definition: dict[str, Any] = jsonb_field()  # the graph being edited
    triggers: list[dict[str, Any]] = jsonb_field(list)

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    status: FlowStatus = enum_field(FlowStatus, FlowStatus.DRAFT)
    current_version: int | None = None  # flow_versions.version that new runs use
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
