"""The AI agent's part of a ConversationWorkflow: a debounce timer, then the model, its tools and
the answer.

Each customer message (re)starts a durable debounce (the company's ``reply_delay_seconds``), so a
customer typing three short messages gets one answer. When it expires the agent asks the model
(an activity with retries), runs the tools the model calls (each an activity), and queues the
answer through the idempotent send path. Whether it may answer at all (AI enabled, no human
takeover, business hours) is checked in the activities, against the database, at each step: a
human who takes over while the model thinks still wins.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError, RetryState

with workflow.unsafe.imports_passed_through():
    from zapflow.activities.ai import AIActivities
    from zapflow.workflows import policies
    from zapflow.workflows.inputs import (
        AICompleteInput,
        AIFailureInput,
        AISendInput,
        AIToolInput,
        ConversationRef,
    )

# a model that keeps calling tools gets this many rounds, then the turn ends without an answer
MAX_TOOL_ROUNDS = 4


class AIResponder:
    def __init__(self, due: float | None = None) -> None:
        self.due = due  # epoch seconds of the pending answer
        self.task_queue: str | None = None  # the model's (worker role ai); None: the workflow's

    def debounce(self, delay_seconds: float | None) -> None:
        """A customer message arrived: answer ``delay_seconds`` after it (None: do not answer)."""
        self.due = None if delay_seconds is None else workflow.now().timestamp() + delay_seconds

    def is_due(self) -> bool:
        return self.due is not None and self.due <= workflow.now().timestamp()

    async def answer(self, ref: ConversationRef) -> str | None:
        """The id of the answer queued for sending, if any."""
        self.due = None
        transcript: list[dict[str, object]] = []
        for _ in range(MAX_TOOL_ROUNDS):
            try:
                step = await workflow.execute_activity_method(
                    AIActivities.complete,
                    AICompleteInput(ref, transcript),
                    task_queue=self.task_queue,
                    start_to_close_timeout=policies.AI_TIMEOUT,
                    retry_policy=policies.AI_RETRY,
                )
            except ActivityError as err:
                await self._record_failure(ref, err)
                return None
            if step.skipped:
                return None
            if not step.tool_calls:
                return await self._send(ref, step.text) if step.text else None
            transcript = list(step.transcript)
            for call in step.tool_calls:
                result = await workflow.execute_activity_method(
                    AIActivities.run_tool,
                    AIToolInput(ref, call),
                    task_queue=self.task_queue,
                    start_to_close_timeout=policies.DATABASE_TIMEOUT,
                    retry_policy=policies.DATABASE_RETRY,
                )
                if result.stop:
                    return None
                transcript.append(
                    {"role": "tool", "tool_call_id": call.id, "content": result.content}
                )
        workflow.logger.warning("the model kept calling tools; no answer this turn")
        return None

    async def _send(self, ref: ConversationRef, text: str) -> str | None:
        result = await workflow.execute_local_activity_method(
            AIActivities.send_reply,
            AISendInput(ref, text, f"ai:{workflow.uuid4()}"),
            start_to_close_timeout=policies.DATABASE_TIMEOUT,
            retry_policy=policies.DATABASE_RETRY,
        )
        return result.message_id

    async def _record_failure(self, ref: ConversationRef, err: ActivityError) -> None:
        cause = err.cause
        message = cause.message if isinstance(cause, FailureError) else str(cause or err)
        workflow.logger.warning("AI answer failed for good: %s", message)
        exhausted = err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
        attempts = policies.AI_RETRY.maximum_attempts if exhausted else 1
        await workflow.execute_activity_method(
            AIActivities.record_failure,
            AIFailureInput(ref, message, attempts),
            task_queue=self.task_queue,
            start_to_close_timeout=policies.DATABASE_TIMEOUT,
            retry_policy=policies.DATABASE_RETRY,
        )
