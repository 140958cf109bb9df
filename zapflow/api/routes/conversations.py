"""Conversations: routes under /api/v1/conversations (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/conversations", tags=["conversations"])
