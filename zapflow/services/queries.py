"""Tenant-scoped reads shared by the routes: another company's object is simply not found."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, Integer, Select, Uuid, bindparam, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from zapflow.db import DriverReads
from zapflow.errors import NotFound
from zapflow.models import Conversation, Message
from zapflow.schemas.messages import MessagePublic
from zapflow.services.paging import cut_page, decode_cursor

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


async def timers_of_chat(
    session: AsyncSession,
    instance_id: uuid.UUID,
    remote_jid: str,
    pending: Callable[[AsyncSession, uuid.UUID], Awaitable[list[Row]]],
) -> list[Row] | None:
    """A chat's ``pending`` timer rows (follow-ups, SLA targets); None when no conversation has
    its key (merged into another)."""
    conversation = await conversation_of_chat(session, instance_id, remote_jid)
    return await pending(session, conversation.id) if conversation else None


_MESSAGE_FIELDS = tuple(MessagePublic.model_fields)
# no cursor: after the last possible row
_FIRST = (datetime.max.replace(tzinfo=UTC), uuid.UUID(int=2**128 - 1))


def _messages_query() -> Select[*tuple[Any, ...]]:
    """A page of a conversation's messages, newest first, after a (created_at, id) position,
    with the tenancy check in the same statement: no row when the conversation is not the
    company's, one row of nulls when it has no message after the position. Values:
    ``company_id``, ``conversation_id``, ``after_at``, ``after_id``, ``rows``."""
    conversation_id = bindparam("conversation_id", type_=Uuid())
    position = tuple_(col(Message.created_at), col(Message.id))
    after = tuple_(
        bindparam("after_at", type_=DateTime(timezone=True)), bindparam("after_id", type_=Uuid())
    )
    page = (
        select(*(col(getattr(Message, name)) for name in _MESSAGE_FIELDS))
        .where(col(Message.conversation_id) == col(Conversation.id), position < after)
        .order_by(col(Message.created_at).desc(), col(Message.id).desc())
        .limit(bindparam("rows", type_=Integer))
        .lateral("page")
    )
    return (
        select(page)
        .select_from(Conversation)
        .outerjoin(page, true())
        .where(
            col(Conversation.id) == conversation_id,
            col(Conversation.company_id) == bindparam("company_id", type_=Uuid()),
        )
        .order_by(page.c.created_at.desc(), page.c.id.desc())
    )


MESSAGES = _messages_query()


async def page_messages(
    reads: DriverReads,
    company_id: uuid.UUID,
    conversation_id: uuid.UUID,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, as ``MessagePublic`` dicts (one statement on the driver pool, no model
    per row: the message page is among the API's busiest reads); the cursor is the last row's
    (created_at, id), stable under inserts. Not the company's conversation: NotFound."""
    after_at, after_id = decode_cursor(cursor, (datetime, uuid.UUID)) if cursor else _FIRST
    found = await reads.fetch_fixed(
        MESSAGES, company_id=company_id, conversation_id=conversation_id,
        after_at=after_at, after_id=after_id, rows=limit + 1,
    )  # fmt: skip
    if not found:
        raise NotFound("conversation not found")
    rows = [dict(zip(_MESSAGE_FIELDS, row, strict=True)) for row in found if row["id"] is not None]
    return cut_page(rows, limit, lambda m: (m["created_at"], m["id"]))
