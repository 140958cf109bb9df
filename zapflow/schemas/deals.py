"""Deals' shapes: the create, update and move bodies, the stage history, and the public shape
shared by the API responses and the ``deal.*`` live events."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from zapflow.models import DealStatus
from zapflow.schemas.contacts import ContactRef
from zapflow.schemas.fields import NotNull


class DealStageRef(BaseModel):
    """A deal's stage, as deal rows show it."""

    id: uuid.UUID
    name: str
    color: str


class DealPublic(BaseModel):
    """A deal as the API returns it; also the data of ``deal.*`` live events."""

    id: uuid.UUID
    title: str
    value: Decimal = Field(description='A decimal string with 2 places, e.g. `"1500.00"`')
    currency: str
    status: DealStatus
    funnel_id: uuid.UUID
    stage_id: uuid.UUID
    contact_id: uuid.UUID
    owner_user_id: uuid.UUID | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    contact: ContactRef
    stage: DealStageRef


CENTS = Decimal("0.01")


def _to_cents(value: Decimal) -> Decimal:
    return value.quantize(CENTS)


Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=2, examples=["1500.00"]),
    AfterValidator(_to_cents),
]


Currency = Annotated[
    str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code", examples=["BRL", "USD"])
]


class DealCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "50 cases of coffee",
                    "value": "1500.00",
                    "currency": "BRL",
                    "funnel_id": "9a4c1f1e-2d01-4df7-8f3e-0b0f3b5e3c1a",
                    "stage_id": "5d2c6e1a-9b7f-4e3d-a2c1-7f8e9d0a1b02",
                    "contact_id": "1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b",
                }
            ]
        },
    )

    title: str = Field(min_length=1, max_length=200)
    value: Money = Decimal("0.00")
    currency: Currency = "BRL"
    funnel_id: uuid.UUID
    stage_id: uuid.UUID | None = Field(
        None, description="A stage of the funnel; its first if omitted"
    )
    contact_id: uuid.UUID
    owner_user_id: uuid.UUID | None = Field(
        None, description="Defaults to the API key's user (none for a company key)"
    )


class DealUpdate(BaseModel):
    """Omitted fields are left as they are; only ``owner_user_id`` may be set to null. Stage and
    status change through ``/move``, ``/won``, ``/lost`` and ``/reopen``."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"value": "1800.00", "title": "60 cases"}]}
    )

    title: Annotated[str | None, NotNull] = Field(None, min_length=1, max_length=200)
    value: Annotated[Money | None, NotNull] = None
    currency: Annotated[Currency | None, NotNull] = None
    contact_id: Annotated[uuid.UUID | None, NotNull] = None
    owner_user_id: uuid.UUID | None = None


class DealMove(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"stage_id": "5d2c6e1a-9b7f-4e3d-a2c1-7f8e9d0a1b02"}]},
    )

    stage_id: uuid.UUID = Field(description="Another stage of the deal's funnel")


class DealStageChangePublic(BaseModel):
    id: uuid.UUID
    deal_id: uuid.UUID
    from_stage: DealStageRef | None = Field(description="None for the stage the deal started in")
    to_stage: DealStageRef
    changed_by_user_id: uuid.UUID | None
    created_at: datetime
