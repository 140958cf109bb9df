import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ._fields import company_fk, created_at_field, fk, uuid_pk


class MediaFile(SQLModel, table=True):
    """A file an agent uploaded (a canned response's attachment, a composer's media): what it
    is, sniffed from its bytes; the bytes are its ``media_file_contents`` row."""

    __tablename__ = "media_files"
    __table_args__ = (sa.Index("idx_media_files_company_id", "company_id", "created_at"),)

    filename: str | None = Field(default=None, max_length=255)
    mime_type: str = Field(max_length=100)  # sniffed from the content, never the client's
    kind: str = Field(max_length=16)  # image, audio, video, document: a message media's kind
    size_bytes: int
    # keys the HMAC of the expiring links the providers fetch it by (one per file: no
    # deployment secret to configure, and a file's links die with it)
    signing_key: bytes = Field(sa_type=sa.LargeBinary)

    id: uuid.UUID = uuid_pk()
    company_id: uuid.UUID = company_fk()
    user_id: uuid.UUID | None = fk("users.id", ondelete="SET NULL", nullable=True)
    created_at: datetime = created_at_field()
