"""``conversations.passed_over_user_id``: the member an SLA breach took a conversation from
while it waits in its team's queue; routing hands it to anyone else (services/routing.py).

Revision ID: b8e4f0d2c6a3
Revises: a7d3e9c1b5f2
Create Date: 2026-12-03 05:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b8e4f0d2c6a3"
down_revision: str | Sequence[str] | None = "a7d3e9c1b5f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("passed_over_user_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_conversations_passed_over_user_id_users"),
        "conversations",
        "users",
        ["passed_over_user_id"],
        ["id"],
        ondelete="SET NULL",
    )


def downgrade() -> None:
    op.drop_column("conversations", "passed_over_user_id")
