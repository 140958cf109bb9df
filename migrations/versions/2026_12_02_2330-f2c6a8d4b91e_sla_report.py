"""SLA met % in the reports: who a target was decided for, an index by the decision; a team's
own CSAT settings.

Revision ID: f2c6a8d4b91e
Revises: e5b8c2d4a613
Create Date: 2026-12-02 23:30:00

``sla_targets.user_id`` is the person a target was met or missed by: the agent whose reply
completed a first response, the assignee when the conversation closed or the timer breached
(NULL: nobody's). The reports count targets on the day they were decided (met: completed;
missed: breached), so the index by (company, start), which no query read, gives way to one by
(company, decision) over the decided targets only. ``teams.csat`` is a team's rating request
(NULL: the company's ``settings.csat``, as before).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "f2c6a8d4b91e"
down_revision: str | Sequence[str] | None = "e5b8c2d4a613"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DECIDED = sa.text("coalesce(breached_at, completed_at)")


def upgrade() -> None:
    op.add_column("teams", sa.Column("csat", JSONB(), nullable=True))
    op.add_column("sla_targets", sa.Column("user_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_sla_targets_user_id_users"),
        "sla_targets",
        "users",
        ["user_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.drop_index("idx_sla_targets_company_started", table_name="sla_targets")
    op.create_index(
        "idx_sla_targets_company_decided",
        "sla_targets",
        ["company_id", DECIDED],
        postgresql_where=sa.text("status IN ('met', 'missed')"),
    )


def downgrade() -> None:
    op.drop_index("idx_sla_targets_company_decided", table_name="sla_targets")
    op.create_index("idx_sla_targets_company_started", "sla_targets", ["company_id", "started_at"])
    op.drop_constraint(op.f("fk_sla_targets_user_id_users"), "sla_targets", type_="foreignkey")
    op.drop_column("sla_targets", "user_id")
    op.drop_column("teams", "csat")
