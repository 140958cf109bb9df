"""The embedding queue: a row per message waiting for its vector, made by a trigger on messages.

Revision ID: b4e1d7a9c3f2
Revises: b8e4d1c6a920
Create Date: 2026-12-02 10:00:00

``messages_embedding_queue`` (AFTER INSERT, per row, only for a message with a body or a
caption) queues the message in the transaction that inserts it, whatever inserted it (the
pipeline's persist, an agent's send, an import), and wakes the embedder with a NOTIFY on
``embedding_queue`` (one per transaction: Postgres folds equal notifications). Messages stored
before this revision are queued by ``zapflow embeddings backfill``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b4e1d7a9c3f2"
down_revision: str | Sequence[str] | None = "b8e4d1c6a920"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENQUEUE_FUNCTION = """
CREATE FUNCTION enqueue_embedding() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO embedding_queue (message_id, company_id) VALUES (NEW.id, NEW.company_id);
    PERFORM pg_notify('embedding_queue', '');
    RETURN NULL;
END
$$
"""
ENQUEUE_TRIGGER = """
CREATE TRIGGER messages_embedding_queue AFTER INSERT ON messages FOR EACH ROW
WHEN (NEW.body <> '' OR NEW.media ->> 'caption' <> '')
EXECUTE FUNCTION enqueue_embedding()
"""


def upgrade() -> None:
    op.create_table(
        "embedding_queue",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column(
            "enqueued_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("skipped_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_embedding_queue_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_embedding_queue")),
    )
    op.create_index(
        "idx_embedding_queue_pending",
        "embedding_queue",
        ["enqueued_at"],
        postgresql_where=sa.text("skipped_reason IS NULL"),
    )
    op.execute(ENQUEUE_FUNCTION)
    op.execute(ENQUEUE_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER messages_embedding_queue ON messages")
    op.execute("DROP FUNCTION enqueue_embedding()")
    op.drop_index("idx_embedding_queue_pending", table_name="embedding_queue")
    op.drop_table("embedding_queue")
