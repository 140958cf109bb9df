"""``canned_responses.buttons``: reply buttons a canned response sends its text with (an
interactive button message; numbered text on Evolution).

Revision ID: c3f9a1e7d2b4
Revises: b8e4f0d2c6a3
Create Date: 2026-12-03 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "c3f9a1e7d2b4"
down_revision: str | Sequence[str] | None = "b8e4f0d2c6a3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "canned_responses",
        sa.Column("buttons", JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
    )


def downgrade() -> None:
    op.drop_column("canned_responses", "buttons")
