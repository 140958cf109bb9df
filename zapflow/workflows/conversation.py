"""ConversationWorkflow: one per WhatsApp chat, the single writer of its messages' order.

The relay signals it with inbound batches and outbound requests (signal-with-start). It persists
what is pending in one activity call, ordered by the provider's timestamp, then sends queued
replies one at a time, so a conversation never has two sends racing. It ends after a quiet period
and continues-as-new before its history grows large, carrying every pending signal along.
"""

from __future__ import annotations

from collections import deque
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, RetryState

with workflow.unsafe.imports_passed_through():
    from zapflow.activities.conversations import ConversationActivities
    from zapflow.activities.messages import MessageActivities
    from zapflow.whatsapp.types import InboundMessage
    from zapflow.workflows import policies
    from zapflow.workflows.inputs import (
        ConversationInput,
        InboundBatch,
        OutboundBatch,
        PersistInboundInput,
        PersistInboundResult,
        SendFailedInput,
        SendMessageInput,
    )

IDLE_TIMEOUT = timedelta(hours=6)
SEEN_KEY_IDS = 1_000


@workflow.defn
class ConversationWorkflow:
    def __init__(self) -> None:
        self._inbound: list[InboundMessage] = []
        self._outbound: list[str] = []
        self._seen: deque[str] = deque(maxlen=SEEN_KEY_IDS)
        self._correlation_ids: dict[str, str] = {}  # message key id or outbound id → its delivery's
        self._received_at: dict[str, float] = {}  # key id → webhook receipt, for the latency metric

    @workflow.signal
    def inbound(self, batch: InboundBatch) -> None:
        fresh = [m for m in batch.messages if m.key_id not in self._seen]
        self._inbound.extend(fresh)
        self._remember(batch.correlation_ids, [m.key_id for m in fresh])
        self._received_at.update(batch.received_at)

    @workflow.signal
    def outbound(self, batch: OutboundBatch) -> None:
        fresh = [i for i in batch.message_ids if i not in self._outbound]
        self._outbound.extend(fresh)
        self._remember(batch.correlation_ids, fresh)

    def _remember(self, correlation_ids: list[str], ids: list[str]) -> None:
        if correlation_ids:
            self._correlation_ids.update(dict.fromkeys(ids, correlation_ids[0]))

    @workflow.query
    def pending(self) -> dict[str, int]:
        return {"inbound": len(self._inbound), "outbound": len(self._outbound)}

    @workflow.run
    async def run(self, input: ConversationInput) -> None:
        self._inbound.extend(input.inbound)
        self._outbound.extend(input.outbound)
        self._seen.extend(input.seen_key_ids)
        while True:
            try:
                await workflow.wait_condition(self._has_work, timeout=IDLE_TIMEOUT)
            except TimeoutError:
                return
            if self._inbound:
                await self._persist_inbound(input)
            while self._outbound:
                await self._send(self._outbound[0])
                self._outbound.pop(0)
            if self._should_continue_as_new(input.history_limit):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    ConversationInput(
                        input.ref,
                        self._inbound,
                        self._outbound,
                        list(self._seen),
                        input.history_limit,
                    )
                )

    def _has_work(self) -> bool:
        return bool(self._inbound or self._outbound)

    def _should_continue_as_new(self, history_limit: int) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested() or info.get_current_history_length() > history_limit
        )

    async def _persist_inbound(self, input: ConversationInput) -> PersistInboundResult:
        batch = sorted(self._inbound, key=lambda m: (m.timestamp or 0, m.key_id))
        self._inbound = []
        correlation_ids = list(
            dict.fromkeys(c for m in batch if (c := self._correlation_ids.pop(m.key_id, None)))
        )
        # a local activity: one short transaction, recorded as a marker in the same workflow task
        # instead of three history events and two more round trips to the server
        result = await workflow.execute_local_activity_method(
            ConversationActivities.persist_inbound,
            PersistInboundInput(
                input.ref,
                batch,
                correlation_ids,
                {m.key_id: t for m in batch if (t := self._received_at.pop(m.key_id, None))},
            ),
            start_to_close_timeout=policies.DATABASE_TIMEOUT,
            retry_policy=policies.DATABASE_RETRY,
        )
        self._seen.extend(m.key_id for m in batch)
        return result

    async def _send(self, message_id: str) -> None:
        try:
            await workflow.execute_activity_method(
                MessageActivities.send_message,
                SendMessageInput(message_id, self._correlation_ids.pop(message_id, None)),
                start_to_close_timeout=policies.SEND_TIMEOUT,
                retry_policy=policies.SEND_RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            message = cause.message if isinstance(cause, FailureError) else str(cause or err)
            error: dict[str, object] = {"message": message, "type": _error_type(err)}
            if isinstance(cause, ApplicationError) and cause.details:
                error.update(dict(cause.details[0]))
            workflow.logger.warning("send of %s failed for good: %s", message_id, error["message"])
            await workflow.execute_activity_method(
                MessageActivities.record_send_failure,
                SendFailedInput(message_id, error, _attempts(err)),
                start_to_close_timeout=policies.DATABASE_TIMEOUT,
                retry_policy=policies.DATABASE_RETRY,
            )


def _attempts(err: ActivityError) -> int:
    if err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED:
        return policies.SEND_RETRY.maximum_attempts
    return 1


def _error_type(err: ActivityError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return cause.type
    return type(cause).__name__ if cause else "ActivityError"
