"""Messages' shapes: the send body (text, media or template), and the public shape shared by the
API responses and the ``message.*`` live events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from zapflow.models import (
    MessageDirection,
    MessageSender,
    MessageStatus,
    MessageType,
)
from zapflow.whatsapp.interactive import Interactive


class MessagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    instance_id: uuid.UUID
    message_key_id: str | None
    client_id: str | None
    direction: MessageDirection
    from_me: bool
    type: MessageType
    body: str | None
    media: dict[str, Any] | None
    payload: dict[str, Any]
    participant: str | None
    reply_to_key_id: str | None
    provider_timestamp: datetime
    status: MessageStatus
    status_updated_at: datetime | None
    error: dict[str, Any] | None
    sent_by: MessageSender
    sent_by_user_id: uuid.UUID | None
    created_at: datetime


class MediaIn(BaseModel):
    """A media file by ``url``, or by ``media_id``: a file uploaded to ``POST /media``."""

    url: HttpUrl | None = None
    media_id: uuid.UUID | None = Field(
        None, description="An uploaded file (`POST /media`) instead of a url"
    )
    kind: Literal["image", "audio", "video", "document", "sticker"]
    mime_type: str | None = None
    caption: str | None = Field(None, max_length=1024)
    filename: str | None = Field(None, max_length=255)

    @model_validator(mode="after")
    def _url_or_media_id(self) -> MediaIn:
        if (self.url is None) == (self.media_id is None):
            raise ValueError("give either `url` or `media_id`")
        return self

    def stored(self) -> dict[str, Any]:
        """The shape stored in a message's or canned response's ``media``: the fields given,
        ``url`` or ``media_id``, not both keys."""
        data = self.model_dump(mode="json")
        return {k: v for k, v in data.items() if v is not None or k not in ("url", "media_id")}


class MessageTemplateIn(BaseModel):
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
                {
                    "type": "media",
                    "media": {
                        "media_id": "6f1c2a9e-8d3b-4c5e-9a7f-1b2c3d4e5f60",
                        "kind": "document",
                        "caption": "Your receipt",
                    },
                },
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
    template: MessageTemplateIn | None = None
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
