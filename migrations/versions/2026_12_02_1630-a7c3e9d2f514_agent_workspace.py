"""The agent workspace: people sign in, teams route conversations, canned responses.

Revision ID: a7c3e9d2f514
Revises: a7c3e9d1f5b2
Create Date: 2026-12-02 16:30:00

Users get the ``supervisor`` role and an availability; ``user_sessions`` holds signed-in
browsers (the token's sha256 only), ``user_tokens`` one-time invite and reset links. ``teams``
and ``team_members`` (with a capacity) route conversations queued for a human
(``conversations.team_id`` and ``waiting_since``, read in arrival order by a partial index).
``canned_responses`` are saved replies, the company's or one user's, a shortcut per scope.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "a7c3e9d2f514"
down_revision: str | Sequence[str] | None = "a7c3e9d1f5b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ROLES = "'admin', 'agent'"
NEW_ROLES = "'admin', 'supervisor', 'agent'"
NOW = sa.text("now()")
UUID_DEFAULT = sa.text("gen_random_uuid()")


def _roles(values: str) -> None:
    for table in ("users", "api_keys"):
        op.drop_constraint(op.f(f"ck_{table}_role"), table, type_="check")
        op.create_check_constraint(op.f(f"ck_{table}_role"), table, f"role IN ({values})")


def _id() -> sa.Column[object]:
    return sa.Column("id", sa.Uuid(), server_default=UUID_DEFAULT, nullable=False)


def _uuid(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.Uuid(), nullable=nullable)


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    default = None if nullable else NOW
    return sa.Column(name, sa.DateTime(timezone=True), server_default=default, nullable=nullable)


def _people() -> None:
    _roles(NEW_ROLES)
    op.add_column(
        "users",
        sa.Column("availability", sa.String(32), server_default=sa.text("'away'"), nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_users_availability"), "users", "availability IN ('available', 'away')"
    )
    op.create_table(
        "user_sessions",
        _id(),
        _uuid("company_id"),
        _uuid("user_id"),
        sa.Column("token_hash", sqlmodel.AutoString(), nullable=False),
        sa.Column("user_agent", sqlmodel.AutoString(length=300), nullable=True),
        sa.Column("ip", sqlmodel.AutoString(length=64), nullable=True),
        _at("created_at"),
        _at("last_seen_at"),
        _at("expires_at"),
        _at("revoked_at", nullable=True),
        _fk("user_sessions", "company_id", "companies"),
        _fk("user_sessions", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_sessions_token_hash")),
    )
    op.create_index(
        "idx_user_sessions_user_id", "user_sessions", ["user_id", sa.text("created_at DESC")]
    )
    op.create_table(
        "user_tokens",
        _id(),
        _uuid("company_id"),
        _uuid("user_id"),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("token_hash", sqlmodel.AutoString(), nullable=False),
        _uuid("created_by_user_id", nullable=True),
        _at("created_at"),
        _at("expires_at"),
        _at("used_at", nullable=True),
        _fk("user_tokens", "company_id", "companies"),
        _fk("user_tokens", "user_id", "users"),
        _fk("user_tokens", "created_by_user_id", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_tokens_token_hash")),
        sa.CheckConstraint("kind IN ('invite', 'reset')", name=op.f("ck_user_tokens_kind")),
    )
    op.create_index("idx_user_tokens_user_id", "user_tokens", ["user_id"])


def _teams() -> None:
    op.create_table(
        "teams",
        _id(),
        _uuid("company_id"),
        sa.Column("name", sqlmodel.AutoString(), nullable=False),
        sa.Column(
            "routing_mode", sa.String(32), server_default=sa.text("'manual'"), nullable=False
        ),
        _uuid("last_assigned_user_id", nullable=True),
        _at("created_at"),
        _fk("teams", "company_id", "companies"),
        _fk("teams", "last_assigned_user_id", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("company_id", "name", name=op.f("uq_teams_company_id_name")),
        sa.CheckConstraint(
            "routing_mode IN ('manual', 'round_robin', 'least_busy')",
            name=op.f("ck_teams_routing_mode"),
        ),
    )
    op.create_table(
        "team_members",
        _uuid("team_id"),
        _uuid("user_id"),
        _uuid("company_id"),
        sa.Column("capacity", sa.Integer(), server_default=sa.text("5"), nullable=False),
        _at("created_at"),
        _fk("team_members", "team_id", "teams"),
        _fk("team_members", "user_id", "users"),
        _fk("team_members", "company_id", "companies"),
        sa.PrimaryKeyConstraint("team_id", "user_id", name=op.f("pk_team_members")),
    )
    op.create_index("idx_team_members_user_id", "team_members", ["user_id"])
    op.add_column("conversations", _uuid("team_id", nullable=True))
    op.create_foreign_key(
        op.f("fk_conversations_team_id_teams"),
        "conversations",
        "teams",
        ["team_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.add_column("conversations", _at("waiting_since", nullable=True))
    op.create_index(
        "idx_conversations_waiting",
        "conversations",
        ["team_id", "waiting_since", "id"],
        postgresql_where=sa.text("waiting_since IS NOT NULL"),
    )
    op.create_index(
        "idx_conversations_assignee_open",
        "conversations",
        ["assigned_user_id"],
        postgresql_where=sa.text("status = 'open' AND assigned_user_id IS NOT NULL"),
    )


def _canned_responses() -> None:
    op.create_table(
        "canned_responses",
        _id(),
        _uuid("company_id"),
        _uuid("user_id", nullable=True),
        sa.Column("shortcut", sqlmodel.AutoString(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        _fk("canned_responses", "company_id", "companies"),
        _fk("canned_responses", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_responses")),
    )
    op.create_index(
        "uq_canned_responses_scope_shortcut",
        "canned_responses",
        ["company_id", "user_id", "shortcut"],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )


def upgrade() -> None:
    _people()
    _teams()
    _canned_responses()


def downgrade() -> None:
    op.drop_table("canned_responses")
    op.drop_index("idx_conversations_assignee_open", table_name="conversations")
    op.drop_index("idx_conversations_waiting", table_name="conversations")
    op.drop_constraint(op.f("fk_conversations_team_id_teams"), "conversations", type_="foreignkey")
    op.drop_column("conversations", "waiting_since")
    op.drop_column("conversations", "team_id")
    op.drop_table("team_members")
    op.drop_table("teams")
    op.drop_table("user_tokens")
    op.drop_table("user_sessions")
    op.drop_constraint(op.f("ck_users_availability"), "users", type_="check")
    op.drop_column("users", "availability")
    op.execute("UPDATE users SET role = 'agent' WHERE role = 'supervisor'")
    op.execute("UPDATE api_keys SET role = 'agent' WHERE role = 'supervisor'")
    _roles(OLD_ROLES)
