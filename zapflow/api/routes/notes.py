"""Notes: routes under /api/v1/notes (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/notes", tags=["notes"])
