"""A conversation's messages: history (cursor-paged, newest first) and sending a reply."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from zapflow.api.deps import CurrentPrincipal, EgressDep, Requires, SessionDep, StateDep
from zapflow.api.lean import LeanRoute
from zapflow.api.paging import Cursor, CursorPage, Limit, fields_param, respond_cursor_page
from zapflow.api.validation import checked_media
from zapflow.errors import Unprocessable
from zapflow.logs import CORRELATION_ID
from zapflow.models import ConversationStatus
from zapflow.schemas.messages import MessagePublic, SendMessage
from zapflow.services import queries
from zapflow.services.messages import OutboundContent, queue_outbound
from zapflow.services.permissions import Permission
from zapflow.whatsapp.interactive import numbered_text

router = APIRouter(
    prefix="/conversations/{conversation_id}/messages", tags=["messages"], route_class=LeanRoute
)


MessageFields = Annotated[frozenset[str] | None, Depends(fields_param(MessagePublic))]


@router.get(
    "",
    summary="Messages of a conversation, newest first",
    response_model=CursorPage[MessagePublic],
    dependencies=[Requires(Permission.CONVERSATIONS_READ)],
)
async def list_messages(
    conversation_id: uuid.UUID,
    principal: CurrentPrincipal,
    state: StateDep,
    fields: MessageFields,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    rows, next_cursor = await queries.page_messages(
        state.reads, principal.company_id, conversation_id, limit, cursor
    )
    return respond_cursor_page(rows, next_cursor, fields)


@router.post(
    "",
    status_code=202,
    summary="Send a message (queued; the status moves pending → sent → delivered → read)",
    response_model=MessagePublic,
    responses={200: {"description": "a repeated client_id: the first message"}},
    dependencies=[Requires(Permission.CONVERSATIONS_WRITE)],
)
async def send_message(
    conversation_id: uuid.UUID,
    body: SendMessage,
    principal: CurrentPrincipal,
    session: SessionDep,
    egress: EgressDep,
    response: Response,
) -> MessagePublic:
    media = (
        await checked_media(egress, session, principal.company_id, body.media, "media")
        if body.media is not None
        else None
    )
    conversation = await queries.get_conversation(session, principal.company_id, conversation_id)
    if conversation.status == ConversationStatus.CLOSED:
        raise Unprocessable(
            "the conversation is closed: reopen it to reply", code="conversation_closed"
        )
    interactive = (
        body.interactive.model_dump(mode="json", exclude_none=True) if body.interactive else None
    )
    content = OutboundContent(
        type=body.type,
        text=numbered_text(interactive) if interactive else body.text,
        media=media,
        template=body.template.model_dump(exclude_none=True) if body.template else None,
        interactive=interactive,
    )
    message, created = await queue_outbound(
        session,
        conversation,
        content,
        user_id=principal.user_id,
        client_id=body.client_id,
        correlation_id=CORRELATION_ID.get(),
    )
    if not created:
        response.status_code = 200
    return MessagePublic.model_validate(message)
