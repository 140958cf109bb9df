"""Follow-ups: schedule one (or a sequence) on a conversation, list, get, reschedule, cancel.

Each follow-up is a durable timer held by the conversation's Temporal workflow (its id is the
row's ``workflow_id``); see services/followups.py for the state rules.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep
from zapflow.api.paging import Cursor, CursorPage, Limit, fields_param, respond
from zapflow.models import FollowUp, FollowUpStatus, utc_now
from zapflow.schemas.followups import (
    FollowUpCreate,
    FollowUpPublic,
    FollowUpReschedule,
)
from zapflow.services import followups as service
from zapflow.services.permissions import Permission
from zapflow.services.queries import get_conversation

router = APIRouter(tags=["follow-ups"])


FollowUpFields = Annotated[frozenset[str] | None, Depends(fields_param(FollowUpPublic))]
NOT_PENDING: dict[int | str, dict[str, Any]] = {
    409: {"description": "the follow-up was already sent, cancelled, failed or is being sent"}
}


def _public(rows: list[FollowUp]) -> list[FollowUpPublic]:
    return [FollowUpPublic.model_validate(row) for row in rows]


@router.post(
    "/conversations/{conversation_id}/followups",
    status_code=201,
    summary="Schedule a follow-up (or a sequence of them) on a conversation",
    response_model=list[FollowUpPublic],
    responses={
        404: {"description": "no such conversation"},
        422: {"description": "a time in the past, a bad delay, an unknown template, a closed "
              "conversation"},
    }, dependencies=[Requires(Permission.FOLLOWUPS_WRITE)])  # fmt: skip
async def schedule_followups(
    conversation_id: uuid.UUID,
    body: FollowUpCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> Any:
    conversation = await get_conversation(session, principal.company_id, conversation_id)
    options = service.Options(body.cancel_on_reply, body.only_in_business_hours)
    rows = await service.schedule(
        session, conversation, body.steps_to_schedule(), options, principal.user_id
    )
    return _public(rows)


@router.get(
    "/followups",
    summary="Follow-ups, latest due first",
    response_model=CursorPage[FollowUpPublic],
    dependencies=[Requires(Permission.FOLLOWUPS_READ)],
)
async def list_followups(
    principal: CurrentPrincipal,
    session: SessionDep,
    fields: FollowUpFields,
    status: Annotated[FollowUpStatus | None, Query(description="Only in this state")] = None,
    conversation_id: Annotated[
        uuid.UUID | None, Query(description="Only on this conversation")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    rows, next_cursor = await service.page_followups(
        session, principal.company_id, status, conversation_id, limit, cursor
    )
    return respond(CursorPage[FollowUpPublic].of(rows, next_cursor), fields)


@router.get(
    "/followups/{followup_id}",
    summary="Get a follow-up",
    response_model=FollowUpPublic,
    dependencies=[Requires(Permission.FOLLOWUPS_READ)],
)
async def get_followup(
    followup_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, fields: FollowUpFields
) -> Any:
    followup = await service.get_followup(session, principal.company_id, followup_id)
    return respond(FollowUpPublic.model_validate(followup), fields)


@router.patch(
    "/followups/{followup_id}",
    summary="Move a pending follow-up to another time",
    response_model=FollowUpPublic,
    responses=NOT_PENDING,
    dependencies=[Requires(Permission.FOLLOWUPS_WRITE)],
)
async def reschedule_followup(
    followup_id: uuid.UUID,
    body: FollowUpReschedule,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> Any:
    followup = await service.get_followup(session, principal.company_id, followup_id)
    due = body.due()
    moment = due if isinstance(due, datetime) else utc_now() + due
    await service.reschedule(session, followup, moment)
    return FollowUpPublic.model_validate(followup)


@router.delete(
    "/followups/{followup_id}",
    status_code=204,
    summary="Cancel a pending follow-up (or its whole sequence)",
    responses=NOT_PENDING,
    dependencies=[Requires(Permission.FOLLOWUPS_WRITE)],
)
async def cancel_followup(
    followup_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    whole_sequence: Annotated[
        bool, Query(description="Also cancel the other pending steps of its sequence")
    ] = False,
) -> Response:
    followup = await service.get_followup(session, principal.company_id, followup_id)
    await service.cancel(session, followup, whole_sequence)
    return Response(status_code=204)
