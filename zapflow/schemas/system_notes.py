"""System notes' public shape: the API's list and the ``system_note.created`` live event."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from zapflow.models import SystemNoteKind


class SystemNotePublic(BaseModel):
    """What happened to a conversation: ``assigned`` (to ``user_id``, by ``actor_user_id``;
    ``detail`` "routing" when the team's routing did), ``unassigned`` (``user_id`` lost it;
    ``detail`` "sla" when an SLA escalation did), ``transferred`` (to ``team_id``),
    ``sla_breached`` (``detail``: which target). ``actor_user_id`` is null when no person did
    it."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "7d0c2b1e-3f4a-4e5b-9c6d-1a2b3c4d5e6f",
                    "conversation_id": "2a4e6c8b-0d1f-4a3c-8e5b-7d9f1b3c5e7a",
                    "kind": "assigned",
                    "actor_user_id": None,
                    "user_id": "0b6f3c2e-8f55-4c1e-9d0a-5e2f7a1b9c44",
                    "team_id": "4c1f6d2a-1b0e-4f7a-9a55-0e3c8b7d2f91",
                    "detail": "routing",
                    "created_at": "2026-12-02T19:00:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    conversation_id: uuid.UUID
    kind: SystemNoteKind
    actor_user_id: uuid.UUID | None
    user_id: uuid.UUID | None
    team_id: uuid.UUID | None
    detail: str | None
    created_at: datetime
