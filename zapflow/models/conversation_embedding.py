import uuid
from datetime import datetime

import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlmodel import Field, SQLModel

from ._fields import company_fk, created_at_field, fk, uuid_pk

EMBEDDING_DIMENSIONS = 384


class ConversationEmbedding(SQLModel, table=True):
    """One message's embedding under one model (re-embedding with a new model adds rows)."""

    __tablename__ = "conversation_embeddings"
    __table_args__ = (
        sa.UniqueConstraint("message_id", "model"),
        # HNSW, not the seed's ivfflat: see the initial migration for why.
        sa.Index(
            "idx_embeddings_vector",
            "embedding",
            postgresql_using="hnsw",
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        # a company's rows per model: the search's "is the new model complete" count
        sa.Index("idx_embeddings_company_model", "company_id", "model"),
        sa.Index("idx_embeddings_conversation_id", "conversation_id"),
        sa.Index("idx_embeddings_contact_id", "contact_id"),
    )

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    conversation_id: uuid.UUID = fk("conversations.id", ondelete="CASCADE")
    message_id: uuid.UUID = fk("messages.id", ondelete="CASCADE")
    contact_id: uuid.UUID = fk("contacts.id", ondelete="CASCADE")
    embedding: list[float] = Field(sa_type=Vector(EMBEDDING_DIMENSIONS))
    model: str
    content_hash: str | None = None  # hash of the embedded text, to skip unchanged re-embeds
    created_at: datetime = created_at_field()
