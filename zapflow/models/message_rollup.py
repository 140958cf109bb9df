import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from ._fields import enum_type, int_field
from .message import MessageDirection, MessageSender


class MessageRollup(SQLModel, table=True):
    """Messages counted per company, UTC hour, direction and sender (services/reports.py).

    Filled up to ``RollupWatermark.rolled_until``; reports add the hours after it from
    ``messages`` itself.
    """

    __tablename__ = "message_rollups"

    # the key's first column: a report reads one company's hours
    company_id: uuid.UUID = Field(foreign_key="companies.id", ondelete="CASCADE", primary_key=True)
    hour: datetime = Field(primary_key=True)
    direction: MessageDirection = Field(primary_key=True, sa_type=enum_type(MessageDirection))
    sent_by: MessageSender = Field(primary_key=True, sa_type=enum_type(MessageSender))
    count: int = int_field()
