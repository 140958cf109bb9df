import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import SQLModel

from ._fields import company_fk, created_at_field, enum_check, enum_field, fk, uuid_pk


class IdentityKind(StrEnum):
    """The names WhatsApp gives one person: ``phone`` (E.164), ``jid`` (a user or group JID),
    ``lid`` (``<id>@lid``), ``bsuid`` (Cloud API business-scoped user id, ``BR.1502…``),
    ``username`` (``@ana.lima``: shown, never used to find a contact: usernames change hands)."""

    PHONE = "phone"
    JID = "jid"
    LID = "lid"
    BSUID = "bsuid"
    USERNAME = "username"


class ContactIdentity(SQLModel, table=True):
    """One name of one contact; a name belongs to one contact of a company at most."""

    __tablename__ = "contact_identities"
    __table_args__ = (
        sa.UniqueConstraint("company_id", "kind", "value"),
        sa.Index("idx_contact_identities_contact_id", "contact_id"),
        enum_check("kind", IdentityKind),
    )

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    contact_id: uuid.UUID = fk("contacts.id", ondelete="CASCADE")
    kind: IdentityKind = enum_field(IdentityKind)
    value: str
    created_at: datetime = created_at_field()
