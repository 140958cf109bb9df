"""Keyword search with Portuguese stemming and without accents; embeddings counted per model.

Revision ID: 5d7f2a9c1e48
Revises: 5b8e2d4c9f61
Create Date: 2026-12-02 10:30:00

The body index becomes Postgres' ``portuguese`` configuration (Snowball stemmer, stop words) on
the words as written, concatenated with ``portuguese_unaccent`` (made here: each word through
``unaccent``, then the same stemmer) on the words without accents: "preços" finds "preço" and
"informações" "informação" the first way; "promocao" finds "promoção" the second (the stemmer
does not join "-ção" and "-ções" once their accents are gone). The ``simple`` index did neither.

``(company_id, model)`` replaces the embeddings' ``company_id`` index: search counts a company's
rows per model to know whether a new model's re-embed is complete, and this reads them from the
index alone.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d7f2a9c1e48"
down_revision: str | Sequence[str] | None = "5b8e2d4c9f61"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _body_index(*configurations: str) -> None:
    op.drop_index("idx_messages_body_fts", table_name="messages")
    expression = " || ".join(f"to_tsvector('{c}', coalesce(body, ''))" for c in configurations)
    op.create_index(
        "idx_messages_body_fts",
        "messages",
        [sa.literal_column(f"({expression})")],
        postgresql_using="gin",
    )


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    op.execute("CREATE TEXT SEARCH CONFIGURATION portuguese_unaccent (COPY = portuguese)")
    op.execute(
        "ALTER TEXT SEARCH CONFIGURATION portuguese_unaccent"
        " ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part"
        " WITH unaccent, portuguese_stem"
    )
    _body_index("portuguese", "portuguese_unaccent")
    op.drop_index("idx_embeddings_company_id", table_name="conversation_embeddings")
    op.create_index(
        "idx_embeddings_company_model", "conversation_embeddings", ["company_id", "model"]
    )


def downgrade() -> None:
    op.drop_index("idx_embeddings_company_model", table_name="conversation_embeddings")
    op.create_index("idx_embeddings_company_id", "conversation_embeddings", ["company_id"])
    _body_index("simple")
    op.execute("DROP TEXT SEARCH CONFIGURATION portuguese_unaccent")
    op.execute("DROP EXTENSION IF EXISTS unaccent")
