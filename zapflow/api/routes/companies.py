"""Company and access: routes under /api/v1/company (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/company", tags=["company and access"])
