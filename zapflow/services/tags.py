"""Tags: the ones a company's contacts carry, with how many contacts carry each."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.models import Contact
from zapflow.services.paging import count_rows


def _tag_counts(company_id: uuid.UUID, prefix: str | None) -> Select[Any]:
    tags = (
        select(func.unnest(col(Contact.tags)).label("name"))
        .where(col(Contact.company_id) == company_id)
        .subquery()
    )
    query = select(tags.c.name, func.count().label("count")).group_by(tags.c.name)
    if prefix:
        query = query.where(tags.c.name.istartswith(prefix, autoescape=True))
    return query


async def page_tags(
    session: AsyncSession, company_id: uuid.UUID, prefix: str | None, page: int, limit: int
) -> tuple[list[tuple[str, int]], int]:
    """One page of (tag, contacts), most used first then by name, and how many tags match."""
    query = _tag_counts(company_id, prefix)
    columns = query.selected_columns
    # the total rides along with the page (one aggregation); counted apart only past the end
    paged = (
        query.add_columns(func.count().over().label("total"))
        .order_by(columns["count"].desc(), columns["name"])
        .offset((page - 1) * limit)
        .limit(limit)
    )
    rows = (await session.execute(paged)).all()
    if rows:
        return [(name, count) for name, count, _ in rows], rows[0].total
    return [], 0 if page == 1 else await count_rows(session, query)
