"""Tags' response shape."""

from __future__ import annotations

from pydantic import BaseModel


class TagPublic(BaseModel):
    name: str
    count: int  # contacts carrying the tag
