"""Funnels: routes under /api/v1/funnels (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/funnels", tags=["funnels"])
