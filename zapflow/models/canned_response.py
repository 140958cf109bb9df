import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ._fields import (
    company_fk,
    created_at_field,
    fk,
    jsonb_field,
    text_field,
    updated_at_field,
    uuid_pk,
)


class CannedResponse(SQLModel, table=True):
    """A saved reply: the company's (``user_id`` NULL) or one user's own."""

    __tablename__ = "canned_responses"
    __table_args__ = (
        # one shortcut per scope: NULLS NOT DISTINCT makes the company's scope one scope
        sa.Index(
            "uq_canned_responses_scope_shortcut",
            "company_id",
            "user_id",
            "shortcut",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
    )

    shortcut: str = Field(max_length=32)  # typed as "/shortcut" in the composer
    body: str = text_field()  # may hold variables: {{contact.name}}
    # media sent after the text, each the shape of a message's ``media`` (url, kind, ...)
    attachments: list[dict[str, Any]] = jsonb_field(list)
    # reply buttons ({id, title}): with them the text goes as an interactive button message
    buttons: list[dict[str, Any]] = jsonb_field(list)

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    user_id: uuid.UUID | None = fk("users.id", ondelete="CASCADE", nullable=True)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
