import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ._fields import int_field, text_field, timestamp_field


class EmbeddingQueueItem(SQLModel, table=True):
    """A message waiting for its embedding (``zapflow/worker/embedder.py`` drains the queue).

    Rows are made by the ``messages_embedding_queue`` trigger (migration ``embedding_queue``) in
    the transaction that inserts the message, and by ``zapflow embeddings backfill``. A row
    leaves the queue when its vector is stored or its text is too short to embed; a message that
    cannot be embedded stays, with ``skipped_reason`` set, out of the pending index.
    """

    __tablename__ = "embedding_queue"
    __table_args__ = (
        # the embedder's claim: pending rows, oldest first
        sa.Index(
            "idx_embedding_queue_pending",
            "enqueued_at",
            postgresql_where=sa.text("skipped_reason IS NULL"),
        ),
    )

    message_id: uuid.UUID = Field(primary_key=True, foreign_key="messages.id", ondelete="CASCADE")
    # no foreign key (each one is a check per insert): the message's cascade covers a company's
    company_id: uuid.UUID
    enqueued_at: datetime = timestamp_field(server_now=True)
    attempts: int = int_field()  # model calls that failed for this row
    claimed_until: datetime | None = timestamp_field()  # an embedder's lease
    skipped_reason: str | None = text_field(nullable=True)
