"""WhatsApp instances are unique per company, not globally.

Revision ID: b8e4d1c6a920
Revises: 7c2d5e8f1a34
Create Date: 2026-12-02 09:30:00

A global ``(provider, phone_number_id)`` / ``(provider, evolution_instance)`` constraint let one
company learn, by a 409, which numbers another had connected, and block them. Webhooks find their
instance by the URL token, and a Cloud delivery's other numbers only within the same company.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b8e4d1c6a920"
down_revision: str | Sequence[str] | None = "7c2d5e8f1a34"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "whatsapp_instances"


def upgrade() -> None:
    for column in ("phone_number_id", "evolution_instance"):
        op.drop_constraint(op.f(f"uq_{TABLE}_provider_{column}"), TABLE, type_="unique")
        op.create_unique_constraint(
            op.f(f"uq_{TABLE}_company_id_provider_{column}"),
            TABLE,
            ["company_id", "provider", column],
        )


def downgrade() -> None:
    for column in ("phone_number_id", "evolution_instance"):
        op.drop_constraint(op.f(f"uq_{TABLE}_company_id_provider_{column}"), TABLE, type_="unique")
        op.create_unique_constraint(
            op.f(f"uq_{TABLE}_provider_{column}"), TABLE, ["provider", column]
        )
