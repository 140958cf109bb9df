"""Message templates synced from the Graph API, broadcast campaigns and their recipients, and
contacts' opt-outs.

Revision ID: c4a7e1f9b2d3
Revises: 9e3c7b1d5a26
Create Date: 2026-12-02 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c4a7e1f9b2d3"
down_revision: str | Sequence[str] | None = "9e3c7b1d5a26"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")
UUID_DEFAULT = sa.text("gen_random_uuid()")
TEMPLATE_STATUSES = (
    "APPROVED", "PENDING", "IN_APPEAL", "REJECTED", "PAUSED", "DISABLED", "PENDING_DELETION",
    "DELETED", "ARCHIVED", "LIMIT_EXCEEDED", "UNKNOWN",
)  # fmt: skip
CAMPAIGN_STATUSES = ("scheduled", "running", "paused", "waiting_tier", "completed", "cancelled")
RECIPIENT_STATUSES = ("queued", "sent", "failed", "excluded", "cancelled")


def _in(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _templates() -> None:
    op.create_table(
        "message_templates",
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("parameter_format", sa.String(length=16), nullable=False),
        sa.Column(
            "components", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("id", sa.Uuid(), server_default=UUID_DEFAULT, nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("graph_id", sa.String(), nullable=True),
        sa.Column("status", sa.String(length=32), server_default="PENDING", nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("quality", sa.String(length=16), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint(f"status IN ({_in(TEMPLATE_STATUSES)})", name="status"),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["instance_id"], ["whatsapp_instances.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("instance_id", "name", "language"),
    )
    op.create_index("idx_message_templates_company", "message_templates", ["company_id", "name"])
    op.create_index(
        "idx_message_templates_graph_id", "message_templates", ["company_id", "graph_id"]
    )


def _campaigns() -> None:
    op.create_table(
        "campaigns",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column(
            "audience", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column(
            "message", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("throughput", sa.Integer(), server_default=sa.text("80"), nullable=False),
        sa.Column("id", sa.Uuid(), server_default=UUID_DEFAULT, nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=32), server_default="scheduled", nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("workflow_id", sa.String(), nullable=True),
        sa.Column("created_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint(f"status IN ({_in(CAMPAIGN_STATUSES)})", name="status"),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["instance_id"], ["whatsapp_instances.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "idx_campaigns_company_created", "campaigns", ["company_id", sa.text("created_at DESC")]
    )


def _recipients() -> None:
    op.create_table(
        "campaign_recipients",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=32), server_default="queued", nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"status IN ({_in(RECIPIENT_STATUSES)})", name="status"),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "contact_id"),
    )
    op.create_index(
        "idx_campaign_recipients_queued",
        "campaign_recipients",
        ["campaign_id", "id"],
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index("idx_campaign_recipients_message", "campaign_recipients", ["message_id"])


def _opt_outs() -> None:
    op.create_table(
        "contact_opt_outs",
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("contact_id"),
    )


SENDERS = ("customer", "agent", "ai", "flow", "followup", "phone")


def _senders(values: Sequence[str]) -> None:
    op.drop_constraint(op.f("ck_messages_sent_by"), "messages", type_="check")
    op.create_check_constraint(
        op.f("ck_messages_sent_by"), "messages", f"sent_by IN ({_in(values)})"
    )


def upgrade() -> None:
    _senders((*SENDERS, "campaign"))
    _templates()
    _campaigns()
    _recipients()
    _opt_outs()


def downgrade() -> None:
    op.drop_table("contact_opt_outs")
    op.drop_table("campaign_recipients")
    op.drop_table("campaigns")
    op.drop_table("message_templates")
    op.execute("UPDATE messages SET sent_by = 'flow' WHERE sent_by = 'campaign'")
    _senders(SENDERS)
