"""Api keys: routes under /api/v1/api-keys (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api-keys", tags=["api keys"])
