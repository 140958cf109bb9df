"""Tenant-scoped reads shared by the routes: another company's object is simply not found."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from zapflow.errors import NotFound, Unprocessable
from zapflow.models import Conversation, Message

Row = TypeVar("Row", bound=SQLModel)


async def get_scoped(
    session: AsyncSession, model: type[Row], company_id: uuid.UUID, object_id: uuid.UUID
) -> Row:
    row = await session.get(model, object_id)
    if row is None or row.company_id != company_id:  # type: ignore[attr-defined]
        raise NotFound(f"{model.__name__.lower()} not found")
    return row


async def get_conversation(
    session: AsyncSession, company_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation:
    return await get_scoped(session, Conversation, company_id, conversation_id)


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = orjson.dumps([created_at.isoformat(), str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, row_id = orjson.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created_at), uuid.UUID(row_id)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise Unprocessable(
            "cursor: not a cursor this API returned", code="invalid_cursor"
        ) from None


async def page_messages(
    session: AsyncSession, conversation_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[Message], str | None]:
    """Newest first; the cursor is the last row's (created_at, id), stable under inserts."""
    query: Select[Any] = (
        select(Message)
        .where(col(Message.conversation_id) == conversation_id)
        .order_by(col(Message.created_at).desc(), col(Message.id).desc())
        .limit(limit + 1)
    )
    if cursor:
        query = query.where(tuple_(Message.created_at, Message.id) < decode_cursor(cursor))
    rows = list((await session.execute(query)).scalars())
    page = rows[:limit]
    has_more = len(rows) > limit
    return page, encode_cursor(page[-1].created_at, page[-1].id) if has_more else None
