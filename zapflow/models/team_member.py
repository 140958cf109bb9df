import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ._fields import company_fk, created_at_field, int_field


class TeamMember(SQLModel, table=True):
    """A user in a team; ``capacity`` bounds the open conversations least-busy routing hands
    them (round-robin skips a member at capacity too)."""

    __tablename__ = "team_members"
    __table_args__ = (sa.Index("idx_team_members_user_id", "user_id"),)

    team_id: uuid.UUID = Field(foreign_key="teams.id", ondelete="CASCADE", primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", primary_key=True)
    company_id: uuid.UUID = company_fk()
    capacity: int = int_field(5)
    created_at: datetime = created_at_field()
