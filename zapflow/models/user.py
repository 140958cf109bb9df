import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ._fields import bool_field, company_fk, created_at_field, enum_check, enum_field, uuid_pk


class UserRole(StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"  # an agent who also runs teams and the company's canned responses
    AGENT = "agent"


class Availability(StrEnum):
    """Whether routing may hand the user new conversations."""

    AVAILABLE = "available"
    AWAY = "away"


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        sa.UniqueConstraint("company_id", "email"),
        enum_check("role", UserRole),
        enum_check("availability", Availability),
    )

    email: str  # stored lower-cased by the service; unique per company
    name: str
    role: UserRole = enum_field(UserRole, UserRole.AGENT)
    is_active: bool = bool_field(True)

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    password_hash: str | None = Field(default=None)  # argon2id (services/passwords.py)
    availability: Availability = enum_field(Availability, Availability.AWAY)
    created_at: datetime = created_at_field()
