"""Inbox claims: a relay leases the rows it forwards (``claimed_until``) instead of holding their
locks across its Temporal calls.

Revision ID: 5b8e2d4c9f61
Revises: b4e1d7a9c3f2
Create Date: 2026-12-02 10:15:00

A relay claims pending rows in a short transaction, signals Temporal outside it, then marks them
processed; a relay that dies leaves its claim to expire, and another takes the rows again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b8e2d4c9f61"
down_revision: str | Sequence[str] | None = "b4e1d7a9c3f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "inbox_events", sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("inbox_events", "claimed_until")
