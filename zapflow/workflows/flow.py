"""FlowWorkflow: one flow run, a child of its conversation's ConversationWorkflow; and
FlowRouting, the conversation workflow's side of flows.

The run drives the pure engine (``zapflow.flows.engine``, the code the simulator runs too) with
effects made of Temporal primitives: every side effect is an activity, ``wait`` is a timer and
``ask`` waits for a ``reply`` signal with the ask's timeout. Replaying the history replays the
engine to the same node with the same send numbers, so a worker that dies mid-run resumes where
it was, and an already-queued message is found again by its client id, never sent twice.

The parent starts runs with ``ParentClosePolicy.ABANDON``: when the conversation workflow
continues-as-new (or closes) the run goes on; the parent carries the run's workflow id across
continue-as-new, routes the customer's messages to it while it lives, and the run signals
``flow_ended`` when it ends. One run per conversation: a start requested while one is active
is recorded on its ``flow_runs`` row as cancelled, never started.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ActivityError, FailureError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from zapflow.activities.flows import FlowActivities
    from zapflow.flows.engine import (
        RUN_LIMITS,
        FlowEngine,
        Outgoing,
        RunCancelled,
        RunState,
        StepFailed,
    )
    from zapflow.flows.language import FlowDefinition
    from zapflow.temporal import COMPANY_ID, FLOW_ID, FLOW_VERSION, run_workflow_id
    from zapflow.whatsapp.types import InboundMessage
    from zapflow.workflows import policies
    from zapflow.workflows.inputs import (
        ConversationInput,
        ConversationRef,
        FlowActionInput,
        FlowEnded,
        FlowMirrorInput,
        FlowRefuseInput,
        FlowRouteInput,
        FlowRouteResult,
        FlowRunInput,
        FlowRunRef,
        FlowSendInput,
        FlowStart,
        PersistInboundResult,
    )

FLOW_ENDED_SIGNAL = "flow_ended"
# runs started since the engine's bounds take them; older histories replay unbounded, as written
BOUNDED_PATCH = "flow-engine-bounds"
# runs started since send buttons and lists as interactive messages and read a tapped choice's id;
# older histories replay with numbered text
INTERACTIVE_PATCH = "flow-interactive-choices"
# runs started since read a number typed under numbered choices as the choice at that place in
# the list sent (older histories replay reading it in the ask's own list)
NUMBERED_PATCH = "flow-numbered-choices"
HTTP_GRACE = timedelta(seconds=5)  # on top of the node's own timeout


def _failure(err: ActivityError) -> StepFailed:
    cause = err.cause
    return StepFailed(cause.message if isinstance(cause, FailureError) else str(cause or err))


class _TemporalEffects:
    """The engine's effects inside a workflow: activities, timers and signals."""

    def __init__(self, run: FlowWorkflow, input: FlowRunInput) -> None:
        self._run = run
        self._input = input

    async def _activity(
        self, method: Any, argument: Any, retry: RetryPolicy = policies.DATABASE_RETRY,
        limit: timedelta = policies.DATABASE_TIMEOUT, task_queue: str | None = None,
    ) -> Any:  # fmt: skip
        try:
            return await workflow.execute_activity_method(
                method, argument, start_to_close_timeout=limit, retry_policy=retry,
                task_queue=task_queue,
            )  # fmt: skip
        except ActivityError as err:
            raise _failure(err) from None

    async def send(self, node_id: str, message: Outgoing) -> None:
        content = {"type": message.type, "text": message.text, "media": message.media,
                   "template": message.template}  # fmt: skip
        if message.interactive is not None:
            content["interactive"] = message.interactive
        await self._activity(
            FlowActivities.send, FlowSendInput(self._input.run_id, message.seq, content)
        )

    async def sleep(self, node_id: str, seconds: float) -> None:
        await self._wait_for(lambda: False, seconds)

    async def receive(self, node_id: str, within: float | None) -> str | None:
        self._run.waiting_at = node_id
        try:
            if not await self._wait_for(lambda: bool(self._run.replies), within):
                return None
        finally:
            self._run.waiting_at = None
        return self._run.replies.pop(0)

    async def _wait_for(self, ready: Any, seconds: float | None) -> bool:
        """Whether ``ready`` came true before ``seconds`` passed; a cancel interrupts."""
        try:
            await workflow.wait_condition(
                lambda: ready() or self._run.cancelled,
                timeout=timedelta(seconds=seconds) if seconds is not None else None,
            )
        except TimeoutError:
            return False
        if self._run.cancelled:
            raise RunCancelled()
        return True

    async def act(self, node_id: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        argument = FlowActionInput(self._input.run_id, node_id, action, params)
        result: dict[str, Any] = await self._activity(FlowActivities.act, argument)
        return result

    async def http(self, node_id: str, request: dict[str, Any]) -> dict[str, Any]:
        retry = RetryPolicy(
            initial_interval=timedelta(seconds=1),
            maximum_attempts=request["retries"] + 1,
            non_retryable_error_types=["FlowStepFailed"],
        )
        timeout = timedelta(seconds=request["timeout"]) + HTTP_GRACE
        argument = FlowActionInput(self._input.run_id, node_id, "http_request", request)
        result: dict[str, Any] = await self._activity(
            FlowActivities.http_request, argument, retry, timeout, self._input.flows_task_queue
        )
        return result

    async def ai_reply(self, node_id: str, instructions: str | None) -> str:
        params = {"instructions": instructions}
        argument = FlowActionInput(self._input.run_id, node_id, "ai_reply", params)
        reply: str = await self._activity(
            FlowActivities.ai_reply, argument, task_queue=self._input.ai_task_queue
        )
        return reply

    async def checkpoint(self, state: RunState) -> None:
        self._run.state = state
        mirror = FlowMirrorInput(
            self._input.run_id, state.status, state.current, state.variables,
            state.transcript, state.error,
        )  # fmt: skip
        # the last one names the conversation's workflow the run belongs to now (histories
        # from before recorded none: the one that started it)
        self._run.parent = await workflow.execute_activity_method(
            FlowActivities.mirror,
            mirror,
            start_to_close_timeout=policies.DATABASE_TIMEOUT,
            retry_policy=policies.DATABASE_RETRY,
        )


@workflow.defn
class FlowWorkflow:
    def __init__(self) -> None:
        self.replies: list[str] = []
        self.cancelled = False
        self.waiting_at: str | None = None
        self.state: RunState | None = None
        self.parent: str | None = None  # its conversation's workflow, if not the starter

    @workflow.signal
    def reply(self, text: str) -> None:
        self.replies.append(text)

    @workflow.signal
    def cancel(self) -> None:
        self.cancelled = True

    @workflow.query
    def status(self) -> dict[str, Any]:
        state = self.state
        return {
            "status": state.status if state else "running",
            "current_node": state.current if state else None,
            "waiting_for_reply": self.waiting_at,
        }

    @workflow.run
    async def run(self, input: FlowRunInput) -> str:
        context = await workflow.execute_activity_method(
            FlowActivities.begin_run,
            FlowRunRef(input.run_id),
            start_to_close_timeout=policies.DATABASE_TIMEOUT,
            retry_policy=policies.DATABASE_RETRY,
        )
        flow = FlowDefinition.model_validate(context.definition)
        state = RunState.begin(flow, context.contact, context.variables)
        bounds = RUN_LIMITS if workflow.patched(BOUNDED_PATCH) else None
        interactive = workflow.patched(INTERACTIVE_PATCH)
        numbered = interactive and workflow.patched(NUMBERED_PATCH)
        effects = _TemporalEffects(self, input)
        await FlowEngine(flow, effects, bounds, interactive, numbered).run(state)
        await self._tell_parent(input)
        return state.status

    async def _tell_parent(self, input: FlowRunInput) -> None:
        """Its end, to the workflow of the conversation it belongs to now: a merge may have
        moved it into another conversation since it started."""
        owner = self.parent or input.conversation_workflow_id
        parent = workflow.get_external_workflow_handle(owner)
        try:
            await parent.signal(FLOW_ENDED_SIGNAL, FlowEnded(workflow.info().workflow_id))
        except FailureError:  # the conversation's workflow has closed: nothing to clear
            workflow.logger.info("conversation workflow gone; run end not signalled")


class FlowRouting:
    """What the ConversationWorkflow knows of flows: the active run, and starts requested."""

    def __init__(self) -> None:
        self.active: str | None = None  # the workflow id of the conversation's active run
        self.starts: list[FlowStart] = []
        self._input: ConversationInput | None = None

    def restore(self, input: ConversationInput) -> None:
        self._input = input  # the task queues its runs use
        self.active = input.active_flow
        self.starts.extend(input.flow_starts)

    def request_start(self, start: FlowStart) -> None:
        self.starts.append(start)

    def ended(self, ended: FlowEnded) -> None:
        if self.active == ended.workflow_id:
            self.active = None

    def has_work(self) -> bool:
        return bool(self.starts)

    async def start_requested(self, ref: ConversationRef) -> None:
        while self.starts:
            start = self.starts.pop(0)
            if self.active == run_workflow_id(start.run_id):
                continue  # asked again (a retried trigger): it runs already
            if self.active is not None:
                refusal = FlowRefuseInput(start.run_id, self.active)
                if await self._local(FlowActivities.refuse_run, refusal):
                    continue
                self.active = None  # it ended; its flow_ended signal is on its way
            await self._start(ref, start)

    async def route(
        self, ref: ConversationRef, batch: list[InboundMessage], persisted: PersistInboundResult
    ) -> None:
        """Hand the customer's new messages to the active run, or start the run they trigger."""
        customer = [m for m in batch if not m.from_me]
        if not customer:
            return
        texts = [m.body or "" for m in customer]
        if self.active and await self._reply(texts):
            return
        route = FlowRouteInput(
            ref.company_id, persisted.conversation_id, texts, persisted.new_inbound,
            customer[0].key_id,
        )  # fmt: skip
        await self.follow(ref, await self._local(FlowActivities.route_inbound, route), texts)

    async def follow(self, ref: ConversationRef, route: FlowRouteResult, texts: list[str]) -> None:
        """Act on a routing decision (made by the persist activity in its transaction, or by
        ``route_inbound`` in histories written before): hand ``texts`` to the active run, or
        start the run a trigger matched."""
        if route.active_workflow_id and route.active_run_id:
            self.active = route.active_workflow_id
            if not await self._reply(texts):  # its start was lost: let it go
                await self._local(FlowActivities.abandon_run, FlowRunRef(route.active_run_id))
        elif route.start:
            await self._start(ref, route.start)

    @staticmethod
    async def _local(method: Any, argument: Any) -> Any:
        return await workflow.execute_local_activity_method(
            method,
            argument,
            start_to_close_timeout=policies.DATABASE_TIMEOUT,
            retry_policy=policies.DATABASE_RETRY,
        )

    async def _reply(self, texts: list[str]) -> bool:
        """False when the run has ended meanwhile (its ``flow_ended`` is on its way)."""
        assert self.active is not None
        run = workflow.get_external_workflow_handle(self.active)
        try:
            for text in texts:
                await run.signal(FlowWorkflow.reply, text)
        except FailureError:
            self.active = None
            return False
        return True

    async def _start(self, ref: ConversationRef, start: FlowStart) -> None:
        workflow_id = run_workflow_id(start.run_id)
        try:
            await workflow.start_child_workflow(
                FlowWorkflow.run,
                FlowRunInput(
                    run_id=start.run_id,
                    company_id=ref.company_id,
                    conversation_workflow_id=ref.workflow_id,
                    ai_task_queue=self._input.ai_task_queue if self._input else None,
                    flows_task_queue=self._input.flows_task_queue if self._input else None,
                ),
                id=workflow_id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                # a run is started once: asked again after it ended, nothing happens
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(COMPANY_ID, ref.company_id),
                        SearchAttributePair(FLOW_ID, start.flow_id),
                        SearchAttributePair(FLOW_VERSION, start.version),
                    ]
                ),
            )
        except WorkflowAlreadyStartedError:
            return
        self.active = workflow_id
