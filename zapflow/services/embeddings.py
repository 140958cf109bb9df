"""The embedding queue (``embedding_queue``) and the vectors stored for its messages.

A trigger on ``messages`` queues every message with a text in the transaction that inserts it;
``enqueue_missing`` queues what lacks a vector under a model (``zapflow embeddings backfill``).
The embedder (``zapflow/worker/embedder.py``) ``claim``s rows with a lease, stores the vectors
and ``finish``es them; a row whose text cannot be embedded is ``skip``ped with its reason, and a
row whose model call failed is retried later a bounded number of times (``retry_later``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, delete, exists, func, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.db import SessionFactory
from zapflow.embeddings import content_hash
from zapflow.models import Conversation, ConversationEmbedding, EmbeddingQueueItem, Message
from zapflow.services.inbox import Backlog, backlog_of

QUEUE_CHANNEL = "embedding_queue"  # the trigger's NOTIFY (migration b4e1d7a9c3f2)
MAX_ATTEMPTS = 5  # failed model calls before a message is skipped for good


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


def _pending_columns() -> tuple[Any, ...]:
    return (
        col(Message.id),
        col(Message.company_id),
        col(Message.conversation_id),
        col(Conversation.contact_id),
        col(Message.body),
        col(Message.media),
    )


async def messages_to_embed(
    session: AsyncSession, model: str, *, company_id: uuid.UUID | None
) -> list[PendingMessage]:
    """Every message without a ``model`` embedding, by id (``bench/embeddings_search.py``)."""
    query = (
        select(*_pending_columns())
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(_missing(model))
        .order_by(col(Message.id))
    )
    if company_id is not None:
        query = query.where(col(Message.company_id) == company_id)
    return [PendingMessage(*row) for row in await session.execute(query)]


async def enqueue_missing(
    session: AsyncSession, model: str, company_id: uuid.UUID | None
) -> tuple[int, datetime]:
    """Queue every message without a ``model`` embedding (``company_id`` None: every company);
    a message skipped earlier is queued again with its attempts reset. Returns how many, and
    when (the transaction's time: every row queued by then has ``enqueued_at`` at or before)."""
    missing = select(col(Message.id), col(Message.company_id)).where(_missing(model))
    if company_id is not None:
        missing = missing.where(col(Message.company_id) == company_id)
    statement = insert(EmbeddingQueueItem).from_select(["message_id", "company_id"], missing)
    statement = statement.on_conflict_do_update(
        index_elements=["message_id"],
        set_={"skipped_reason": None, "attempts": 0, "claimed_until": None},
        # a row pending (perhaps leased by an embedder right now) stays as it is
        where=col(EmbeddingQueueItem.skipped_reason).is_not(None),
    )
    result = await session.execute(statement)
    queued_by = (await session.execute(select(func.now()))).scalar_one()
    return int(result.rowcount), queued_by  # type: ignore[attr-defined]


@dataclass(frozen=True)
class QueueOutcome:
    pending: int  # rows queued by then still waiting
    skipped: int  # rows of the scope that cannot be embedded (skipped_reason)
    missing: int  # messages of the scope without a vector under the model (skipped, too short)


async def queue_outcome(
    sessions: SessionFactory, model: str, company_id: uuid.UUID | None, queued_by: datetime
) -> QueueOutcome:
    """Where a backfill queued at ``queued_by`` stands (``zapflow embeddings backfill``)."""
    row = col(EmbeddingQueueItem.company_id)
    message = col(Message.company_id)
    scope = (row == company_id) if company_id else true()
    async with sessions() as session:
        pending = await session.scalar(
            select(func.count()).where(
                scope,
                col(EmbeddingQueueItem.skipped_reason).is_(None),
                col(EmbeddingQueueItem.enqueued_at) <= queued_by,
            )
        )
        skipped = await session.scalar(
            select(func.count()).where(scope, col(EmbeddingQueueItem.skipped_reason).is_not(None))
        )
        missing = select(func.count()).select_from(Message).where(_missing(model))
        if company_id:
            missing = missing.where(message == company_id)
        return QueueOutcome(pending or 0, skipped or 0, await session.scalar(missing) or 0)


async def claim(session: AsyncSession, limit: int, lease: timedelta) -> list[PendingMessage]:
    """Lease the oldest ``limit`` pending rows nobody holds and return their messages. Rows held
    by another transaction are passed over (SKIP LOCKED); an expired lease (its embedder
    crashed) is taken over."""
    due = or_(
        col(EmbeddingQueueItem.claimed_until).is_(None),
        col(EmbeddingQueueItem.claimed_until) < func.now(),
    )
    picked = (
        select(col(EmbeddingQueueItem.message_id))
        .where(col(EmbeddingQueueItem.skipped_reason).is_(None), due)
        .order_by(col(EmbeddingQueueItem.enqueued_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = (
        update(EmbeddingQueueItem)
        .where(col(EmbeddingQueueItem.message_id).in_(picked.scalar_subquery()))
        .values(claimed_until=func.now() + lease)
        .returning(col(EmbeddingQueueItem.message_id))
        .cte("claimed")
    )
    query = (
        select(*_pending_columns())
        .join(claimed, claimed.c.message_id == col(Message.id))
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
    )
    return [PendingMessage(*row) for row in await session.execute(query)]


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


async def finish(session: AsyncSession, message_ids: list[uuid.UUID]) -> None:
    """Take messages off the queue: embedded, or too short to embed."""
    if message_ids:
        await session.execute(
            delete(EmbeddingQueueItem).where(col(EmbeddingQueueItem.message_id).in_(message_ids))
        )


async def release(session: AsyncSession, message_ids: list[uuid.UUID]) -> None:
    """Give claimed rows back at once (an embedder stopping), not when their lease expires."""
    await session.execute(
        update(EmbeddingQueueItem)
        .where(col(EmbeddingQueueItem.message_id).in_(message_ids))
        .values(claimed_until=None)
    )


async def skip(session: AsyncSession, message_id: uuid.UUID, reason: str) -> None:
    """The message cannot be embedded: it stays on the queue with the reason, never claimed."""
    await session.execute(
        update(EmbeddingQueueItem)
        .where(col(EmbeddingQueueItem.message_id) == message_id)
        .values(skipped_reason=reason[:1000], claimed_until=None)
    )


async def retry_later(
    session: AsyncSession, message_ids: list[uuid.UUID], reason: str, first_delay: timedelta
) -> None:
    """A model call failed: count an attempt and hold the rows back (``first_delay``, doubling
    with each attempt); the ``MAX_ATTEMPTS``-th failure skips them with ``reason``."""
    attempts = col(EmbeddingQueueItem.attempts) + 1
    await session.execute(
        update(EmbeddingQueueItem)
        .where(col(EmbeddingQueueItem.message_id).in_(message_ids))
        .values(
            attempts=attempts,
            claimed_until=func.now() + first_delay * func.power(2, attempts - 1),
            skipped_reason=case(
                (attempts >= MAX_ATTEMPTS, f"{MAX_ATTEMPTS} failed attempts, the last: {reason}"),
                else_=None,
            ),
        )
    )


async def embedding_backlog(sessions: SessionFactory) -> Backlog:
    """Messages waiting on the queue (not the skipped ones) and the age of the oldest."""
    pending = col(EmbeddingQueueItem.skipped_reason).is_(None)
    return await backlog_of(sessions, col(EmbeddingQueueItem.enqueued_at), pending)
