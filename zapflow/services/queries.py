"""Tenant-scoped reads shared by the routes: another company's object is simply not found."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from zapflow.errors import NotFound
from zapflow.models import Conversation, Message
from zapflow.services.paging import cut_page, keyset

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


async def conversation_of_chat(
    session: AsyncSession, instance_id: uuid.UUID, remote_jid: str
) -> Conversation | None:
    """The conversation of a WhatsApp chat (an instance and a remote JID), if it exists yet."""
    query = select(Conversation).where(
        col(Conversation.instance_id) == instance_id, col(Conversation.remote_jid) == remote_jid
    )
    return (await session.execute(query)).scalar_one_or_none()


async def page_messages(
    session: AsyncSession, conversation_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[Message], str | None]:
    """Newest first; the cursor is the last row's (created_at, id), stable under inserts."""
    query = keyset(
        select(Message).where(col(Message.conversation_id) == conversation_id),
        [col(Message.created_at), col(Message.id)],
        (datetime, uuid.UUID),
        limit,
        cursor,
    )
    rows = list((await session.execute(query)).scalars())
    return cut_page(rows, limit, lambda m: (m.created_at, m.id))
