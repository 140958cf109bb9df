"""Operators' response shapes: queue health and dead letters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from zapflow.models import DeadLetterKind, DeadLetterStatus


class QueueHealthPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    queue: str
    kind: Literal["temporal", "inbox", "embedding_queue"]
    backlog: int
    oldest_age_seconds: float
    pollers: int | None
    level: Literal["ok", "warning", "critical"]


class QueuesReport(BaseModel):
    status: Literal["ok", "warning", "critical"]
    warning_backlog: int
    critical_backlog: int
    queues: list[QueueHealthPublic]


class DeadLetterPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: DeadLetterKind
    reference: dict[str, Any]
    error: str
    attempts: int
    payload: dict[str, Any]
    status: DeadLetterStatus
    replay_result: dict[str, Any] | None
    created_at: datetime
    replayed_at: datetime | None
