"""Funnels: CRUD, their ordered stages (add, rename, recolor, reorder, delete moving deals) and
the kanban board. Changing a funnel's structure needs an admin key; reading it does not.
The stage list is read through the cache; the service's writes invalidate it."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from zapflow.api.deps import (
    CurrentPrincipal,
    Requires,
    SessionDep,
    StateDep,
)
from zapflow.api.lean import LeanRoute
from zapflow.api.paging import fields_param, json_response, respond, sparse
from zapflow.models import Funnel, Stage
from zapflow.schemas.funnels import (
    BoardPublic,
    FunnelCreate,
    FunnelPublic,
    FunnelUpdate,
    StageCreate,
    StageOrder,
    StagePublic,
    StageUpdate,
)
from zapflow.services import funnels as service
from zapflow.services.funnels import NewStage
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/funnels", tags=["funnels"], route_class=LeanRoute)

MAX_PER_STAGE = 200

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "not a funnel of yours"}}


FunnelFields = Annotated[frozenset[str] | None, Depends(fields_param(FunnelPublic))]


def to_public(funnel: Funnel, stages: list[Stage]) -> FunnelPublic:
    return FunnelPublic(
        **funnel.model_dump(include={"id", "name", "description", "created_at", "updated_at"}),
        stages=[StagePublic.model_validate(stage) for stage in stages],
    )


async def _funnel_public(session: AsyncSession, funnel: Funnel) -> FunnelPublic:
    stages = await service.stages_of(session, funnel.company_id, [funnel.id])
    return to_public(funnel, stages[funnel.id])


@router.get(
    "",
    summary="List the funnels with their stages",
    response_model=list[FunnelPublic],
    dependencies=[Requires(Permission.FUNNELS_READ)],
)
async def list_funnels(
    principal: CurrentPrincipal, session: SessionDep, fields: FunnelFields
) -> Any:
    rows = await service.list_funnels(session, principal.company_id)
    funnels = [to_public(funnel, stages) for funnel, stages in rows]
    return funnels if fields is None else JSONResponse(sparse(funnels, fields))


@router.post(
    "",
    status_code=201,
    summary="Create a funnel",
    response_model=FunnelPublic,
    dependencies=[Requires(Permission.FUNNELS_MANAGE)],
)
async def create_funnel(
    body: FunnelCreate, principal: CurrentPrincipal, session: SessionDep
) -> FunnelPublic:
    funnel, stages = await service.create_funnel(
        session,
        principal.company_id,
        body.name,
        body.description,
        [NewStage(stage.name, stage.color) for stage in body.stages],
    )
    return to_public(funnel, stages)


@router.get(
    "/{funnel_id}",
    summary="Get a funnel",
    response_model=FunnelPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.FUNNELS_READ)],
)
async def get_funnel(
    funnel_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    state: StateDep,
    fields: FunnelFields,
) -> Any:
    funnel = await service.get_funnel(session, principal.company_id, funnel_id)
    stages = await service.cached_stages(state.cache, session, funnel)
    return respond(to_public(funnel, stages), fields)


@router.patch(
    "/{funnel_id}",
    summary="Rename or describe a funnel",
    response_model=FunnelPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.FUNNELS_MANAGE)],
)
async def update_funnel(
    funnel_id: uuid.UUID,
    body: FunnelUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> FunnelPublic:
    funnel = await service.get_funnel(session, principal.company_id, funnel_id)
    await service.update_funnel(session, funnel, body.model_dump(exclude_unset=True))
    return await _funnel_public(session, funnel)


@router.delete(
    "/{funnel_id}",
    status_code=204,
    summary="Delete a funnel with its stages and deals",
    responses={**NOT_FOUND, 409: {"description": "open deals remain and `force` is not set"}},
    dependencies=[Requires(Permission.FUNNELS_MANAGE)],
)
async def delete_funnel(
    funnel_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    force: Annotated[bool, Query(description="Delete even with open deals (they go too)")] = False,
) -> Response:
    funnel = await service.lock_funnel(session, principal.company_id, funnel_id, exclusive=True)
    await service.delete_funnel(session, funnel, force=force)
    return Response(status_code=204)


# --- stages ---------------------------------------------------------------------------------------


@router.post(
    "/{funnel_id}/stages",
    status_code=201,
    summary="Add a stage (at a position, or last)",
    response_model=StagePublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.FUNNELS_MANAGE)],
)
async def create_stage(
    funnel_id: uuid.UUID,
    body: StageCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> StagePublic:
    funnel = await service.lock_funnel(session, principal.company_id, funnel_id)
    stage = await service.add_stage(session, funnel, NewStage(body.name, body.color), body.position)
    return StagePublic.model_validate(stage)


@router.put(
    "/{funnel_id}/stages/order",
    summary="Reorder the stages",
    response_model=list[StagePublic],
    responses={
        **NOT_FOUND,
        422: {"description": "the list is not exactly the funnel's stages, each once"},
    },
    dependencies=[Requires(Permission.FUNNELS_MANAGE)],
)
async def reorder_stages(
    funnel_id: uuid.UUID,
    body: StageOrder,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> list[StagePublic]:
    funnel = await service.lock_funnel(session, principal.company_id, funnel_id)
    stages = await service.reorder_stages(session, funnel, body.stage_ids)
    return [StagePublic.model_validate(stage) for stage in stages]


@router.patch(
    "/{funnel_id}/stages/{stage_id}",
    summary="Rename or recolor a stage",
    response_model=StagePublic,
    responses={404: {"description": "not a stage of this funnel of yours"}},
    dependencies=[Requires(Permission.FUNNELS_MANAGE)],
)
async def update_stage(
    funnel_id: uuid.UUID,
    stage_id: uuid.UUID,
    body: StageUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> StagePublic:
    funnel = await service.get_funnel(session, principal.company_id, funnel_id)
    stage = await service.get_stage(session, funnel, stage_id)
    await service.update_stage(session, funnel, stage, body.model_dump(exclude_unset=True))
    return StagePublic.model_validate(stage)


@router.delete(
    "/{funnel_id}/stages/{stage_id}",
    status_code=204,
    summary="Delete a stage (moving its deals with `move_to`)",
    responses={
        404: {"description": "not a stage of this funnel of yours"},
        409: {"description": "the stage holds deals and `move_to` is not set"},
        422: {"description": "`move_to` is not another stage of this funnel"},
    },
    dependencies=[Requires(Permission.FUNNELS_MANAGE)],
)
async def delete_stage(
    funnel_id: uuid.UUID,
    stage_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    move_to: Annotated[
        uuid.UUID | None,
        Query(description="Another stage of the funnel: its deals go there (moves recorded)"),
    ] = None,
) -> Response:
    funnel = await service.lock_funnel(session, principal.company_id, funnel_id)
    stage = await service.get_stage(session, funnel, stage_id, for_delete=True)
    await service.delete_stage(session, funnel, stage, move_to, principal.user_id)
    return Response(status_code=204)


# --- board ----------------------------------------------------------------------------------------


@router.get(
    "/{funnel_id}/board",
    summary="Kanban board: the stages in order with their newest open deals and totals",
    response_model=BoardPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.FUNNELS_READ)],
)
async def get_board(
    funnel_id: uuid.UUID,
    principal: CurrentPrincipal,
    state: StateDep,
    per_stage: Annotated[
        int, Query(ge=1, le=MAX_PER_STAGE, description="Deals listed per stage at most")
    ] = 50,
) -> Response:
    # one statement, no model per deal: the body is BoardPublic's JSON (tests check each part
    # against the models)
    return json_response(
        await service.board(state.reads, principal.company_id, funnel_id, per_stage)
    )
