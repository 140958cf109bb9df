"""Campaign commands through the inbox; campaigns that send only inside business hours.

Revision ID: d3b8f2a6c1e7
Revises: b5d2e8f1a3c7
Create Date: 2026-12-02 19:00:00

A campaign's start, pause, resume and cancel are ``campaign`` inbox rows committed with the
campaign's change (the relay starts or signals its workflow), so nothing acknowledged is lost
between the commit and Temporal. ``business_hours_only`` keeps a campaign's sends inside the
company's opening hours.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d3b8f2a6c1e7"
down_revision: str | Sequence[str] | None = "b5d2e8f1a3c7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# after the mark-read migration (b5d2e8f1a3c7), which added 'read'
OLD_TYPES = (
    "'message', 'status', 'outbound', 'followup', 'flow_start', 'flow_cancel', 'read', 'other'"
)
NEW_TYPES = f"{OLD_TYPES}, 'campaign'"


def _event_types(values: str) -> None:
    op.drop_constraint(op.f("ck_inbox_events_event_type"), "inbox_events", type_="check")
    op.create_check_constraint(
        op.f("ck_inbox_events_event_type"), "inbox_events", f"event_type IN ({values})"
    )


def upgrade() -> None:
    _event_types(NEW_TYPES)
    op.add_column(
        "campaigns",
        sa.Column("business_hours_only", sa.Boolean(), server_default=sa.text("false"),
                  nullable=False),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_column("campaigns", "business_hours_only")
    op.execute("DELETE FROM inbox_events WHERE event_type = 'campaign'")
    _event_types(OLD_TYPES)
