"""Deals: routes under /api/v1/deals (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/deals", tags=["deals"])
