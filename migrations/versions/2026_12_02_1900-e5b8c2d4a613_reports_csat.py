"""Reports and CSAT: one row per conversation closed, hourly message counts.

Revision ID: e5b8c2d4a613
Revises: b3d9f1a7c2e5
Create Date: 2026-12-02 19:00:00

``conversation_resolutions`` is written when a conversation closes (first response and
resolution times, who handled it, its rating request and answer); ``message_rollups`` counts
messages per company, UTC hour, direction and sender up to ``rollup_watermarks.rolled_until``
(services/reports.py fills them as reports are asked for); conversations get an index by
(company, created_at) for the conversations opened per day. Conversations closed before this
migration have no resolution: reports start from here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5b8c2d4a613"
down_revision: str | Sequence[str] | None = "b3d9f1a7c2e5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CSAT = "'none', 'requested', 'rated', 'done', 'ignored'"
TS = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "conversation_resolutions",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("first_response_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=False),
        sa.Column(
            "handled_by_human", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("csat_status", sa.String(32), server_default=sa.text("'none'"), nullable=False),
        sa.Column("csat_requested_at", TS, nullable=True),
        sa.Column("csat_score", sa.SmallInteger(), nullable=True),
        sa.Column("csat_comment", sa.Text(), nullable=True),
        sa.Column("csat_rated_at", TS, nullable=True),
        sa.CheckConstraint(
            f"csat_status IN ({CSAT})", name=op.f("ck_conversation_resolutions_csat_status")
        ),
        sa.CheckConstraint(
            "csat_score BETWEEN 1 AND 5", name=op.f("ck_conversation_resolutions_csat_score")
        ),
        _fk("conversation_resolutions", "company_id", "companies"),
        _fk("conversation_resolutions", "conversation_id", "conversations"),
        _fk("conversation_resolutions", "team_id", "teams", "SET NULL"),
        _fk("conversation_resolutions", "user_id", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_resolutions")),
    )
    op.create_index(
        "idx_conversation_resolutions_company_closed",
        "conversation_resolutions",
        ["company_id", "closed_at"],
    )
    op.create_index(
        "idx_conversation_resolutions_conversation_closed",
        "conversation_resolutions",
        ["conversation_id", "closed_at"],
    )
    op.create_table(
        "message_rollups",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("hour", TS, nullable=False),
        sa.Column("direction", sa.String(32), nullable=False),
        sa.Column("sent_by", sa.String(32), nullable=False),
        sa.Column("count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _fk("message_rollups", "company_id", "companies"),
        sa.PrimaryKeyConstraint(
            "company_id", "hour", "direction", "sent_by", name=op.f("pk_message_rollups")
        ),
    )
    op.create_table(
        "rollup_watermarks",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("rolled_until", TS, nullable=False),
        _fk("rollup_watermarks", "company_id", "companies"),
        sa.PrimaryKeyConstraint("company_id", name=op.f("pk_rollup_watermarks")),
    )

    op.create_index(
        "idx_conversations_company_created", "conversations", ["company_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("idx_conversations_company_created", table_name="conversations")
    op.drop_table("rollup_watermarks")
    op.drop_table("message_rollups")
    op.drop_table("conversation_resolutions")
