"""Shapes of a campaign's audience before sending: the preview request and answer (counts,
exclusions by reason, a sample with each one's message), the cost estimate, and the CSV
audience's upload result."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from zapflow.schemas.campaigns import AudienceIn, MessageIn
from zapflow.schemas.contacts import ImportReport

ESTIMATE_EXAMPLE: JsonDict = {
    "pricing_category": "utility",
    "recipients": 1200,
    "inside_window": 300,
    "outside_window": 900,
    "by_category": {"marketing": 0, "utility": 900, "authentication": 0, "service": 300},
    "billable": 900,
    "free": 300,
    "undeliverable": 0,
    "note": "utility templates inside the 24-hour window are free",
}


class CostEstimate(BaseModel):
    """Recipients by Meta's pricing category: counted, not charged, no price quoted."""

    model_config = ConfigDict(json_schema_extra={"examples": [ESTIMATE_EXAMPLE]})

    pricing_category: str | None = Field(
        description="The template's (marketing, utility, authentication); null for a text"
    )
    recipients: int = Field(description="Contacts the campaign sends to (exclusions left out)")
    inside_window: int = Field(description="Of them, wrote to the number in the last 24 hours")
    outside_window: int
    by_category: dict[str, int] = Field(
        description="marketing / utility / authentication (billed by Meta) and service (free)"
    )
    billable: int = Field(description="Messages Meta bills")
    free: int = Field(description="Service messages: free inside the 24-hour window")
    undeliverable: int = Field(description="Free-form text outside the window (Meta refuses it)")
    note: str


class PreviewRequest(BaseModel):
    """A draft campaign's number, audience and (optionally) message."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "instance_id": "5e0c2b1a-7f7e-4c55-8a3b-2c1d0e9f8a7b",
                    "audience": {"tags": ["vip"]},
                    "message": {
                        "template": {"name": "promo_natal", "language": "pt_BR"},
                        "parameters": {"body": [{"field": "name", "fallback": "cliente"}]},
                    },
                    "sample": 3,
                }
            ]
        },
    )

    instance_id: uuid.UUID
    audience: AudienceIn = Field(default_factory=AudienceIn)
    message: MessageIn | None = Field(None, description="Fills each sample contact's message")
    sample: int = Field(3, ge=0, le=10, description="How many recipients to show")


class SampleContact(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    phone_number: str | None
    email: str | None
    tags: list[str]
    custom_fields: dict[str, Any]
    message: str | None = Field(None, description="The message as this contact would read it")
    problem: str | None = Field(None, description="Why this contact's message cannot be built")


class AudiencePreview(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "contacts": 1250,
                    "recipients": 1200,
                    "excluded": {"opted_out": 42, "no_phone": 8},
                    "sample": [
                        {
                            "id": "0b8f6c9e-3c1a-4a53-9d55-0f1f0c3f7a10",
                            "name": "Maria Souza",
                            "phone_number": "+5511999990001",
                            "email": None,
                            "tags": ["vip"],
                            "custom_fields": {"cupom": "NATAL10"},
                            "message": "Oi Maria Souza, temos novidades!",
                            "problem": None,
                        }
                    ],
                    "estimate": ESTIMATE_EXAMPLE,
                }
            ]
        }
    )

    contacts: int = Field(description="Contacts the audience's filter finds")
    recipients: int = Field(description="Of them, the ones the campaign would send to")
    excluded: dict[str, int] = Field(description="Left out, by reason: opted_out, no_phone")
    sample: list[SampleContact]
    estimate: CostEstimate | None = Field(description="With a message: its category decides")


class AudienceUpload(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tag": "csv-3f5a9c1e2b7d",
                    "audience": {"tags": ["csv-3f5a9c1e2b7d"]},
                    "report": {
                        "created": 120,
                        "updated": 8,
                        "skipped": 0,
                        "errors": [
                            {"row": 7, "field": "phone_number", "message": "Field required"}
                        ],
                        "errors_omitted": 0,
                    },
                }
            ]
        }
    )

    tag: str = Field(description="The list's tag, now on every contact of the file")
    audience: AudienceIn = Field(description="Give it as the campaign's `audience`")
    report: ImportReport
