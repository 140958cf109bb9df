"""The cached company record (name, time zone, business hours, AI prompt and settings, incl. rate
limits): read on every authenticated request, so served from the cache, invalidated on write."""

from __future__ import annotations

import uuid
from typing import Any

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
            company = await session.get(Company, company_id)
        if company is None:
            raise NotFound("company not found")
        return company.model_dump(mode="json")

    company: dict[str, Any] = await cache.get(company_key(company_id), COMPANY_TTL_SECONDS, load)
    return company


async def company_settings(
    cache: Cache, sessions: SessionFactory, company_id: uuid.UUID
) -> dict[str, Any]:
    settings: dict[str, Any] = (await cached_company(cache, sessions, company_id))["settings"]
    return settings
