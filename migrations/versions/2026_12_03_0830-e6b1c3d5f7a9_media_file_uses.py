"""``idx_messages_media_id``: the messages naming an uploaded file, partial (few messages name
one), so listing the company's files with what names them, refusing to delete a named file and
the retention sweep find a file's messages without reading the others.

Revision ID: e6b1c3d5f7a9
Revises: c3f1a9e7d2b4
Create Date: 2026-12-03 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e6b1c3d5f7a9"
down_revision: str | Sequence[str] | None = "c3f1a9e7d2b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "idx_messages_media_id",
        "messages",
        ["company_id", sa.text("(media->>'media_id')")],
        postgresql_where=sa.text("(media->>'media_id') IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("idx_messages_media_id", table_name="messages")
