"""``inbox_events.conversation_key``: an inbound message row copied for the conversation it
belongs to, when it first reached another key of the same person (two first messages of one
person relayed at once, or a key merged away meanwhile: services/conversations.forward). The
relay signals that conversation's workflow whatever the row's addresses say.

Revision ID: f2c8a4d6b1e9
Revises: f2c6a8d4b91e
Create Date: 2026-12-02 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f2c8a4d6b1e9"
down_revision: str | Sequence[str] | None = "f2c6a8d4b91e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("inbox_events", sa.Column("conversation_key", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("inbox_events", "conversation_key")
