"""Which messages still need an embedding under a model, and storing the vectors made for them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.embeddings import content_hash
from zapflow.models import Conversation, ConversationEmbedding, Message


@dataclass(frozen=True)
class PendingMessage:
    id: uuid.UUID
    company_id: uuid.UUID
    conversation_id: uuid.UUID
    contact_id: uuid.UUID
    body: str | None
    media: dict[str, Any] | None


def _missing(model: str) -> ColumnElement[bool]:
    return ~exists().where(
        col(ConversationEmbedding.message_id) == col(Message.id),
        col(ConversationEmbedding.model) == model,
    )


async def messages_to_embed(
    session: AsyncSession,
    model: str,
    *,
    company_id: uuid.UUID | None,
    ids: list[uuid.UUID] | None = None,
    after_id: uuid.UUID | None = None,
    limit: int | None = None,
) -> list[PendingMessage]:
    """Messages without a ``model`` embedding: the given ``ids``, or the next ``limit`` by id
    after ``after_id`` (the backfill's keyset cursor). ``company_id`` None means every company."""
    query = (
        select(
            col(Message.id),
            col(Message.company_id),
            col(Message.conversation_id),
            col(Conversation.contact_id),
            col(Message.body),
            col(Message.media),
        )
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(_missing(model))
        .order_by(col(Message.id))
        .limit(limit)
    )
    if company_id is not None:
        query = query.where(col(Message.company_id) == company_id)
    if ids is not None:
        query = query.where(col(Message.id).in_(ids))
    if after_id is not None:
        query = query.where(col(Message.id) > after_id)
    return [PendingMessage(*row) for row in await session.execute(query)]


async def count_missing(session: AsyncSession, model: str, company_id: uuid.UUID | None) -> int:
    query = select(func.count()).select_from(Message).where(_missing(model))
    if company_id is not None:
        query = query.where(col(Message.company_id) == company_id)
    return int(await session.scalar(query) or 0)


async def store_embeddings(
    session: AsyncSession,
    model: str,
    embedded: list[tuple[PendingMessage, str, list[float]]],
) -> None:
    """Insert one row per (message, text, vector); a row already there for the model stays."""
    if not embedded:
        return
    rows = [
        {
            "company_id": m.company_id,
            "conversation_id": m.conversation_id,
            "message_id": m.id,
            "contact_id": m.contact_id,
            "embedding": vector,
            "model": model,
            "content_hash": content_hash(text),
        }
        for m, text, vector in embedded
    ]
    statement = insert(ConversationEmbedding).values(rows)
    await session.execute(statement.on_conflict_do_nothing(index_elements=["message_id", "model"]))
