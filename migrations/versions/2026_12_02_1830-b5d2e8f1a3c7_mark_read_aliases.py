"""``read`` inbox rows (an agent opened a conversation with unread messages and the company marks
them read at WhatsApp, with the typing indicator: the relay starts a best-effort
``MarkReadWorkflow`` for each); ``contacts.aliases`` dropped, the identities being the one place a
contact's WhatsApp names are kept (the API's ``aliases`` is read from them).

Revision ID: b5d2e8f1a3c7
Revises: a7c3e9d2f514
Create Date: 2026-12-02 18:30:00

Aliases written since the identities' backfill were attached as identities by the same code; the
backfill runs once more so that none is lost (older contact first; a name another contact
holds stays with it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "b5d2e8f1a3c7"
down_revision: str | Sequence[str] | None = "a7c3e9d2f514"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_TYPES = "'message', 'status', 'outbound', 'followup', 'flow_start', 'flow_cancel', 'other'"
NEW_TYPES = f"{OLD_TYPES}, 'read'"

BACKFILL = r"""
INSERT INTO contact_identities (company_id, contact_id, kind, value)
SELECT company_id, contact_id, kind, value FROM (
    SELECT c.company_id, c.id AS contact_id,
           CASE WHEN a LIKE '%@lid' THEN 'lid'
                WHEN a LIKE '%@bsuid' OR a ~ '^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$' THEN 'bsuid'
                ELSE 'jid' END AS kind,
           CASE WHEN a LIKE '%@bsuid' THEN split_part(a, '@', 1) ELSE a END AS value,
           c.created_at
      FROM contacts c, jsonb_array_elements_text(c.aliases) AS a
) AS found
ORDER BY created_at, contact_id
ON CONFLICT (company_id, kind, value) DO NOTHING
"""

RESTORE = """
UPDATE contacts c SET aliases = found.aliases FROM (
    SELECT contact_id, jsonb_agg(value ORDER BY created_at, value) AS aliases
      FROM contact_identities WHERE kind IN ('jid', 'lid', 'bsuid') GROUP BY contact_id
) AS found WHERE found.contact_id = c.id
"""


def _event_types(values: str) -> None:
    op.drop_constraint(op.f("ck_inbox_events_event_type"), "inbox_events", type_="check")
    op.create_check_constraint(
        op.f("ck_inbox_events_event_type"), "inbox_events", f"event_type IN ({values})"
    )


def upgrade() -> None:
    _event_types(NEW_TYPES)
    op.execute(BACKFILL)
    op.drop_index("idx_contacts_aliases", table_name="contacts")
    op.drop_column("contacts", "aliases")


def downgrade() -> None:
    op.add_column(
        "contacts",
        sa.Column("aliases", JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
    )
    op.execute(RESTORE)
    op.create_index(
        "idx_contacts_aliases",
        "contacts",
        ["aliases"],
        postgresql_using="gin",
        postgresql_ops={"aliases": "jsonb_path_ops"},
    )
    op.execute("DELETE FROM inbox_events WHERE event_type = 'read'")
    _event_types(OLD_TYPES)
