"""Tags: routes under /api/v1/tags (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/tags", tags=["tags"])
