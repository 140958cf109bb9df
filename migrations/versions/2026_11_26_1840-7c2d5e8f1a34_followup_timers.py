"""Follow-up timers: the ``followup`` inbox event and the index that finishes a follow-up.

Revision ID: 7c2d5e8f1a34
Revises: 3f9a1c2e7b10
Create Date: 2026-11-26 18:40:00

A ``followup`` inbox row tells a conversation's workflow to reload its follow-up timers; the
partial index on ``message_id`` lets a sent or failed message find its follow-up without a scan.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c2d5e8f1a34"
down_revision: str | Sequence[str] | None = "3f9a1c2e7b10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_TYPES = "'message', 'status', 'outbound', 'other'"
NEW_TYPES = "'message', 'status', 'outbound', 'followup', 'other'"


def _event_types(values: str) -> None:
    op.drop_constraint(op.f("ck_inbox_events_event_type"), "inbox_events", type_="check")
    op.create_check_constraint(
        op.f("ck_inbox_events_event_type"), "inbox_events", f"event_type IN ({values})"
    )


def upgrade() -> None:
    _event_types(NEW_TYPES)
    op.create_index(
        "idx_followup_queue_message_id",
        "followup_queue",
        ["message_id"],
        postgresql_where=sa.text("message_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("idx_followup_queue_message_id", table_name="followup_queue")
    op.execute("DELETE FROM inbox_events WHERE event_type = 'followup'")
    _event_types(OLD_TYPES)
