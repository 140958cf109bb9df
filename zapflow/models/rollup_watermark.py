import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel


class RollupWatermark(SQLModel, table=True):
    """How far a company's ``message_rollups`` are filled: every hour before ``rolled_until``."""

    __tablename__ = "rollup_watermarks"

    company_id: uuid.UUID = Field(foreign_key="companies.id", ondelete="CASCADE", primary_key=True)
    rolled_until: datetime = Field()
