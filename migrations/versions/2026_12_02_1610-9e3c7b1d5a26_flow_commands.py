"""Flow commands: ``flow_start`` and ``flow_cancel`` inbox rows.

Revision ID: 9e3c7b1d5a26
Revises: 9e3c5a7b2d14
Create Date: 2026-12-02 16:10:00

Starting and cancelling a flow run from the API (or a schedule) goes through the durable inbox,
committed with the run's row, like replies and follow-up changes: the relay signals Temporal.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9e3c7b1d5a26"
down_revision: str | Sequence[str] | None = "9e3c5a7b2d14"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_TYPES = "'message', 'status', 'outbound', 'followup', 'other'"
NEW_TYPES = "'message', 'status', 'outbound', 'followup', 'flow_start', 'flow_cancel', 'other'"


def _event_types(values: str) -> None:
    op.drop_constraint(op.f("ck_inbox_events_event_type"), "inbox_events", type_="check")
    op.create_check_constraint(
        op.f("ck_inbox_events_event_type"), "inbox_events", f"event_type IN ({values})"
    )


def upgrade() -> None:
    _event_types(NEW_TYPES)


def downgrade() -> None:
    op.execute("DELETE FROM inbox_events WHERE event_type IN ('flow_start', 'flow_cancel')")
    _event_types(OLD_TYPES)
