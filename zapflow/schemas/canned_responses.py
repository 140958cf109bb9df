"""Canned responses' request and response shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from zapflow.schemas.fields import NotNull
from zapflow.schemas.messages import MediaIn
from zapflow.whatsapp.interactive import ReplyButtons

Shortcut = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9_-]{1,32}$")]
Body = Annotated[str, StringConstraints(min_length=1, max_length=4096)]  # WhatsApp's text limit
MAX_ATTACHMENTS = 5
Attachments = Annotated[
    list[MediaIn],
    Field(
        max_length=MAX_ATTACHMENTS,
        description="Media the composer sends after the text, each as a media message "
        "(checked like a message's media.url)",
    ),
]


class CannedResponseCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "shortcut": "price",
                    "body": "Hi {{contact.name}}! The party kit is R$ 150.",
                    "company_wide": False,
                    "attachments": [
                        {
                            "url": "https://example.com/kit.jpg",
                            "kind": "image",
                            "caption": "The party kit",
                        }
                    ],
                },
                {
                    "shortcut": "confirm",
                    "body": "Can we confirm your order, {{contact.name}}?",
                    "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}],
                },
            ]
        },
    )

    shortcut: Shortcut = Field(description="Typed as /shortcut in the composer: a-z 0-9 _ -")
    body: Body = Field(description="May hold {{contact.name}}, {{contact.phone_number}}")
    company_wide: bool = Field(
        False, description="The company's (supervisors and admins) instead of your own"
    )
    attachments: Attachments = []
    buttons: ReplyButtons = Field(
        [],
        description="Reply buttons (at most 3, titles ≤ 20 characters, ids and titles unique): the "
        "composer sends the text as an interactive button message (numbered text on Evolution); "
        "the body is then at most 1024 characters",
    )


class CannedResponseUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"body": "The kit is R$ 160 now."}]}
    )

    shortcut: Annotated[Shortcut | None, NotNull] = None
    body: Annotated[Body | None, NotNull] = None
    attachments: Annotated[Attachments | None, NotNull] = None
    buttons: Annotated[ReplyButtons | None, NotNull] = None


class CannedResponsePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    shortcut: str
    body: str
    attachments: list[dict[str, Any]]
    buttons: list[dict[str, Any]]
    user_id: uuid.UUID | None = Field(description="null: the company's")
    created_at: datetime
    updated_at: datetime
