"""Contact identities (phone, JID, @lid, BSUID, username), one per kind and value and company;
the audit record of contact merges.

Revision ID: a7c3e9d1f5b2
Revises: c7a41f2e9b03
Create Date: 2026-12-02 17:10:00

Backfill: every contact's phone, lid and WhatsApp aliases become identities (an alias ending in
``@lid`` is a lid, ``<bsuid>@bsuid`` or a bare ``BR.…`` a BSUID, any other a JID). Where two
contacts of a company share one (data from before the constraint), the older contact keeps it;
``GET /contacts/duplicates`` lists such pairs for a merge.

A trigger keeps the ``phone`` and ``lid`` identities in step with the columns of the same name,
whatever writes them (API, CSV import, flows, the seed's COPY): a new value is added (unless
another contact holds it), the replaced one removed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "a7c3e9d1f5b2"
down_revision: str | Sequence[str] | None = "c7a41f2e9b03"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "'phone', 'jid', 'lid', 'bsuid', 'username'"

BACKFILL = r"""
INSERT INTO contact_identities (company_id, contact_id, kind, value)
SELECT company_id, contact_id, kind, value FROM (
    SELECT c.company_id, c.id AS contact_id, 'phone' AS kind, c.phone_number AS value,
           c.created_at
      FROM contacts c WHERE c.phone_number IS NOT NULL
    UNION ALL
    SELECT c.company_id, c.id, 'lid', c.lid, c.created_at FROM contacts c WHERE c.lid IS NOT NULL
    UNION ALL
    SELECT c.company_id, c.id,
           CASE WHEN a LIKE '%@lid' THEN 'lid'
                WHEN a LIKE '%@bsuid' OR a ~ '^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$' THEN 'bsuid'
                ELSE 'jid' END,
           CASE WHEN a LIKE '%@bsuid' THEN split_part(a, '@', 1) ELSE a END,
           c.created_at
      FROM contacts c, jsonb_array_elements_text(c.aliases) AS a
) AS found
ORDER BY created_at, contact_id
ON CONFLICT (company_id, kind, value) DO NOTHING
"""

SYNC_FUNCTION = """
CREATE FUNCTION contacts_sync_identities() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.phone_number IS DISTINCT FROM NEW.phone_number
       AND OLD.phone_number IS NOT NULL THEN
        DELETE FROM contact_identities WHERE company_id = NEW.company_id AND kind = 'phone'
           AND value = OLD.phone_number AND contact_id = NEW.id;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.lid IS DISTINCT FROM NEW.lid AND OLD.lid IS NOT NULL THEN
        DELETE FROM contact_identities WHERE company_id = NEW.company_id AND kind = 'lid'
           AND value = OLD.lid AND contact_id = NEW.id;
    END IF;
    IF NEW.phone_number IS NOT NULL THEN
        INSERT INTO contact_identities (company_id, contact_id, kind, value)
        VALUES (NEW.company_id, NEW.id, 'phone', NEW.phone_number)
        ON CONFLICT (company_id, kind, value) DO NOTHING;
    END IF;
    IF NEW.lid IS NOT NULL THEN
        INSERT INTO contact_identities (company_id, contact_id, kind, value)
        VALUES (NEW.company_id, NEW.id, 'lid', NEW.lid)
        ON CONFLICT (company_id, kind, value) DO NOTHING;
    END IF;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    _create_identities()
    op.execute(BACKFILL)
    op.execute(SYNC_FUNCTION)
    op.execute(
        "CREATE TRIGGER contacts_sync_identities AFTER INSERT OR UPDATE OF phone_number, lid"
        " ON contacts FOR EACH ROW EXECUTE FUNCTION contacts_sync_identities()"
    )
    _create_merges()


def _create_identities() -> None:
    op.create_table(
        "contact_identities",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(f"kind IN ({KINDS})", name=op.f("ck_contact_identities_kind")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_contact_identities_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_contact_identities_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_identities")),
        sa.UniqueConstraint(
            "company_id", "kind", "value", name=op.f("uq_contact_identities_company_id_kind_value")
        ),
    )
    op.create_index("idx_contact_identities_contact_id", "contact_identities", ["contact_id"])


def _create_merges() -> None:
    op.create_table(
        "contact_merges",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("survivor_id", sa.Uuid(), nullable=False),
        sa.Column("merged_id", sa.Uuid(), nullable=False),
        sa.Column("merged_contact", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("moved", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("conflicts", JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_contact_merges_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["survivor_id"],
            ["contacts.id"],
            name=op.f("fk_contact_merges_survivor_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_contact_merges_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_merges")),
    )
    op.create_index("idx_contact_merges_survivor", "contact_merges", ["company_id", "survivor_id"])


def downgrade() -> None:
    op.drop_index("idx_contact_merges_survivor", table_name="contact_merges")
    op.drop_table("contact_merges")
    op.execute("DROP TRIGGER contacts_sync_identities ON contacts")
    op.execute("DROP FUNCTION contacts_sync_identities()")
    op.drop_index("idx_contact_identities_contact_id", table_name="contact_identities")
    op.drop_table("contact_identities")
