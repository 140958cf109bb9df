"""SLAs per team, system notes in the thread, routing wakes through the inbox.

Revision ID: b3d9f1a7c2e5
Revises: d3b8f2a6c1e7
Create Date: 2026-12-02 19:00:00

``teams`` get their SLA: first-response and resolution targets (seconds of business time, NULL =
none) and what a breach does (``sla_escalation``). ``sla_targets`` holds one row per target a
conversation is held to (when it started, when it is due, met or missed, when it breached): the
reports read met/missed from it. ``conversations`` get a ``priority`` (an escalation raises it)
and ``sla_breached_at`` (the badge). ``system_notes`` record who assigned, unassigned or
transferred a conversation, and its breaches, in the thread.

Inbox rows ``routing`` (wake a team's routing workflow) and ``sla`` (a conversation's workflow
reloads its SLA timers) are relayed like flow commands; a ``routing`` row belongs to a team, not
to a number, so ``instance_id`` and ``provider`` may be NULL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b3d9f1a7c2e5"
down_revision: str | Sequence[str] | None = "d3b8f2a6c1e7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# after the campaign-commands migration (d3b8f2a6c1e7), which added 'campaign'
OLD_TYPES = (
    "'message', 'status', 'outbound', 'followup', 'flow_start', 'flow_cancel', 'read', "
    "'campaign', 'other'"
)
NEW_TYPES = f"{OLD_TYPES}, 'routing', 'sla'"
NOW = sa.text("now()")
UUID_DEFAULT = sa.text("gen_random_uuid()")


def _event_types(values: str) -> None:
    op.drop_constraint(op.f("ck_inbox_events_event_type"), "inbox_events", type_="check")
    op.create_check_constraint(
        op.f("ck_inbox_events_event_type"), "inbox_events", f"event_type IN ({values})"
    )


def _uuid(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.Uuid(), nullable=nullable)


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    default = None if nullable else NOW
    return sa.Column(name, sa.DateTime(timezone=True), server_default=default, nullable=nullable)


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def _enum(name: str, values: str, default: str | None = None) -> sa.Column[object]:
    server_default = sa.text(f"'{default}'") if default else None
    return sa.Column(name, sa.String(32), server_default=server_default, nullable=default is None)


def _teams_and_conversations() -> None:
    op.add_column("teams", sa.Column("first_response_seconds", sa.Integer(), nullable=True))
    op.add_column("teams", sa.Column("resolution_seconds", sa.Integer(), nullable=True))
    op.add_column("teams", _enum("sla_escalation", "", "none"))
    op.create_check_constraint(
        op.f("ck_teams_sla_escalation"),
        "teams",
        "sla_escalation IN ('none', 'reassign', 'raise_priority')",
    )
    op.add_column("conversations", _enum("priority", "", "normal"))
    op.create_check_constraint(
        op.f("ck_conversations_priority"), "conversations", "priority IN ('normal', 'high')"
    )
    op.add_column("conversations", _at("sla_breached_at", nullable=True))


def _sla_targets() -> None:
    op.create_table(
        "sla_targets",
        sa.Column("id", sa.Uuid(), server_default=UUID_DEFAULT, nullable=False),
        _uuid("company_id"),
        _uuid("conversation_id"),
        _uuid("team_id", nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), server_default=sa.text("'pending'"), nullable=False),
        _at("started_at"),
        _at("due_at"),
        _at("completed_at", nullable=True),
        _at("breached_at", nullable=True),
        _fk("sla_targets", "company_id", "companies"),
        _fk("sla_targets", "conversation_id", "conversations"),
        _fk("sla_targets", "team_id", "teams", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_targets")),
        sa.CheckConstraint(
            "kind IN ('first_response', 'resolution')", name=op.f("ck_sla_targets_kind")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'met', 'missed', 'cancelled')",
            name=op.f("ck_sla_targets_status"),
        ),
    )
    op.create_index(
        "idx_sla_targets_pending",
        "sla_targets",
        ["conversation_id", "kind"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("idx_sla_targets_company_started", "sla_targets", ["company_id", "started_at"])


def _system_notes() -> None:
    op.create_table(
        "system_notes",
        sa.Column("id", sa.Uuid(), server_default=UUID_DEFAULT, nullable=False),
        _uuid("company_id"),
        _uuid("conversation_id"),
        sa.Column("kind", sa.String(32), nullable=False),
        _uuid("actor_user_id", nullable=True),
        _uuid("user_id", nullable=True),
        _uuid("team_id", nullable=True),
        sa.Column("detail", sa.String(32), nullable=True),
        _at("created_at"),
        _fk("system_notes", "company_id", "companies"),
        _fk("system_notes", "conversation_id", "conversations"),
        _fk("system_notes", "actor_user_id", "users", "SET NULL"),
        _fk("system_notes", "user_id", "users", "SET NULL"),
        _fk("system_notes", "team_id", "teams", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_notes")),
        sa.CheckConstraint(
            "kind IN ('assigned', 'unassigned', 'transferred', 'sla_breached')",
            name=op.f("ck_system_notes_kind"),
        ),
    )
    op.create_index(
        "idx_system_notes_conversation", "system_notes", ["conversation_id", "created_at"]
    )


def upgrade() -> None:
    _event_types(NEW_TYPES)
    op.alter_column("inbox_events", "instance_id", nullable=True)
    op.alter_column("inbox_events", "provider", nullable=True)
    _teams_and_conversations()
    _sla_targets()
    _system_notes()


def downgrade() -> None:
    op.drop_table("system_notes")
    op.drop_table("sla_targets")
    op.drop_column("conversations", "sla_breached_at")
    op.drop_constraint(op.f("ck_conversations_priority"), "conversations", type_="check")
    op.drop_column("conversations", "priority")
    op.drop_constraint(op.f("ck_teams_sla_escalation"), "teams", type_="check")
    for column in ("sla_escalation", "resolution_seconds", "first_response_seconds"):
        op.drop_column("teams", column)
    op.execute("DELETE FROM inbox_events WHERE event_type IN ('routing', 'sla')")
    op.alter_column("inbox_events", "provider", nullable=False)
    op.alter_column("inbox_events", "instance_id", nullable=False)
    _event_types(OLD_TYPES)
