"""Starting a flow run from outside a workflow (the API, schedules): the run must be a child of
its conversation's workflow, so the conversation's workflow is signal-with-started with
``start_flow``, the same way the relay starts it for a webhook. Its ``flow_runs`` row exists
already; the conversation's workflow starts the child, or records the run as refused when
another run is active there."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client

from zapflow.config import Settings
from zapflow.temporal import conversation_input, conversation_search_attributes
from zapflow.workflows.conversation import ConversationWorkflow
from zapflow.workflows.inputs import ConversationRef, FlowStart

RPC_TIMEOUT = timedelta(seconds=5)


async def start_in_conversation(
    client: Client, settings: Settings, ref: ConversationRef, start: FlowStart
) -> None:
    await client.start_workflow(
        ConversationWorkflow.run,
        conversation_input(settings, ref),
        id=ref.workflow_id,
        task_queue=settings.messages_task_queue,
        start_signal="start_flow",
        start_signal_args=[start],
        search_attributes=conversation_search_attributes(ref),
        rpc_timeout=RPC_TIMEOUT,
    )
