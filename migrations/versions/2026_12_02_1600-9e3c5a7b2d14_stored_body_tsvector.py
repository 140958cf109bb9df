"""Keyword search reads a stored tsvector: ``messages.body_tsv``, generated from the body.

Revision ID: 9e3c5a7b2d14
Revises: 5d7f2a9c1e48
Create Date: 2026-12-02 16:00:00

The GIN index on the body's two tsvectors (``portuguese`` as written, ``portuguese_unaccent``)
found the matches, but ranking them (``ts_rank_cd``) parsed and stemmed every match's body again,
twice; a frequent word matches a tenth of a company's messages. The same expression is now a
STORED generated column, the index is on the column, and the rank reads it. Adding the column
rewrites ``messages`` (every row's vectors are computed once, under an exclusive lock): minutes
on a million messages.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TSVECTOR

revision: str = "9e3c5a7b2d14"
down_revision: str | Sequence[str] | None = "5d7f2a9c1e48"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BODY_TSVECTOR = (
    "to_tsvector('portuguese', coalesce(body, ''))"
    " || to_tsvector('portuguese_unaccent', coalesce(body, ''))"
)


def upgrade() -> None:
    op.drop_index("idx_messages_body_fts", table_name="messages")
    op.add_column(
        "messages",
        sa.Column("body_tsv", TSVECTOR(), sa.Computed(BODY_TSVECTOR, persisted=True)),
    )
    op.create_index("idx_messages_body_fts", "messages", ["body_tsv"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_index("idx_messages_body_fts", table_name="messages")
    op.drop_column("messages", "body_tsv")
    op.create_index(
        "idx_messages_body_fts",
        "messages",
        [sa.literal_column(f"({BODY_TSVECTOR})")],
        postgresql_using="gin",
    )
