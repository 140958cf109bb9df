import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from ._fields import company_fk, created_at_field, text_field


class OptOut(SQLModel, table=True):
    """A contact who asked not to receive broadcasts: never in a campaign's audience."""

    __tablename__ = "contact_opt_outs"

    contact_id: uuid.UUID = Field(foreign_key="contacts.id", ondelete="CASCADE", primary_key=True)
    company_id: uuid.UUID = company_fk()
    source: str = Field(max_length=16)  # api | keyword
    reason: str | None = text_field(nullable=True)  # the keyword, or the operator's note
    created_at: datetime = created_at_field()
