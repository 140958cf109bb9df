"""A published flow version's note: what changed, as its publisher wrote it.

Revision ID: c7a41f2e9b03
Revises: c4a7e1f9b2d3
Create Date: 2026-12-02 17:10:00

A nullable TEXT column: adding it changes only the catalog (no table rewrite).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c7a41f2e9b03"
down_revision: str | Sequence[str] | None = "c4a7e1f9b2d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("flow_versions", sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("flow_versions", "note")
