"""Cached reads of a company's settings (rate limits and other knobs), invalidated on write."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from zapflow.cache import Cache
from zapflow.db import SessionFactory
from zapflow.models import Company

COMPANY_TTL_SECONDS = 3600


def company_key(company_id: uuid.UUID) -> str:
    return f"company:{company_id}:settings"


async def company_settings(
    cache: Cache, sessions: SessionFactory, company_id: uuid.UUID
) -> dict[str, Any]:
    async def load() -> dict[str, Any]:
        async with sessions() as session:
            query = select(col(Company.settings)).where(col(Company.id) == company_id)
            return (await session.execute(query)).scalar_one_or_none() or {}

    settings: dict[str, Any] = await cache.get(company_key(company_id), COMPANY_TTL_SECONDS, load)
    return settings
