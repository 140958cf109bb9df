"""Embedding activities (task queue ``embeddings``): embed messages and store their vectors.

``embed_messages`` serves the ConversationWorkflow (the messages it just persisted);
``embed_batch`` and ``count_unembedded`` serve the backfill workflow. Texts go to the model in
batches of ``embedding_batch_size``; the model's name is the embedder's, so a changed model
finds every message "missing" again.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.embeddings import Embedder, embeddable_text
from zapflow.embeddings.local import ModelNotInstalled
from zapflow.embeddings.openai import EmbeddingRejected
from zapflow.services.embeddings import (
    PendingMessage,
    count_missing,
    messages_to_embed,
    store_embeddings,
)
from zapflow.workflows.inputs import (
    CountUnembeddedInput,
    EmbeddingBatchInput,
    EmbedMessagesInput,
    EmbedMessagesResult,
)

log = logging.getLogger(__name__)


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


class EmbeddingActivities:
    def __init__(self, sessions: SessionFactory, embedder: Embedder, settings: Settings) -> None:
        self._sessions = sessions
        self._embedder = embedder
        self._batch_size = settings.embedding_batch_size
        self._min_chars = settings.embedding_min_chars

    @activity.defn
    async def embed_messages(self, input: EmbedMessagesInput) -> EmbedMessagesResult:
        ids = [uuid.UUID(i) for i in input.message_ids]
        return await self._embed(await self._pending(uuid.UUID(input.company_id), ids=ids))

    @activity.defn
    async def embed_batch(self, input: EmbeddingBatchInput) -> EmbedMessagesResult:
        """The next ``limit`` messages by id after the cursor that lack an embedding."""
        pending = await self._pending(
            _uuid(input.company_id), after_id=_uuid(input.after_id), limit=input.limit
        )
        return await self._embed(pending)

    @activity.defn
    async def count_unembedded(self, input: CountUnembeddedInput) -> int:
        async with transaction(self._sessions) as session:
            return await count_missing(session, self._embedder.model, _uuid(input.company_id))

    async def _pending(self, company_id: uuid.UUID | None, **which: Any) -> list[PendingMessage]:
        async with transaction(self._sessions) as session:
            return await messages_to_embed(
                session, self._embedder.model, company_id=company_id, **which
            )

    async def _embed(self, pending: list[PendingMessage]) -> EmbedMessagesResult:
        texts = [
            (m, t) for m in pending if (t := embeddable_text(m.body, m.media, self._min_chars))
        ]
        for start in range(0, len(texts), self._batch_size):
            chunk = texts[start : start + self._batch_size]
            vectors = await self._vectors([t for _, t in chunk])
            async with transaction(self._sessions) as session:
                await store_embeddings(
                    session,
                    self._embedder.model,
                    [(m, t, v) for (m, t), v in zip(chunk, vectors, strict=True)],
                )
            activity.heartbeat(start + len(chunk))
        return EmbedMessagesResult(
            scanned=len(pending),
            embedded=len(texts),
            skipped=len(pending) - len(texts),
            last_id=str(pending[-1].id) if pending else None,
        )

    async def _vectors(self, texts: list[str]) -> list[list[float]]:
        try:
            return await self._embedder.embed(texts)
        except (EmbeddingRejected, ModelNotInstalled) as exc:
            log.error("embedding refused for good: %s", exc)
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc
