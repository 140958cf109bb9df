import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ._fields import (
    company_fk,
    created_at_field,
    enum_check,
    enum_field,
    fk,
    str_field,
    timestamp_field,
    updated_at_field,
    uuid_pk,
)


class DealStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class Deal(SQLModel, table=True):
    __tablename__ = "deals"
    __table_args__ = (
        sa.Index("idx_deals_company_id", "company_id"),
        # the seed's index, widened so a stage's deals come out already in list order
        sa.Index("idx_deals_stage_id", "stage_id", sa.text("created_at DESC"), sa.text("id DESC")),
        sa.Index("idx_deals_contact_id", "contact_id"),
        sa.Index("idx_deals_status", "status"),
        sa.Index("idx_deals_company_status", "company_id", "status"),
        sa.Index("idx_deals_funnel_id", "funnel_id"),
        sa.Index(
            "idx_deals_company_created",
            "company_id",
            sa.text("created_at DESC"),
            sa.text("id DESC"),
        ),
        sa.Index(
            "idx_deals_board",
            "funnel_id",
            "stage_id",
            sa.text("created_at DESC"),
            postgresql_where=sa.text("status = 'open'"),
        ),
        enum_check("status", DealStatus),
    )

    title: str
    value: Decimal = Field(
        default=Decimal("0"),
        max_digits=14,
        decimal_places=2,
        sa_column_kwargs={"server_default": sa.text("0")},
    )
    currency: str = str_field("BRL", min_length=3, max_length=3)  # ISO 4217
    funnel_id: uuid.UUID = fk("funnels.id", ondelete="CASCADE")
    # No ON DELETE: a stage that still holds deals cannot be deleted (move them first).
    stage_id: uuid.UUID = fk("stages.id")
    contact_id: uuid.UUID = fk("contacts.id", ondelete="CASCADE")
    owner_user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    status: DealStatus = enum_field(DealStatus, DealStatus.OPEN)
    closed_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
