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
    jsonb_field,
    updated_at_field,
    uuid_pk,
)


class WhatsAppProvider(StrEnum):
    CLOUD = "cloud"
    EVOLUTION = "evolution"


class InstanceStatus(StrEnum):
    CONNECTED = "connected"
    CONNECTING = "connecting"  # Evolution: waiting for the QR code to be scanned
    DISCONNECTED = "disconnected"
    UNKNOWN = "unknown"


class WhatsAppInstance(SQLModel, table=True):
    """A connected number. The secrets are stored as given: never return them from the API."""

    __tablename__ = "whatsapp_instances"
    # unique per company: a global constraint would tell one company (by a 409) which numbers
    # another has connected, and let it block them; webhooks find the instance by URL token
    __table_args__ = (
        sa.UniqueConstraint("company_id", "provider", "phone_number_id"),
        sa.UniqueConstraint("company_id", "provider", "evolution_instance"),
        sa.Index("idx_whatsapp_instances_company_id", "company_id"),
        enum_check("provider", WhatsAppProvider),
        enum_check("status", InstanceStatus),
    )

    name: str
    provider: WhatsAppProvider = enum_field(WhatsAppProvider)
    phone_number_id: str | None = None  # Cloud API
    evolution_instance: str | None = None  # Evolution API instance name
    display_phone: str | None = None
    settings: dict[str, Any] = jsonb_field()

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    access_token: str | None = Field(default=None, sa_type=sa.Text)  # Cloud API bearer token
    app_secret: str | None = None  # Cloud API app secret (X-Hub-Signature-256 HMAC)
    api_key: str | None = None  # Evolution API apikey
    verify_token: str  # Cloud API webhook verification handshake
    webhook_secret: str = Field(unique=True)  # random token identifying the webhook URL
    status: InstanceStatus = enum_field(InstanceStatus, InstanceStatus.UNKNOWN)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
