"""Operations (admin keys only): queue health and dead letters with replay."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep, SettingsDep, StateDep
from zapflow.api.paging import Cursor, CursorPage, Limit
from zapflow.models import DeadLetterKind, DeadLetterStatus
from zapflow.schemas.ops import DeadLetterPublic, QueueHealthPublic, QueuesReport
from zapflow.services import dead_letters
from zapflow.services.permissions import Permission
from zapflow.services.queue_health import queue_health

router = APIRouter(prefix="/ops", tags=["operations"])


LEVELS = ("ok", "warning", "critical")


@router.get(
    "/queues",
    summary="Backlog and pollers of every queue",
    response_model=QueuesReport,
    dependencies=[Requires(Permission.OPS_MANAGE)],
)
async def queues(_: CurrentPrincipal, state: StateDep, settings: SettingsDep) -> QueuesReport:
    client = await state.temporal.get()
    report = await queue_health(client, settings, state.sessions)
    worst = max((item.level for item in report), key=LEVELS.index)
    return QueuesReport(
        status=worst,
        warning_backlog=settings.queue_warning_backlog,
        critical_backlog=settings.queue_critical_backlog,
        queues=[QueueHealthPublic.model_validate(item) for item in report],
    )


@router.get(
    "/dead-letters",
    summary="Work that failed for good, newest first",
    response_model=CursorPage[DeadLetterPublic],
    dependencies=[Requires(Permission.OPS_MANAGE)],
)
async def list_dead_letters(
    principal: CurrentPrincipal,
    session: SessionDep,
    kind: DeadLetterKind | None = None,
    status: DeadLetterStatus | None = None,
    since: datetime | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> CursorPage[DeadLetterPublic]:
    rows, next_cursor = await dead_letters.page_dead_letters(
        session, principal.company_id, kind=kind, status=status, since=since,
        limit=limit, cursor=cursor,
    )  # fmt: skip
    return CursorPage[DeadLetterPublic].of(rows, next_cursor)


@router.post(
    "/dead-letters/{letter_id}/replay",
    summary="Run the failed step again, once, through the normal path",
    response_model=DeadLetterPublic,
    responses={409: {"description": "already replayed, or nothing left to replay"}},
    dependencies=[Requires(Permission.OPS_MANAGE)],
)
async def replay_dead_letter(
    letter_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> DeadLetterPublic:
    letter = await dead_letters.replay(session, principal.company_id, letter_id)
    return DeadLetterPublic.model_validate(letter)
