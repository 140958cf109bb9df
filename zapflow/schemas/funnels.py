"""Funnels' and stages' request and response shapes, and the board."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from zapflow.schemas.deals import DealPublic
from zapflow.schemas.fields import NotNull

HexColor = Annotated[
    str,
    Field(pattern=r"^#[0-9A-Fa-f]{6}$", description="`#RRGGBB`", examples=["#22c55e"]),
    AfterValidator(str.lower),
]

MAX_STAGES = 50


class StageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    color: HexColor | None = Field(None, description="`#RRGGBB`; slate (`#64748b`) if omitted")


class StageCreate(StageIn):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Proposal", "color": "#f59e0b", "position": 1}]},
    )

    position: int | None = Field(
        None,
        ge=0,
        description="0-based; the stages from there on shift right. Omitted or past the end: last",
    )


class StageUpdate(BaseModel):
    """Omitted fields are left as they are (null is refused)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "Negotiation"}]}
    )

    name: Annotated[str | None, NotNull] = Field(None, min_length=1, max_length=80)
    color: Annotated[HexColor | None, NotNull] = None


class StageOrder(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "stage_ids": [
                        "0b0f3b5e-3c1a-4df7-8f3e-6a4c1f1e2d01",
                        "5d2c6e1a-9b7f-4e3d-a2c1-7f8e9d0a1b02",
                    ]
                }
            ]
        },
    )

    stage_ids: list[uuid.UUID] = Field(
        max_length=MAX_STAGES, description="Every stage of the funnel, once, in the new order"
    )


class FunnelCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Sales",
                    "description": "Inbound WhatsApp leads",
                    "stages": [
                        {"name": "New", "color": "#64748b"},
                        {"name": "Qualified", "color": "#3b82f6"},
                        {"name": "Proposal", "color": "#f59e0b"},
                        {"name": "Closing", "color": "#22c55e"},
                    ],
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=120)
    description: str | None = Field(None, max_length=2000)
    stages: list[StageIn] = Field(default_factory=list, max_length=MAX_STAGES)


class FunnelUpdate(BaseModel):
    """Omitted fields are left as they are; ``description`` may be set to null."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Sales"}]})

    name: Annotated[str | None, NotNull] = Field(None, min_length=1, max_length=120)
    description: str | None = Field(None, max_length=2000)


class StagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    funnel_id: uuid.UUID
    name: str
    color: str
    position: int
    created_at: datetime


class FunnelPublic(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    stages: list[StagePublic] = Field(description="By position")
    created_at: datetime
    updated_at: datetime


class BoardStage(StagePublic):
    deal_count: int = Field(description="Open deals in the stage (all of them, not only listed)")
    value_totals: dict[str, Decimal] = Field(
        description="Sum of the open deals' values by currency", examples=[{"BRL": "15000.00"}]
    )
    has_more: bool = Field(description="More open deals than listed (see `GET /deals`)")
    deals: list[DealPublic] = Field(description="The newest open deals, at most `per_stage`")


class BoardPublic(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    stages: list[BoardStage]
