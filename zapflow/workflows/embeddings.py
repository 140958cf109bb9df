"""EmbeddingBackfillWorkflow: embeds every message that lacks an embedding under the current model.

Started by ``zapflow embeddings backfill``; one per scope (a company, or all of them). It walks
messages by id (a keyset cursor), one ``embed_batch`` activity per batch, so it resumes where it
stopped after a worker restart, and continues-as-new with its cursor and counters well before its
history grows large. The ``progress`` query reports what it has done.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from zapflow.activities.embeddings import EmbeddingActivities
    from zapflow.workflows import policies
    from zapflow.workflows.inputs import (
        CountUnembeddedInput,
        EmbeddingBackfillInput,
        EmbeddingBatchInput,
        EmbedMessagesInput,
        EmbedMessagesResult,
    )

BATCHES_PER_RUN = 500  # ~3 history events per batch: continue-as-new near 1,500


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


def backfill_workflow_id(company_id: str | None) -> str:
    return f"embeddings-backfill/{company_id or 'all'}"


@dataclass(frozen=True)
class BackfillProgress:
    total: int | None  # messages lacking an embedding when the backfill started
    scanned: int
    embedded: int
    skipped: int
    done: bool


@workflow.defn
class EmbeddingBackfillWorkflow:
    def __init__(self) -> None:
        self._state = EmbeddingBackfillInput()
        self._done = False

    @workflow.query
    def progress(self) -> dict[str, Any]:
        s = self._state
        return asdict(BackfillProgress(s.total, s.scanned, s.embedded, s.skipped, self._done))

    @workflow.run
    async def run(self, input: EmbeddingBackfillInput) -> dict[str, Any]:
        self._state = input
        if input.total is None:
            input.total = await workflow.execute_activity_method(
                EmbeddingActivities.count_unembedded,
                CountUnembeddedInput(input.company_id),
                start_to_close_timeout=policies.DATABASE_TIMEOUT,
                retry_policy=policies.DATABASE_RETRY,
            )
        for _ in range(BATCHES_PER_RUN):
            batch = await workflow.execute_activity_method(
                EmbeddingActivities.embed_batch,
                EmbeddingBatchInput(input.company_id, input.after_id, input.batch_size),
                start_to_close_timeout=policies.EMBEDDING_TIMEOUT,
                retry_policy=policies.EMBEDDING_RETRY,
            )
            if batch.last_id is None:
                self._done = True
                return self.progress()
            input.after_id = batch.last_id
            input.scanned += batch.scanned
            input.embedded += batch.embedded
            input.skipped += batch.skipped
        workflow.continue_as_new(input)
