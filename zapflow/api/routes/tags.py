"""Tags: every tag the company's contacts carry, with its count, most used first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep
from zapflow.api.paging import Limit, OffsetPage, PageNumber
from zapflow.schemas.tags import TagPublic
from zapflow.services import tags as service
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/tags", tags=["tags"])


@router.get(
    "",
    summary="Tags of the company's contacts with their counts, most used first",
    response_model=OffsetPage[TagPublic],
    dependencies=[Requires(Permission.CONTACTS_READ)],
)
async def list_tags(
    principal: CurrentPrincipal,
    session: SessionDep,
    q: Annotated[
        str | None, Query(max_length=100, description="Only tags starting with this (any case)")
    ] = None,
    page: PageNumber = 1,
    limit: Limit = 100,
) -> OffsetPage[TagPublic]:
    rows, total = await service.page_tags(session, principal.company_id, q, page, limit)
    return OffsetPage[TagPublic](
        data=[TagPublic(name=name, count=count) for name, count in rows],
        total=total,
        page=page,
        limit=limit,
        pages=-(-total // limit),
    )
