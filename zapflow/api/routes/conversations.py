"""Conversations, the agents' desk: the filtered list, one conversation, and the actions on it
(assign, pause the bot, close, mark read), each announced live as ``conversation.updated``."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AwareDatetime

from zapflow.api.deps import (
    CurrentPrincipal,
    Requires,
    SessionDep,
    StateDep,
)
from zapflow.api.lean import LeanRoute
from zapflow.api.paging import (
    Cursor,
    CursorPage,
    Limit,
    fields_param,
    respond,
    respond_cursor_page,
)
from zapflow.errors import Unprocessable
from zapflow.models import ConversationStatus
from zapflow.schemas.conversations import (
    AssignConversation,
    ConversationPublic,
    TransferConversation,
)
from zapflow.schemas.system_notes import SystemNotePublic
from zapflow.services import desk, routing, system_notes
from zapflow.services.auth import Principal
from zapflow.services.permissions import Permission

router = APIRouter(prefix="/conversations", tags=["conversations"], route_class=LeanRoute)

ConversationFields = Annotated[frozenset[str] | None, Depends(fields_param(ConversationPublic))]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such conversation in your company"}
}


async def conversation_filter(
    principal: CurrentPrincipal,
    status: ConversationStatus | None = None,
    assigned_user_id: Annotated[
        uuid.UUID | None, Query(description="Assigned to this user")
    ] = None,
    assigned: Annotated[
        Literal["me"] | None, Query(description="`me`: assigned to this API key's user")
    ] = None,
    unassigned: Annotated[
        bool | None, Query(description="true: nobody's; false: assigned to someone")
    ] = None,
    paused: Annotated[bool | None, Query(description="Whether the bot is paused")] = None,
    tag: Annotated[
        list[str] | None, Query(description="The contact has this tag (repeat: all of them)")
    ] = None,
    instance_id: Annotated[uuid.UUID | None, Query(description="On this WhatsApp number")] = None,
    updated_since: Annotated[
        AwareDatetime | None, Query(description="Changed at or after (ISO 8601, with offset)")
    ] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=100, description="Prefix of the contact's name or phone"),
    ] = None,
    team_id: Annotated[uuid.UUID | None, Query(description="Of this team")] = None,
    teams: Annotated[
        Literal["mine"] | None, Query(description="`mine`: of the teams this user belongs to")
    ] = None,
    waiting: Annotated[
        bool | None, Query(description="true: queued for a human of its team, nobody's yet")
    ] = None,
) -> desk.ConversationFilter:
    return desk.ConversationFilter(
        status=status,
        assigned_user_id=_me(principal, assigned_user_id) if assigned else assigned_user_id,
        unassigned=unassigned,
        paused=paused,
        tags=tuple(tag or ()),
        instance_id=instance_id,
        updated_since=updated_since,
        q=q,
        team_id=team_id,
        teams_of=_me(principal, None) if teams else None,
        waiting=waiting,
    )


def _me(principal: Principal, assigned_user_id: uuid.UUID | None) -> uuid.UUID:
    if principal.user_id is None:
        raise Unprocessable("assigned: `me` needs a signed-in person or a user's API key")
    if assigned_user_id not in (None, principal.user_id):
        raise Unprocessable("assigned: `me` and assigned_user_id name different users")
    return principal.user_id


@router.get(
    "",
    summary="The desk: conversations, most recent message first, filtered",
    response_model=CursorPage[ConversationPublic],
    dependencies=[Requires(Permission.CONVERSATIONS_READ)],
)
async def list_conversations(
    principal: CurrentPrincipal,
    state: StateDep,
    filters: Annotated[desk.ConversationFilter, Depends(conversation_filter)],
    fields: ConversationFields,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    rows, next_cursor = await desk.page_conversations(
        state.reads, principal.company_id, filters, limit, cursor
    )
    return respond_cursor_page(rows, next_cursor, fields)


@router.get(
    "/{conversation_id}",
    summary="One conversation, with its contact and counters",
    response_model=ConversationPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.CONVERSATIONS_READ)],
)
async def get_conversation(
    conversation_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    fields: ConversationFields,
) -> Any:
    row = await desk.get_conversation_row(session, principal.company_id, conversation_id)
    return respond(row.public(), fields)


@router.post(
    "/{conversation_id}/assign",
    summary="Assign to a user (an active user of your company)",
    response_model=ConversationPublic,
    responses={**NOT_FOUND, 422: {"description": "`user_id` is not an active user of yours"}},
    dependencies=[Requires(Permission.CONVERSATIONS_WRITE)],
)
async def assign_conversation(
    conversation_id: uuid.UUID,
    body: AssignConversation,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> ConversationPublic:
    row = await desk.assign_conversation(
        session, principal.company_id, conversation_id, body.user_id, principal.user_id
    )
    return row.public()


@router.post(
    "/{conversation_id}/take",
    summary="Assign to me (the signed-in person, or the API key's user)",
    response_model=ConversationPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.CONVERSATIONS_WRITE)],
)
async def take_conversation(
    conversation_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> ConversationPublic:
    await desk.get_conversation_row(session, principal.company_id, conversation_id)  # else 404
    me = _me(principal, None)
    row = await desk.assign_conversation(session, principal.company_id, conversation_id, me, me)
    return row.public()


@router.post(
    "/{conversation_id}/transfer",
    summary="Transfer to a team: it leaves its assignee and waits in the team's queue",
    response_model=ConversationPublic,
    responses={404: {"description": "No such conversation or team in your company"}},
    dependencies=[Requires(Permission.CONVERSATIONS_WRITE)],
)
async def transfer_conversation(
    conversation_id: uuid.UUID,
    body: TransferConversation,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> ConversationPublic:
    row = await desk.get_conversation_row(session, principal.company_id, conversation_id, lock=True)
    team = await routing.get_team(session, principal.company_id, body.team_id)
    await routing.queue_conversation(session, row.conversation, team, principal.user_id)
    return row.public()


@router.post(
    "/{conversation_id}/unassign",
    summary="Unassign: back to the shared queue (a team's conversation waits for its routing)",
    response_model=ConversationPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.CONVERSATIONS_WRITE)],
)
async def unassign_conversation(
    conversation_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> ConversationPublic:
    row = await desk.unassign_conversation(
        session, principal.company_id, conversation_id, principal.user_id
    )
    return row.public()


@router.get(
    "/{conversation_id}/system-notes",
    summary="What happened to the conversation (assigned, transferred, SLA breached), oldest "
    "first: the thread shows these lines beside its messages",
    response_model=list[SystemNotePublic],
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.CONVERSATIONS_READ)],
)
async def list_system_notes(
    conversation_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Any:
    await desk.get_conversation_row(session, principal.company_id, conversation_id)  # else 404
    return await system_notes.list_notes(session, principal.company_id, conversation_id)


def _action(changes: dict[str, Any]) -> Callable[..., Awaitable[ConversationPublic]]:
    async def act(
        conversation_id: uuid.UUID,
        principal: CurrentPrincipal,
        session: SessionDep,
    ) -> ConversationPublic:
        row = await desk.change_conversation(
            session, principal.company_id, conversation_id, changes
        )
        return row.public()

    return act


# Each sets fields to fixed values; repeating one is a 200 that changes nothing and emits nothing.
_ACTIONS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("pause", {"is_paused": True}, "Pause the bot: a human handles the conversation"),
    ("resume", {"is_paused": False}, "Resume the bot"),
    ("close", {"status": ConversationStatus.CLOSED}, "Close (a new inbound message reopens it)"),
    ("reopen", {"status": ConversationStatus.OPEN}, "Reopen"),
)


for _name, _changes, _summary in _ACTIONS:
    router.add_api_route(
        f"/{{conversation_id}}/{_name}",
        _action(_changes),
        methods=["POST"],
        name=f"{_name}_conversation",
        summary=_summary,
        response_model=ConversationPublic,
        responses=NOT_FOUND,
        dependencies=[Requires(Permission.CONVERSATIONS_WRITE)],
    )


@router.post(
    "/{conversation_id}/read",
    summary="Mark read: the unread count goes to 0 (and, when the company's settings ask for "
    "it, the customer's latest message is marked read at WhatsApp with the typing indicator)",
    response_model=ConversationPublic,
    responses=NOT_FOUND,
    dependencies=[Requires(Permission.CONVERSATIONS_WRITE)],
)
async def read_conversation(
    conversation_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> ConversationPublic:
    row = await desk.mark_read(session, principal.company_id, conversation_id)
    return row.public()
