"""A conversation's messages: history (cursor-paged, newest first) and sending a reply."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from zapflow.api.deps import CurrentPrincipal, EgressDep, Requires, SessionDep
from zapflow.api.paging import Cursor, CursorPage, Limit, fields_param, respond
from zapflow.egress import EgressRefused
from zapflow.errors import Unprocessable
from zapflow.logs import CORRELATION_ID
from zapflow.models import ConversationStatus
from zapflow.schemas import MessagePublic
from zapflow.services import queries
from zapflow.services.outbound import OutboundContent, queue_outbound
from zapflow.services.permissions import Permission
from zapflow.whatsapp.interactive import Interactive, numbered_text

router = APIRouter(prefix="/conversations/{conversation_id}/messages", tags=["messages"])


class MediaIn(BaseModel):
    url: HttpUrl
    kind: Literal["image", "audio", "video", "document", "sticker"]
    mime_type: str | None = None
    caption: str | None = Field(None, max_length=1024)
    filename: str | None = None


class TemplateIn(BaseModel):
    name: str = Field(min_length=1)
    language: str = "pt_BR"
    params: list[str] | None = None
    components: list[dict[str, object]] | None = None


class SendMessage(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"type": "text", "text": "Olá! Como posso ajudar?", "client_id": "c-123"},
                {"type": "media", "media": {"url": "https://example.com/cat.jpg", "kind": "image"}},
                {"type": "template", "template": {"name": "welcome", "language": "pt_BR"}},
                {
                    "type": "interactive",
                    "interactive": {
                        "type": "button",
                        "body": "Podemos confirmar?",
                        "buttons": [{"id": "yes", "title": "Sim"}, {"id": "no", "title": "Não"}],
                    },
                },
            ]
        },
    )

    type: Literal["text", "media", "template", "interactive"] = "text"
    text: str | None = Field(None, min_length=1, max_length=4096)
    media: MediaIn | None = None
    template: TemplateIn | None = None
    interactive: Interactive | None = Field(
        None,
        description="Reply buttons, a list or a CTA URL button within Meta's limits; on an "
        "Evolution instance it goes as numbered text (`payload.outbound.fallback`)",
    )
    client_id: str | None = Field(
        None, max_length=128, description="Your idempotency key: a repeat returns the first message"
    )

    @model_validator(mode="after")
    def _content_matches_type(self) -> SendMessage:
        if getattr(self, self.type) is None:
            raise ValueError(f"a {self.type} message needs `{self.type}`")
        return self


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
    session: SessionDep,
    fields: MessageFields,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    await queries.get_conversation(session, principal.company_id, conversation_id)
    rows, next_cursor = await queries.page_messages(session, conversation_id, limit, cursor)
    page = CursorPage[MessagePublic].of(rows, next_cursor)
    return respond(page, fields)


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
    if body.media is not None:
        try:  # the rest (the name's addresses) is checked when the message is sent
            egress.check_url(str(body.media.url))
        except EgressRefused as exc:
            raise Unprocessable(f"media.url: {exc.reason}", code="egress_refused") from None
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
        media=body.media.model_dump(mode="json") if body.media else None,
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
