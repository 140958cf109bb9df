"""``canned_responses.attachments``: media a canned response sends with its text (URLs, the
shape of a message's ``media``).

Revision ID: a7d3e9c1b5f2
Revises: f2c8a4d6b1e9
Create Date: 2026-12-03 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "a7d3e9c1b5f2"
down_revision: str | Sequence[str] | None = "f2c8a4d6b1e9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "canned_responses",
        sa.Column("attachments", JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
    )


def downgrade() -> None:
    op.drop_column("canned_responses", "attachments")
