"""PendingEmbeddings: the ``embed_messages`` activities a ConversationWorkflow starts.

The activity is a no-op now (a trigger queues each message for the embedder process); the
workflow keeps scheduling it until its command sequence changes under ``workflow.patched``.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from zapflow.activities.embeddings import EmbeddingActivities
    from zapflow.workflows import policies
    from zapflow.workflows.inputs import EmbedMessagesInput, EmbedMessagesResult


class PendingEmbeddings:
    """The embedding activities a ConversationWorkflow started and has not seen finish.

    Started, not awaited: embedding never delays the rest of the processing. ``drain`` waits for
    the ones still running before the workflow ends or continues-as-new (a run's activities do
    not outlive it); a failure is logged and forgotten, left to the backfill.
    """

    def __init__(self, task_queue: str) -> None:
        self._task_queue = task_queue
        self._handles: list[asyncio.Task[EmbedMessagesResult]] = []

    def start(self, company_id: str, message_ids: list[str]) -> None:
        self._handles = [h for h in self._handles if not h.done()]
        if not message_ids:
            return
        handle = workflow.start_activity_method(
            EmbeddingActivities.embed_messages,
            EmbedMessagesInput(company_id, message_ids),
            task_queue=self._task_queue,
            start_to_close_timeout=policies.EMBEDDING_TIMEOUT,
            schedule_to_close_timeout=policies.EMBEDDING_SCHEDULE_TO_CLOSE,
            retry_policy=policies.EMBEDDING_RETRY,
        )
        handle.add_done_callback(_log_failure)
        self._handles.append(handle)

    async def drain(self) -> None:
        await asyncio.gather(*self._handles, return_exceptions=True)
        self._handles = []


def _log_failure(handle: asyncio.Task[EmbedMessagesResult]) -> None:
    if not handle.cancelled() and (exc := handle.exception()) is not None:
        workflow.logger.warning("embedding failed, left to the backfill: %s", exc)
