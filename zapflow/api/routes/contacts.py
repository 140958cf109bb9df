"""Contacts: routes under /api/v1/contacts (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/contacts", tags=["contacts"])
