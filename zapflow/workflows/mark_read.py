"""MarkReadWorkflow: tells WhatsApp that an agent read a customer's message and is typing (Cloud
API: blue ticks and the typing indicator in one call; Evolution: two), started by the relay from
a ``read`` inbox row (id ``read/<message>``). Best effort: a few quick tries, then it gives up
quietly; nothing waits for it, and the conversation's own workflow is not involved.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

from zapflow.workflows.inputs import MarkReadInput
from zapflow.workflows.policies import MARK_READ_RETRY, SEND_TIMEOUT

with workflow.unsafe.imports_passed_through():
    from zapflow.activities.messages import MessageActivities


def mark_read_workflow_id(message_id: str) -> str:
    return f"read/{message_id}"


@workflow.defn
class MarkReadWorkflow:
    @workflow.run
    async def run(self, input: MarkReadInput) -> bool:
        """Whether WhatsApp took it."""
        try:
            await workflow.execute_activity_method(
                MessageActivities.mark_read,
                input,
                start_to_close_timeout=SEND_TIMEOUT,
                retry_policy=MARK_READ_RETRY,
            )
        except ActivityError as exc:
            workflow.logger.info("mark read given up: %s", exc.cause or exc)
            return False
        return True
