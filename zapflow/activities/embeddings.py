"""Embedding activities (task queue ``embeddings``): only ``embed_messages``, now a no-op.

Messages are embedded off the conversation path: a trigger queues each one as it is inserted
and the embedder process drains the queue (``zapflow/worker/embedder.py``). ConversationWorkflow
histories written before that still schedule ``embed_messages``; it stays registered, doing
nothing, so those runs go on without a failed activity.
"""

from __future__ import annotations

from temporalio import activity

from zapflow.workflows.inputs import EmbedMessagesInput, EmbedMessagesResult


class EmbeddingActivities:
    @activity.defn
    async def embed_messages(self, input: EmbedMessagesInput) -> EmbedMessagesResult:
        """The trigger queued these messages when they were inserted."""
        return EmbedMessagesResult(scanned=len(input.message_ids), embedded=0, skipped=0)
