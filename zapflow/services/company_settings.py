"""The cached company record (name, time zone, business hours, AI prompt and settings, incl. rate
limits): read on every authenticated request, so served from the cache, invalidated on write."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from zapflow.cache import Cache
from zapflow.db import SessionFactory
from zapflow.errors import NotFound
from zapflow.models import Company

COMPANY_TTL_SECONDS = 3600


def company_key(company_id: uuid.UUID) -> str:
    return f"company:{company_id}"


async def cached_company(
    cache: Cache, sessions: SessionFactory, company_id: uuid.UUID
) -> dict[str, Any]:
    async def load() -> dict[str, Any]:
        async with sessions() as session:
            return await _load(session, company_id)

    company: dict[str, Any] = await cache.get(company_key(company_id), COMPANY_TTL_SECONDS, load)
    return company


async def cached_company_in(
    session: AsyncSession, cache: Cache, company_id: uuid.UUID
) -> dict[str, Any]:
    """``cached_company``, read through the caller's session on a miss (a transaction in
    progress holds its connection: no second one from the pool)."""
    company: dict[str, Any] = await cache.get(
        company_key(company_id), COMPANY_TTL_SECONDS, lambda: _load(session, company_id)
    )
    return company


async def _load(session: AsyncSession, company_id: uuid.UUID) -> dict[str, Any]:
    company = await session.get(Company, company_id)
    if company is None:
        raise NotFound("company not found")
    return company.model_dump(mode="json")


async def company_settings(
    cache: Cache, sessions: SessionFactory, company_id: uuid.UUID
) -> dict[str, Any]:
    settings: dict[str, Any] = (await cached_company(cache, sessions, company_id))["settings"]
    return settings
