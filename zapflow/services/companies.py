"""The caller's company: reading it and changing it (the rules of its fields:
``schemas/companies.py``)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from zapflow.errors import NotFound, Unprocessable
from zapflow.models import Company
from zapflow.services import slas


async def get_company(session: AsyncSession, company_id: uuid.UUID) -> Company:
    company = await session.get(Company, company_id)
    if company is None:  # only if it was deleted while its key was cached
        raise NotFound("company not found")
    return company


async def update_company(
    session: AsyncSession, company: Company, changes: dict[str, Any], max_rate_limit: int
) -> None:
    """Applies ``changes``; a rate limit above the operator's maximum (``max_rate_limit``,
    ZAPFLOW_RATE_LIMIT_MAX_PER_MINUTE) is refused: a company cannot raise its own limits past
    what the operator allows every tenant."""
    limits = (changes.get("settings") or {}).get("rate_limits") or {}
    for group, limit in limits.items():
        if limit > max_rate_limit:
            raise Unprocessable(
                f"settings.rate_limits.{group}: at most {max_rate_limit} requests per minute",
                details={"field": f"settings.rate_limits.{group}", "max": max_rate_limit},
            )
    before = slas.Calendar.of(company)
    for name, value in changes.items():
        setattr(company, name, value)
    await session.flush()
    await slas.reschedule(session, company, before)  # pending SLA targets follow the new hours
