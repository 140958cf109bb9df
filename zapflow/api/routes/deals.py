"""Deals: CRUD, moves between the stages of their funnel (kept as a history), won/lost/reopen.
Every change is announced live as ``deal.created`` / ``deal.updated`` / ``deal.moved`` /
``deal.deleted`` with the deal's public shape."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep
from zapflow.api.paging import Cursor, CursorPage, Limit, fields_param, respond
from zapflow.models import DealStageChange, DealStatus, Stage
from zapflow.schemas.deals import (
    DealCreate,
    DealMove,
    DealPublic,
    DealStageChangePublic,
    DealStageRef,
    DealUpdate,
)
from zapflow.services import deals as service
from zapflow.services.auth import Principal
from zapflow.services.deals import DealFilters
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/deals", tags=["deals"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "not a deal of yours"}}
BAD_REFERENCE: dict[int | str, dict[str, Any]] = {
    422: {"description": "invalid body, or an id in it that is not one of yours (named)"}
}


def _stage_ref(stage: Stage) -> DealStageRef:
    return DealStageRef(id=stage.id, name=stage.name, color=stage.color)


def _change_public(
    change: DealStageChange, from_stage: Stage | None, to_stage: Stage
) -> DealStageChangePublic:
    return DealStageChangePublic(
        id=change.id,
        deal_id=change.deal_id,
        from_stage=_stage_ref(from_stage) if from_stage else None,
        to_stage=_stage_ref(to_stage),
        changed_by_user_id=change.changed_by_user_id,
        created_at=change.created_at,
    )


DealFields = Annotated[frozenset[str] | None, Depends(fields_param(DealPublic))]


@router.get(
    "",
    summary="List deals, newest first (filters: funnel, stage, status, owner, contact)",
    response_model=CursorPage[DealPublic],
    dependencies=[Requires(Permission.DEALS_READ)],
)
async def list_deals(
    principal: CurrentPrincipal,
    session: SessionDep,
    fields: DealFields,
    limit: Limit = 50,
    cursor: Cursor = None,
    funnel_id: uuid.UUID | None = None,
    stage_id: uuid.UUID | None = None,
    status: DealStatus | None = None,
    owner_user_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
) -> Any:
    filters = DealFilters(funnel_id, stage_id, status, owner_user_id, contact_id)
    rows, next_cursor = await service.page_deals(
        session, principal.company_id, filters, limit, cursor
    )
    page = CursorPage[DealPublic].of(rows, next_cursor)
    return respond(page, fields)


@router.post(
    "",
    status_code=201,
    summary="Create a deal",
    response_model=DealPublic,
    responses=BAD_REFERENCE,
    dependencies=[Requires(Permission.DEALS_WRITE)],
)
async def create_deal(
    body: DealCreate, principal: CurrentPrincipal, session: SessionDep
) -> DealPublic:
    fields = body.model_dump()
    if "owner_user_id" not in body.model_fields_set:
        fields["owner_user_id"] = principal.user_id
    return await service.create_deal(session, principal.company_id, fields, principal.user_id)


@router.get(
    "/{deal_id}",
    summary="Get a deal",
    response_model=DealPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.DEALS_READ)],
)
async def get_deal(
    deal_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, fields: DealFields
) -> Any:
    return respond(await service.get_public(session, principal.company_id, deal_id), fields)


@router.patch(
    "/{deal_id}",
    summary="Update a deal's title, value, currency, contact or owner",
    response_model=DealPublic,
    responses={**NOT_FOUND, **BAD_REFERENCE},
    dependencies=[Requires(Permission.DEALS_WRITE)],
)
async def update_deal(
    deal_id: uuid.UUID,
    body: DealUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> DealPublic:
    deal = await service.lock_deal(session, principal.company_id, deal_id)
    return await service.update_deal(session, deal, body.model_dump(exclude_unset=True))


@router.delete(
    "/{deal_id}",
    status_code=204,
    summary="Delete a deal",
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.DEALS_WRITE)],
)
async def delete_deal(
    deal_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    await service.delete_deal(session, principal.company_id, deal_id)
    return Response(status_code=204)


@router.post(
    "/{deal_id}/move",
    summary="Move a deal to another stage of its funnel (recorded in its history)",
    response_model=DealPublic,
    responses={**NOT_FOUND, 422: {"description": "`stage_id` is not a stage of the deal's funnel"}},
    dependencies=[Requires(Permission.DEALS_WRITE)],
)
async def move_deal(
    deal_id: uuid.UUID,
    body: DealMove,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> DealPublic:
    deal = await service.lock_deal(session, principal.company_id, deal_id)
    return await service.move_deal(session, deal, body.stage_id, principal.user_id)


async def _set_status(
    deal_id: uuid.UUID, status: DealStatus, principal: Principal, session: SessionDep
) -> DealPublic:
    deal = await service.lock_deal(session, principal.company_id, deal_id)
    return await service.set_status(session, deal, status)


@router.post(
    "/{deal_id}/won",
    summary="Mark a deal won (sets closed_at)",
    response_model=DealPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.DEALS_WRITE)],
)
async def win_deal(
    deal_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> DealPublic:
    return await _set_status(deal_id, DealStatus.WON, principal, session)


@router.post(
    "/{deal_id}/lost",
    summary="Mark a deal lost (sets closed_at)",
    response_model=DealPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.DEALS_WRITE)],
)
async def lose_deal(
    deal_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> DealPublic:
    return await _set_status(deal_id, DealStatus.LOST, principal, session)


@router.post(
    "/{deal_id}/reopen",
    summary="Reopen a won or lost deal (clears closed_at)",
    response_model=DealPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.DEALS_WRITE)],
)
async def reopen_deal(
    deal_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> DealPublic:
    return await _set_status(deal_id, DealStatus.OPEN, principal, session)


@router.get(
    "/{deal_id}/history",
    summary="A deal's stage changes, newest first",
    response_model=CursorPage[DealStageChangePublic],
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.DEALS_READ)],
)
async def deal_history(
    deal_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> CursorPage[DealStageChangePublic]:
    deal = await service.get_deal(session, principal.company_id, deal_id)
    rows, next_cursor = await service.history(session, deal, limit, cursor)
    return CursorPage[DealStageChangePublic].of((_change_public(*r) for r in rows), next_cursor)
