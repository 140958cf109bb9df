import uuid

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class MediaFileContent(SQLModel, table=True):
    """A media file's bytes, apart from its description so that no read of the one loads the
    other; stored uncompressed out of line (STORAGE EXTERNAL, set by the migration), so a
    ``substring`` reads only the chunk it asks for."""

    __tablename__ = "media_file_contents"

    id: uuid.UUID = Field(foreign_key="media_files.id", ondelete="CASCADE", primary_key=True)
    data: bytes = Field(sa_type=sa.LargeBinary)
