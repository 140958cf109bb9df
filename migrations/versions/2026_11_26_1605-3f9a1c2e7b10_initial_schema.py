"""Initial schema: every zapflow table, index and extension.

Revision ID: 3f9a1c2e7b10
Revises:
Create Date: 2026-11-26 16:05:00

Multi-tenant by ``company_id`` (ON DELETE CASCADE from ``companies``). Enumerations are VARCHAR
with named CHECK constraints, not Postgres ENUM types: adding a value is a constraint swap.

The vector index is HNSW, not the seed's ivfflat. ivfflat clusters the rows that exist when the
index is built: built here, on an empty table, its centroids are meaningless and recall stays
poor until someone rebuilds it (REINDEX) on real data, and its recall depends on ``lists`` and
``probes`` tuning. HNSW has no training step, stays good as rows arrive, and gives better recall
at the same query latency (at the cost of a slower build and more memory, fine at our sizes).
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "3f9a1c2e7b10"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# creation order (foreign keys point backwards); downgrade drops in reverse
TABLES = [
    "companies",
    "users",
    "api_keys",
    "whatsapp_instances",
    "contacts",
    "conversations",
    "messages",
    "funnels",
    "stages",
    "deals",
    "deal_stage_changes",
    "notes",
    "followup_queue",
    "flows",
    "flow_versions",
    "flow_runs",
    "conversation_embeddings",
    "inbox_events",
    "event_outbox",
    "dead_letters",
]
EXTENSIONS = ["vector", "pg_trgm"]  # conversation_embeddings.embedding; contacts name search


def uuid_pk() -> sa.Column:
    return sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False)


def timestamptz(name: str, *, nullable: bool = False, default_now: bool = False) -> sa.Column:
    server_default = sa.text("now()") if default_now else None
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=server_default, nullable=nullable
    )


def jsonb(name: str, *, default: str | None = None) -> sa.Column:
    """NOT NULL with the given JSON literal as default, or nullable without one."""
    if default is None:
        return sa.Column(name, postgresql.JSONB(), nullable=True)
    return sa.Column(
        name, postgresql.JSONB(), server_default=sa.text(f"'{default}'::jsonb"), nullable=False
    )


def upgrade() -> None:
    for extension in EXTENSIONS:
        op.execute(f"CREATE EXTENSION IF NOT EXISTS {extension}")

    op.create_table(
        "companies",
        uuid_pk(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(), server_default=sa.text("'UTC'"), nullable=False),
        jsonb("business_hours", default="{}"),
        sa.Column("ai_prompt", sa.Text(), nullable=True),
        jsonb("ai_settings", default="{}"),
        jsonb("settings", default="{}"),
        timestamptz("created_at", default_now=True),
        timestamptz("updated_at", default_now=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_companies")),
    )

    op.create_table(
        "users",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(length=32), server_default=sa.text("'agent'"), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        timestamptz("created_at", default_now=True),
        sa.CheckConstraint("role IN ('admin', 'agent')", name=op.f("ck_users_role")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_users_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("company_id", "email", name=op.f("uq_users_company_id_email")),
    )

    op.create_table(
        "api_keys",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("prefix", sa.String(), nullable=False),
        sa.Column("key_hash", sa.String(), nullable=False),
        sa.Column("role", sa.String(length=32), server_default=sa.text("'agent'"), nullable=False),
        timestamptz("last_used_at", nullable=True),
        timestamptz("revoked_at", nullable=True),
        timestamptz("created_at", default_now=True),
        sa.CheckConstraint("role IN ('admin', 'agent')", name=op.f("ck_api_keys_role")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_api_keys_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_index("idx_api_keys_company_id", "api_keys", ["company_id"])

    op.create_table(
        "whatsapp_instances",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("phone_number_id", sa.String(), nullable=True),
        sa.Column("evolution_instance", sa.String(), nullable=True),
        sa.Column("display_phone", sa.String(), nullable=True),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("app_secret", sa.String(), nullable=True),
        sa.Column("api_key", sa.String(), nullable=True),
        sa.Column("verify_token", sa.String(), nullable=False),
        sa.Column("webhook_secret", sa.String(), nullable=False),
        sa.Column(
            "status", sa.String(length=32), server_default=sa.text("'unknown'"), nullable=False
        ),
        jsonb("settings", default="{}"),
        timestamptz("created_at", default_now=True),
        timestamptz("updated_at", default_now=True),
        sa.CheckConstraint(
            "provider IN ('cloud', 'evolution')", name=op.f("ck_whatsapp_instances_provider")
        ),
        sa.CheckConstraint(
            "status IN ('connected', 'connecting', 'disconnected', 'unknown')",
            name=op.f("ck_whatsapp_instances_status"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_whatsapp_instances_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_instances")),
        sa.UniqueConstraint(
            "provider",
            "evolution_instance",
            name=op.f("uq_whatsapp_instances_provider_evolution_instance"),
        ),
        sa.UniqueConstraint(
            "provider",
            "phone_number_id",
            name=op.f("uq_whatsapp_instances_provider_phone_number_id"),
        ),
        sa.UniqueConstraint("webhook_secret", name=op.f("uq_whatsapp_instances_webhook_secret")),
    )
    op.create_index("idx_whatsapp_instances_company_id", "whatsapp_instances", ["company_id"])

    op.create_table(
        "contacts",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("phone_number", sa.String(), nullable=True),
        sa.Column("wa_id", sa.String(), nullable=True),
        sa.Column("lid", sa.String(), nullable=True),
        jsonb("aliases", default="[]"),
        sa.Column("name", sa.String(), server_default=sa.text("''"), nullable=False),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column(
            "tags",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        jsonb("custom_fields", default="{}"),
        timestamptz("created_at", default_now=True),
        timestamptz("updated_at", default_now=True),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_contacts_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("company_id", "lid", name=op.f("uq_contacts_company_id_lid")),
    )
    op.create_index(
        "idx_contacts_aliases",
        "contacts",
        ["aliases"],
        postgresql_using="gin",
        postgresql_ops={"aliases": "jsonb_path_ops"},
    )
    op.create_index("idx_contacts_company_email", "contacts", ["company_id", "email"])
    # the contact list and export: WHERE company_id = ? ORDER BY created_at DESC, id DESC
    op.create_index(
        "idx_contacts_company_created",
        "contacts",
        ["company_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index("idx_contacts_company_id", "contacts", ["company_id"])
    # unique: NULLs stay distinct (lid-only contacts); plain, so ON CONFLICT can infer it
    op.create_index(
        "idx_contacts_company_phone", "contacts", ["company_id", "phone_number"], unique=True
    )
    op.create_index("idx_contacts_created_at", "contacts", [sa.literal_column("created_at DESC")])
    op.create_index(
        "idx_contacts_name_trgm",
        "contacts",
        ["name"],
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    op.create_index("idx_contacts_phone", "contacts", ["phone_number"])
    op.create_index("idx_contacts_tags", "contacts", ["tags"], postgresql_using="gin")

    op.create_table(
        "conversations",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("remote_jid", sa.String(), nullable=False),
        sa.Column("status", sa.String(length=32), server_default=sa.text("'open'"), nullable=False),
        sa.Column("is_paused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("assigned_user_id", sa.Uuid(), nullable=True),
        timestamptz("last_message_at", default_now=True),
        timestamptz("last_inbound_at", nullable=True),
        sa.Column("last_message_preview", sa.Text(), nullable=True),
        sa.Column("unread_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("message_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("workflow_id", sa.String(), nullable=True),
        timestamptz("created_at", default_now=True),
        timestamptz("updated_at", default_now=True),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_conversations_status")),
        sa.ForeignKeyConstraint(
            ["assigned_user_id"],
            ["users.id"],
            name=op.f("fk_conversations_assigned_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_conversations_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_conversations_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["whatsapp_instances.id"],
            name=op.f("fk_conversations_instance_id_whatsapp_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
        sa.UniqueConstraint(
            "instance_id", "remote_jid", name=op.f("uq_conversations_instance_id_remote_jid")
        ),
    )
    op.create_index("idx_conversations_company_id", "conversations", ["company_id"])
    # inbox list, cursor-paged on (last_message_at, id)
    op.create_index(
        "idx_conversations_company_last_message",
        "conversations",
        ["company_id", sa.literal_column("last_message_at DESC"), sa.literal_column("id DESC")],
    )
    op.create_index("idx_conversations_contact_id", "conversations", ["contact_id"])
    op.create_index("idx_conversations_instance_id", "conversations", ["instance_id"])
    op.create_index(
        "idx_conversations_is_paused",
        "conversations",
        ["is_paused"],
        postgresql_where=sa.text("is_paused = true"),
    )
    op.create_index(
        "idx_conversations_last_message",
        "conversations",
        [sa.literal_column("last_message_at DESC")],
    )
    op.create_index("idx_conversations_remote_jid", "conversations", ["remote_jid"])

    op.create_table(
        "messages",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("message_key_id", sa.String(), nullable=True),
        sa.Column("client_id", sa.String(), nullable=True),
        sa.Column("direction", sa.String(length=32), nullable=False),
        sa.Column("from_me", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("type", sa.String(length=32), server_default=sa.text("'text'"), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        jsonb("media"),
        jsonb("payload", default="{}"),
        sa.Column("participant", sa.String(), nullable=True),
        sa.Column("reply_to_key_id", sa.String(), nullable=True),
        timestamptz("provider_timestamp", default_now=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        timestamptz("status_updated_at", nullable=True),
        jsonb("error"),
        sa.Column("sent_by", sa.String(length=32), nullable=False),
        sa.Column("sent_by_user_id", sa.Uuid(), nullable=True),
        timestamptz("created_at", default_now=True),
        sa.CheckConstraint(
            "direction IN ('inbound', 'outbound')", name=op.f("ck_messages_direction")
        ),
        sa.CheckConstraint(
            "sent_by IN ('customer', 'agent', 'ai', 'flow', 'followup', 'phone')",
            name=op.f("ck_messages_sent_by"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'delivered', 'read', 'failed', 'received', "
            "'deleted')",
            name=op.f("ck_messages_status"),
        ),
        sa.CheckConstraint(
            "type IN ('text', 'image', 'audio', 'video', 'document', 'sticker', 'location', "
            "'contacts', 'interactive', 'button', 'reaction', 'template', 'unsupported', 'system')",
            name=op.f("ck_messages_type"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_messages_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["whatsapp_instances.id"],
            name=op.f("fk_messages_instance_id_whatsapp_instances"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sent_by_user_id"],
            ["users.id"],
            name=op.f("fk_messages_sent_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint(
            "conversation_id", "client_id", name=op.f("uq_messages_conversation_id_client_id")
        ),
        sa.UniqueConstraint(
            "instance_id", "message_key_id", name=op.f("uq_messages_instance_id_message_key_id")
        ),
    )
    # keyword search: to_tsvector('simple', coalesce(body, '')) @@ websearch_to_tsquery(...)
    op.create_index(
        "idx_messages_body_fts",
        "messages",
        [sa.literal_column("to_tsvector('simple', coalesce(body, ''))")],
        postgresql_using="gin",
    )
    op.create_index(
        "idx_messages_company_created",
        "messages",
        ["company_id", sa.literal_column("created_at DESC")],
    )
    # conversation history, cursor-paged on (created_at, id)
    op.create_index(
        "idx_messages_conversation_created",
        "messages",
        ["conversation_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
    )
    op.create_index("idx_messages_conversation_id", "messages", ["conversation_id"])
    op.create_index("idx_messages_created_at", "messages", [sa.literal_column("created_at DESC")])
    op.create_index("idx_messages_key_id", "messages", ["message_key_id"])

    op.create_table(
        "funnels",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        timestamptz("created_at", default_now=True),
        timestamptz("updated_at", default_now=True),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_funnels_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funnels")),
    )
    op.create_index("idx_funnels_company_id", "funnels", ["company_id"])

    op.create_table(
        "stages",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("color", sa.String(), server_default=sa.text("'#64748b'"), nullable=False),
        sa.Column("funnel_id", sa.Uuid(), nullable=False),
        timestamptz("created_at", default_now=True),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_stages_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["funnel_id"],
            ["funnels.id"],
            name=op.f("fk_stages_funnel_id_funnels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stages")),
        # deferred to commit so a reorder can swap positions
        sa.UniqueConstraint(
            "funnel_id",
            "position",
            deferrable=True,
            initially="DEFERRED",
            name=op.f("uq_stages_funnel_id_position"),
        ),
    )

    op.create_table(
        "deals",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("funnel_id", sa.Uuid(), nullable=False),
        sa.Column("stage_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("owner_user_id", sa.Uuid(), nullable=True),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column(
            "value", sa.Numeric(precision=14, scale=2), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("currency", sa.String(length=3), server_default=sa.text("'BRL'"), nullable=False),
        sa.Column("status", sa.String(length=32), server_default=sa.text("'open'"), nullable=False),
        timestamptz("closed_at", nullable=True),
        timestamptz("created_at", default_now=True),
        timestamptz("updated_at", default_now=True),
        sa.CheckConstraint("status IN ('open', 'won', 'lost')", name=op.f("ck_deals_status")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_deals_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_deals_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["funnel_id"],
            ["funnels.id"],
            name=op.f("fk_deals_funnel_id_funnels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_user_id"],
            ["users.id"],
            name=op.f("fk_deals_owner_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(["stage_id"], ["stages.id"], name=op.f("fk_deals_stage_id_stages")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deals")),
    )
    op.create_index("idx_deals_company_id", "deals", ["company_id"])
    op.create_index("idx_deals_company_status", "deals", ["company_id", "status"])
    op.create_index("idx_deals_contact_id", "deals", ["contact_id"])
    op.create_index("idx_deals_funnel_id", "deals", ["funnel_id"])
    # the deal list: WHERE company_id = ? ORDER BY created_at DESC, id DESC
    op.create_index(
        "idx_deals_company_created",
        "deals",
        ["company_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    # the kanban board: the newest open deals of each stage
    op.create_index(
        "idx_deals_board",
        "deals",
        ["funnel_id", "stage_id", sa.text("created_at DESC")],
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index(
        "idx_deals_stage_id",
        "deals",
        ["stage_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index("idx_deals_status", "deals", ["status"])

    op.create_table(
        "deal_stage_changes",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("deal_id", sa.Uuid(), nullable=False),
        sa.Column("from_stage_id", sa.Uuid(), nullable=True),
        sa.Column("to_stage_id", sa.Uuid(), nullable=False),
        sa.Column("changed_by_user_id", sa.Uuid(), nullable=True),
        timestamptz("created_at", default_now=True),
        sa.ForeignKeyConstraint(
            ["changed_by_user_id"],
            ["users.id"],
            name=op.f("fk_deal_stage_changes_changed_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_deal_stage_changes_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"],
            ["deals.id"],
            name=op.f("fk_deal_stage_changes_deal_id_deals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["from_stage_id"],
            ["stages.id"],
            name=op.f("fk_deal_stage_changes_from_stage_id_stages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["to_stage_id"],
            ["stages.id"],
            name=op.f("fk_deal_stage_changes_to_stage_id_stages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_stage_changes")),
    )
    op.create_index(
        "idx_deal_stage_changes_deal_id",
        "deal_stage_changes",
        ["deal_id", sa.literal_column("created_at DESC")],
    )

    op.create_table(
        "notes",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("deal_id", sa.Uuid(), nullable=True),
        sa.Column("author_user_id", sa.Uuid(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        timestamptz("created_at", default_now=True),
        sa.ForeignKeyConstraint(
            ["author_user_id"],
            ["users.id"],
            name=op.f("fk_notes_author_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_notes_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_notes_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_notes_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notes")),
    )
    op.create_index("idx_notes_company_id", "notes", ["company_id"])
    op.create_index(
        "idx_notes_contact_id", "notes", ["contact_id", sa.literal_column("created_at DESC")]
    )
    op.create_index("idx_notes_deal_id", "notes", ["deal_id", sa.literal_column("created_at DESC")])

    op.create_table(
        "followup_queue",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        timestamptz("scheduled_for"),
        sa.Column(
            "status", sa.String(length=32), server_default=sa.text("'PENDING'"), nullable=False
        ),
        sa.Column("message_text", sa.Text(), nullable=True),
        sa.Column("template_name", sa.String(), nullable=True),
        jsonb("template_params"),
        sa.Column("cancel_on_reply", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "only_in_business_hours", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("sequence_id", sa.Uuid(), nullable=True),
        sa.Column("sequence_step", sa.Integer(), nullable=True),
        sa.Column("workflow_id", sa.String(), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("created_by_user_id", sa.Uuid(), nullable=True),
        timestamptz("sent_at", nullable=True),
        timestamptz("cancelled_at", nullable=True),
        timestamptz("created_at", default_now=True),
        timestamptz("updated_at", default_now=True),
        sa.CheckConstraint(
            "status IN ('PENDING', 'SENT', 'CANCELLED', 'FAILED')",
            name=op.f("ck_followup_queue_status"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_followup_queue_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_followup_queue_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_followup_queue_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_followup_queue_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_followup_queue_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followup_queue")),
    )
    op.create_index(
        "idx_followup_queue_company_scheduled", "followup_queue", ["company_id", "scheduled_for"]
    )
    op.create_index(
        "idx_followup_queue_conversation_pending",
        "followup_queue",
        ["conversation_id"],
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_index(
        "idx_followup_queue_scheduled",
        "followup_queue",
        ["scheduled_for"],
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_index("idx_followup_queue_status", "followup_queue", ["status"])

    op.create_table(
        "flows",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "status", sa.String(length=32), server_default=sa.text("'draft'"), nullable=False
        ),
        jsonb("draft_definition", default="{}"),
        sa.Column("current_version", sa.Integer(), nullable=True),
        jsonb("triggers", default="[]"),
        timestamptz("created_at", default_now=True),
        timestamptz("updated_at", default_now=True),
        sa.CheckConstraint(
            "status IN ('draft', 'published', 'archived')", name=op.f("ck_flows_status")
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_flows_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flows")),
    )
    op.create_index("idx_flows_company_id", "flows", ["company_id"])

    op.create_table(
        "flow_versions",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("flow_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        jsonb("definition", default="{}"),
        timestamptz("published_at", default_now=True),
        sa.Column("published_by_user_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_flow_versions_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["flow_id"],
            ["flows.id"],
            name=op.f("fk_flow_versions_flow_id_flows"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["published_by_user_id"],
            ["users.id"],
            name=op.f("fk_flow_versions_published_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_versions")),
        sa.UniqueConstraint("flow_id", "version", name=op.f("uq_flow_versions_flow_id_version")),
    )

    op.create_table(
        "flow_runs",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("flow_id", sa.Uuid(), nullable=False),
        sa.Column("flow_version", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status", sa.String(length=32), server_default=sa.text("'running'"), nullable=False
        ),
        sa.Column("current_node_id", sa.String(), nullable=True),
        jsonb("variables", default="{}"),
        jsonb("transcript", default="[]"),
        sa.Column("workflow_id", sa.String(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        timestamptz("started_at", default_now=True),
        timestamptz("ended_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'waiting', 'completed', 'failed', 'cancelled')",
            name=op.f("ck_flow_runs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_flow_runs_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_flow_runs_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_flow_runs_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flows.id"], name=op.f("fk_flow_runs_flow_id_flows"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_runs")),
    )
    op.create_index(
        "idx_flow_runs_company_started",
        "flow_runs",
        ["company_id", sa.literal_column("started_at DESC")],
    )
    op.create_index("idx_flow_runs_conversation_id", "flow_runs", ["conversation_id"])
    op.create_index("idx_flow_runs_flow_id", "flow_runs", ["flow_id"])

    op.create_table(
        "conversation_embeddings",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.Vector(384), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=True),
        timestamptz("created_at", default_now=True),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_conversation_embeddings_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_conversation_embeddings_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_embeddings_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_conversation_embeddings_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_embeddings")),
        sa.UniqueConstraint(
            "message_id", "model", name=op.f("uq_conversation_embeddings_message_id_model")
        ),
    )
    op.create_index("idx_embeddings_company_id", "conversation_embeddings", ["company_id"])
    op.create_index("idx_embeddings_contact_id", "conversation_embeddings", ["contact_id"])
    op.create_index(
        "idx_embeddings_conversation_id", "conversation_embeddings", ["conversation_id"]
    )
    # HNSW, cosine distance (see the module docstring for why not ivfflat)
    op.create_index(
        "idx_embeddings_vector",
        "conversation_embeddings",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )

    op.create_table(
        "inbox_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("dedupe_key", sa.Text(), nullable=False),
        jsonb("payload", default="{}"),
        sa.Column(
            "status", sa.String(length=32), server_default=sa.text("'pending'"), nullable=False
        ),
        sa.Column("error", sa.Text(), nullable=True),
        timestamptz("received_at", default_now=True),
        timestamptz("processed_at", nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("correlation_id", sa.String(), nullable=True),
        sa.CheckConstraint(
            "event_type IN ('message', 'status', 'outbound', 'other')",
            name=op.f("ck_inbox_events_event_type"),
        ),
        sa.CheckConstraint(
            "provider IN ('cloud', 'evolution')", name=op.f("ck_inbox_events_provider")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'processed', 'rejected', 'failed')",
            name=op.f("ck_inbox_events_status"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_inbox_events_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["whatsapp_instances.id"],
            name=op.f("fk_inbox_events_instance_id_whatsapp_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_events")),
        sa.UniqueConstraint(
            "instance_id", "dedupe_key", name=op.f("uq_inbox_events_instance_id_dedupe_key")
        ),
    )
    # the relay's queue: pending events in arrival order
    op.create_index(
        "idx_inbox_events_pending",
        "inbox_events",
        ["id"],
        postgresql_where=sa.text("status = 'pending'"),
    )

    op.create_table(
        "event_outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        jsonb("payload", default="{}"),
        timestamptz("created_at", default_now=True),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_event_outbox_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_outbox")),
    )

    op.create_table(
        "dead_letters",
        uuid_pk(),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        jsonb("reference", default="{}"),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        jsonb("payload", default="{}"),
        sa.Column("status", sa.String(length=32), server_default=sa.text("'open'"), nullable=False),
        jsonb("replay_result"),
        timestamptz("replayed_at", nullable=True),
        timestamptz("created_at", default_now=True),
        sa.CheckConstraint(
            "kind IN ('send', 'flow_node', 'embedding', 'inbox_event', 'ai', 'other')",
            name=op.f("ck_dead_letters_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'replayed', 'discarded')", name=op.f("ck_dead_letters_status")
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_dead_letters_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index(
        "idx_dead_letters_company_status",
        "dead_letters",
        ["company_id", "status", sa.literal_column("created_at DESC")],
    )


def downgrade() -> None:
    # dropping a table drops its indexes and the constraints on it
    for table in reversed(TABLES):
        op.drop_table(table)
    for extension in reversed(EXTENSIONS):
        op.execute(f"DROP EXTENSION IF EXISTS {extension}")
