"""``inbox_events.persisted``: what the relay's persist of an inbound message's conversation
returned, written in the same transaction as the messages (worker/relay.py). A relay that
retries the row (the signal after the commit was refused, or its relay died) signals that
result again instead of persisting the row a second time.

Revision ID: c3f1a9e7d2b4
Revises: d4a0b2f8e3c5
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c3f1a9e7d2b4"
down_revision: str | Sequence[str] | None = "d4a0b2f8e3c5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("inbox_events", sa.Column("persisted", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("inbox_events", "persisted")
