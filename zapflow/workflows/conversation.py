"""ConversationWorkflow: one per WhatsApp chat: its sends, in order, and what its messages set off.

The relay signals it with inbound batches and outbound requests (signal-with-start). The relay
stores inbound messages itself (one transaction per pass, worker/relay.py) and signals what that
persist returned (ids, the flow routing, cancelled follow-ups, the AI's debounce): the workflow
acts on it with no activity. A batch the relay could not store names inbox rows instead: the
persist local activity reads them, stores them in the provider's order and decides the same in one
transaction. Either way customers' texts stay out of the history. A stored batch needs no
``workflow.patched``: no earlier history holds one, and earlier signals take the earlier steps. A
sender task sends queued replies one at a time, so a conversation never has two sends racing, and a
send that retries does not hold back the customer's messages. It ends after a quiet period and
continues-as-new before its history grows large, carrying every pending signal along; it goes on
storing while the send in flight finishes first. A batch that cannot be stored (a bug, bad data:
not an outage) becomes a dead letter after bounded retries instead of holding the conversation
back.

Runs started before inbox references (``PIPELINE_PATCH`` not set) keep the older steps: bodies in
signals, an embedding activity per message, the ``route_inbound`` activity, and a continue-as-new
that waits for the send in flight.

Follow-up timers live here, not in a workflow per follow-up, because "cancelled on reply, before
it can fire" then needs no coordination: the inbound signal handler drops every cancel-on-reply
timer the moment the reply is delivered, and a timer is only fired by the main loop, after every
signal delivered so far has been handled. A reply and a timer that reach the worker together
(the same workflow task) therefore always resolve as "the reply wins". The ``followup_queue`` rows
are the source of truth: a ``followups_changed`` signal makes the workflow reload them, and the
workflow stays open while any is pending.

SLA targets (services/slas.py) are timers here too, the same way: ``sla_targets`` rows are the
truth, an ``slas_changed`` signal (an ``sla`` inbox row) reloads them, a due one runs the
``breach_sla`` local activity, which does nothing to a target completed meanwhile. Runs started
before SLAs never receive that signal; the first reload records ``SLA_PATCH``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, RetryState

with workflow.unsafe.imports_passed_through():
    from zapflow.activities.conversations import ConversationActivities
    from zapflow.activities.followups import FollowUpActivities
    from zapflow.activities.messages import MessageActivities
    from zapflow.activities.slas import SlaActivities
    from zapflow.whatsapp.types import InboundMessage
    from zapflow.workflows import policies
    from zapflow.workflows.ai import AIResponder
    from zapflow.workflows.embeddings import PendingEmbeddings
    from zapflow.workflows.flow import FlowRouting
    from zapflow.workflows.inputs import (
        BreachSlaInput,
        ConversationInput,
        ConversationRef,
        FireFollowUpInput,
        FlowEnded,
        FlowStart,
        FollowUpTimer,
        InboundBatch,
        LoadFollowUpsInput,
        OutboundBatch,
        PersistFailedInput,
        PersistInboundInput,
        PersistInboundResult,
        SendFailedInput,
        SendMessageInput,
        SlaTimer,
    )

IDLE_TIMEOUT = timedelta(hours=6)
MIN_TIMER = timedelta(milliseconds=1)
SEEN_KEY_IDS = 1_000
# inbox references, persist-time flow routing, embeddings off the conversation (a queue fed by
# the database), storing on while a send finishes before continue-as-new
PIPELINE_PATCH = "inbox-references"
# the AI's turn runs as a task beside the main loop, like the sender: a model provider failing
# (retries for minutes) no longer holds back the customer's messages, follow-ups or flows
AI_TURN_PATCH = "ai-turn-task"
# SLA timers: a reload and breaches (new commands, only ever after an ``slas_changed`` signal)
SLA_PATCH = "sla-timers"
# an outbound request naming the message whose send is in flight queues it again (a replay of
# its failure) instead of being dropped as a duplicate
RESEND_PATCH = "resend-in-flight"


@workflow.defn
class ConversationWorkflow:
    def __init__(self) -> None:
        self._inbound: list[InboundMessage] = []
        self._outbound: list[str] = []
        self._seen: deque[str] = deque(maxlen=SEEN_KEY_IDS)
        self._inbox_ids: list[int] = []  # inbound inbox rows to persist
        self._stored: list[PersistInboundResult] = []  # rows the relay stored, to act on
        self._seen_inbox: deque[int] = deque(maxlen=SEEN_KEY_IDS)
        self._by_reference = False  # PIPELINE_PATCH: see the module docstring
        self._correlation_ids: dict[str, str] = {}  # message key id or outbound id → its delivery's
        self._received_at: dict[str, float] = {}  # key id → webhook receipt, for the latency metric
        self._timers: dict[str, FollowUpTimer] = {}  # follow-up id → its timer
        self._reload_followups = False
        self._slas: dict[str, SlaTimer] = {}  # SLA target id → its timer
        self._reload_slas = False
        self._sending = False  # a send is in flight (the sender task)
        self._stopping = False  # continuing as new: the sender starts no new send
        self._ai = AIResponder()
        self._ai_in_task = False  # AI_TURN_PATCH
        self._ai_turn: asyncio.Task[None] | None = None  # the AI's turn in progress
        self._flows = FlowRouting()

    @workflow.signal
    def inbound(self, batch: InboundBatch) -> None:
        fresh = [m for m in batch.messages if m.key_id not in self._seen]
        self._inbound.extend(fresh)
        self._remember(batch.correlation_ids, [m.key_id for m in fresh])
        self._received_at.update(batch.received_at)
        rows = [
            i for i in batch.inbox_ids if i not in self._seen_inbox and i not in self._inbox_ids
        ]
        self._inbox_ids.extend(rows)
        if batch.stored is not None:
            rows = self._take_stored(batch.stored)
        if any(not m.from_me for m in fresh) or (rows and batch.from_customer):  # a reply
            self._timers = {i: t for i, t in self._timers.items() if not t.cancel_on_reply}

    @workflow.signal
    def outbound(self, batch: OutboundBatch) -> None:
        fresh = [i for i in batch.message_ids if not self._queued(i)]
        self._outbound.extend(fresh)
        self._remember(batch.correlation_ids, fresh)

    @workflow.signal
    def followups_changed(self) -> None:
        self._reload_followups = True

    @workflow.signal
    def slas_changed(self) -> None:
        self._reload_slas = True

    @workflow.signal
    def start_flow(self, start: FlowStart) -> None:
        self._flows.request_start(start)

    @workflow.signal
    def flow_ended(self, ended: FlowEnded) -> None:
        self._flows.ended(ended)

    def _queued(self, message_id: str) -> bool:
        """A send of ``message_id`` is still to come. The send in flight does not count
        (RESEND_PATCH): a request for it now is a new one, such as a dead letter's replay
        committed after that send failed but before this run saw the send end (a signal is
        handled before the activity's result when both arrive together). Queued again, the
        send's claim sends the message at most once however often it is asked for."""
        if message_id not in self._outbound:
            return False
        in_flight = self._sending and self._outbound.count(message_id) == 1
        return not (
            in_flight and self._outbound[0] == message_id and workflow.patched(RESEND_PATCH)
        )

    def _take_stored(self, result: PersistInboundResult) -> list[int]:
        """Queue what the relay's persist returned, unless a signal before named its rows (the
        relay retried it); rows queued for this run's own persist (a signal by reference whose
        row the relay stored after all) are not persisted again. The rows taken."""
        rows = result.persisted_inbox_ids
        if any(i in self._seen_inbox for i in rows):
            return []
        self._inbox_ids = [i for i in self._inbox_ids if i not in rows]
        self._seen_inbox.extend(rows)
        self._stored.append(result)
        return rows

    def _remember(self, correlation_ids: list[str], ids: list[str]) -> None:
        if correlation_ids:
            self._correlation_ids.update(dict.fromkeys(ids, correlation_ids[0]))

    @workflow.query
    def pending(self) -> dict[str, int]:
        return {
            "inbound": len(self._inbound),
            "outbound": len(self._outbound),
            "followups": len(self._timers),
            "ai_answer": int(self._ai.due is not None),
            "flow_run": int(self._flows.active is not None),
        }

    @workflow.run
    async def run(self, input: ConversationInput) -> None:
        self._by_reference = workflow.patched(PIPELINE_PATCH)
        self._ai_in_task = self._by_reference and workflow.patched(AI_TURN_PATCH)
        self._inbound.extend(input.inbound)
        self._inbox_ids.extend(input.inbox_ids)
        self._seen_inbox.extend(input.seen_inbox_ids)
        self._stored.extend(input.stored)
        self._outbound.extend(input.outbound)
        self._seen.extend(input.seen_key_ids)
        self._embeddings = PendingEmbeddings(input.embeddings_task_queue)
        self._timers.update((t.followup_id, t) for t in input.followups)
        self._reload_followups = self._reload_followups or input.reload_followups
        self._slas.update((t.target_id, t) for t in input.sla_timers)
        self._reload_slas = self._reload_slas or input.reload_slas
        self._ai.due = input.ai_due
        self._ai.task_queue = input.ai_task_queue
        self._flows.restore(input)
        sender = asyncio.create_task(self._send_queued(input.ref.company_id))
        while True:
            try:
                wakeup, reason = self._next_wakeup()
                await workflow.wait_condition(
                    self._has_work, timeout=wakeup, timeout_summary=reason
                )
            except TimeoutError:
                if self._idle():
                    await self._embeddings.drain()
                    if self._idle() and not self._has_work():
                        sender.cancel()
                        return
            if self._reload_followups:
                await self._load_followups(input.ref)
            if self._reload_slas and workflow.patched(SLA_PATCH):
                await self._load_slas(input.ref)
            if self._inbound or self._inbox_ids:
                persisted = await self._persist_inbound(input)
                if persisted:
                    self._debounce(persisted)
                if persisted and not self._by_reference:
                    self._embeddings.start(input.ref.company_id, persisted.new_message_ids)
            while self._stored:  # stored by the relay: what a persist's result makes happen
                stored = self._stored.pop(0)
                await self._follow(input.ref, stored)
                self._debounce(stored)
            if self._flows.has_work():
                await self._flows.start_requested(input.ref)
            await self._fire_due_followups()
            await self._breach_due_slas()
            if self._ai_in_task:
                if self._ai.is_due() and self._ai_turn is None and not self._stopping:
                    self._ai_turn = asyncio.create_task(self._take_ai_turn(input.ref))
            elif self._ai.is_due() and (answer := await self._ai.answer(input.ref)):
                self._outbound.append(answer)
            if self._should_continue_as_new(input.history_limit):
                self._stopping = True  # the send in flight finishes; the rest are carried over
                if self._by_reference and (self._sending or self._ai_turn is not None):
                    continue  # go on storing meanwhile; the send's or turn's end wakes the loop
                await workflow.wait_condition(lambda: not self._sending)
                await self._embeddings.drain()
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._carried_over(input))

    def _carried_over(self, input: ConversationInput) -> ConversationInput:
        """The next run's input: everything pending, so no signal is lost across it."""
        return ConversationInput(
            ref=input.ref,
            inbound=self._inbound,
            outbound=self._outbound,
            seen_key_ids=list(self._seen),
            history_limit=input.history_limit,
            followups=list(self._timers.values()),
            reload_followups=self._reload_followups,
            ai_due=self._ai.due,
            embeddings_task_queue=input.embeddings_task_queue,
            ai_task_queue=input.ai_task_queue,
            flows_task_queue=input.flows_task_queue,
            active_flow=self._flows.active,
            flow_starts=self._flows.starts,
            inbox_ids=self._inbox_ids,
            seen_inbox_ids=list(self._seen_inbox),
            stored=self._stored,
            sla_timers=list(self._slas.values()),
            reload_slas=self._reload_slas,
        )

    def _has_work(self) -> bool:
        return bool(
            self._inbound
            or self._inbox_ids
            or self._stored
            or self._reload_followups
            or self._reload_slas
            or self._flows.has_work()
            # the send (and the AI's turn) done: continue as new
            or (self._stopping and not self._sending and self._ai_turn is None)
            # the turn in progress ended with another answer due meanwhile
            or (self._ai_in_task and self._ai_turn is None and self._ai.is_due())
        )

    def _idle(self) -> bool:
        """Nothing pending that would need this workflow: it may end."""
        return not (
            self._timers
            or self._slas
            or self._ai.due is not None
            or self._flows.active is not None
            or self._outbound
            or self._sending
            or self._ai_turn is not None
        )

    async def _send_queued(self, company_id: str) -> None:
        """The conversation's one sender: replies go out one at a time, in order, while the main
        loop goes on storing what the customer writes (a send retrying for minutes against a
        failing provider must not hold the customer's messages back)."""
        while True:
            await workflow.wait_condition(lambda: bool(self._outbound) and not self._stopping)
            self._sending = True
            message_id = self._outbound[0]
            await self._send(message_id)
            self._outbound.pop(0)
            self._sending = False
            if not self._by_reference:
                self._embeddings.start(company_id, [message_id])

    async def _take_ai_turn(self, ref: ConversationRef) -> None:
        """The AI's turn (AI_TURN_PATCH): model, tools, answer queued for the sender."""
        try:
            if answer := await self._ai.answer(ref):
                self._outbound.append(answer)
        finally:
            self._ai_turn = None

    def _next_wakeup(self) -> tuple[timedelta, str]:
        """Until the next follow-up or AI answer is due (the idle timeout when none is pending),
        and what the timer waits for, as the Web UI shows it."""
        dues = {t.due: f"follow-up {t.followup_id}" for t in self._timers.values()}
        if self._ai.due is not None and self._ai_turn is None:  # a turn in progress: it ends
            dues.setdefault(self._ai.due, "AI answer (debounce)")
        for sla in self._slas.values():
            dues.setdefault(sla.due, f"SLA target {sla.target_id}")
        if not dues:
            return IDLE_TIMEOUT, "idle: ends unless a message arrives"
        due = min(dues)
        # a zero timeout would mean "no timeout": the shortest real timer instead
        return max(timedelta(seconds=due - workflow.now().timestamp()), MIN_TIMER), dues[due]

    async def _load_followups(self, ref: ConversationRef) -> None:
        self._reload_followups = False
        result = await workflow.execute_local_activity_method(
            FollowUpActivities.load_followups,
            LoadFollowUpsInput(ref),
            start_to_close_timeout=policies.DATABASE_TIMEOUT,
            retry_policy=policies.DATABASE_RETRY,
        )
        self._timers = {t.followup_id: t for t in result.timers}
        if result.merged_away:  # its flow run went with the messages; it reports its end there
            self._flows.active = None

    async def _fire_due_followups(self) -> None:
        while due := [t for t in self._timers.values() if t.due <= workflow.now().timestamp()]:
            timer = min(due, key=lambda t: (t.due, t.followup_id))
            del self._timers[timer.followup_id]
            result = await workflow.execute_local_activity_method(
                FollowUpActivities.fire_followup,
                FireFollowUpInput(timer.followup_id),
                start_to_close_timeout=policies.DATABASE_TIMEOUT,
                retry_policy=policies.DATABASE_RETRY,
            )
            if result.message_id and result.message_id not in self._outbound:
                self._outbound.append(result.message_id)

    async def _load_slas(self, ref: ConversationRef) -> None:
        self._reload_slas = False
        result = await workflow.execute_local_activity_method(
            SlaActivities.load_sla_timers,
            LoadFollowUpsInput(ref),
            start_to_close_timeout=policies.DATABASE_TIMEOUT,
            retry_policy=policies.DATABASE_RETRY,
        )
        self._slas = {t.target_id: t for t in result.timers}

    async def _breach_due_slas(self) -> None:
        while due := [t for t in self._slas.values() if t.due <= workflow.now().timestamp()]:
            timer = min(due, key=lambda t: (t.due, t.target_id))
            del self._slas[timer.target_id]
            await workflow.execute_local_activity_method(
                SlaActivities.breach_sla,
                BreachSlaInput(timer.target_id),
                start_to_close_timeout=policies.DATABASE_TIMEOUT,
                retry_policy=policies.DATABASE_RETRY,
            )

    def _should_continue_as_new(self, history_limit: int) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested() or info.get_current_history_length() > history_limit
        )

    async def _persist_inbound(self, input: ConversationInput) -> PersistInboundResult | None:
        """Store what is pending; None when it became a dead letter."""
        batch = sorted(self._inbound, key=lambda m: (m.timestamp or 0, m.key_id))
        inbox_ids, self._inbound, self._inbox_ids = self._inbox_ids, [], []
        correlation_ids = list(
            dict.fromkeys(c for m in batch if (c := self._correlation_ids.pop(m.key_id, None)))
        )
        # a local activity: one short transaction, recorded as a marker in the same workflow task
        # instead of three history events and two more round trips to the server
        try:
            result = await workflow.execute_local_activity_method(
                ConversationActivities.persist_inbound,
                PersistInboundInput(
                    ref=input.ref,
                    messages=batch,
                    correlation_ids=correlation_ids,
                    received_at={
                        m.key_id: t for m in batch if (t := self._received_at.pop(m.key_id, None))
                    },
                    inbox_ids=inbox_ids,
                    route_flows=self._by_reference,
                ),
                start_to_close_timeout=policies.DATABASE_TIMEOUT,
                retry_policy=policies.DATABASE_RETRY,
            )
        except (ActivityError, ApplicationError) as err:  # a local activity's arrives bare
            await self._dead_letter(input.ref, err, inbox_ids, batch)
            return None
        finally:
            self._seen.extend(m.key_id for m in batch)
            self._seen_inbox.extend(inbox_ids)
        if not self._by_reference:
            await self._flows.route(input.ref, batch, result)
            self._drop_cancelled(result)
        else:
            await self._follow(input.ref, result)
        return result

    async def _follow(self, ref: ConversationRef, result: PersistInboundResult) -> None:
        """The flow routing a persist decided, and the follow-ups it cancelled."""
        if result.flow is not None:
            await self._flows.follow(ref, result.flow, result.flow_replies)
        self._drop_cancelled(result)

    def _drop_cancelled(self, result: PersistInboundResult) -> None:
        for followup_id in result.cancelled_followup_ids:
            self._timers.pop(followup_id, None)

    def _debounce(self, result: PersistInboundResult) -> None:
        """New messages and no flow run holding the conversation: the AI's answer is due."""
        if result.new_message_ids and self._flows.active is None:
            self._ai.debounce(result.ai_reply_delay)

    async def _dead_letter(
        self,
        ref: ConversationRef,
        err: ActivityError | ApplicationError,
        inbox_ids: list[int],
        batch: list[InboundMessage],
    ) -> None:
        cause = err.cause if isinstance(err, ActivityError) else err
        message = cause.message if isinstance(cause, FailureError) else str(cause or err)
        workflow.logger.error("inbound batch not stored, dead-lettered: %s", message)
        await workflow.execute_local_activity_method(
            ConversationActivities.record_persist_failure,
            PersistFailedInput(
                ref=ref,
                error=message,
                inbox_ids=inbox_ids,
                message_key_ids=[m.key_id for m in batch],
            ),
            start_to_close_timeout=policies.DATABASE_TIMEOUT,
            retry_policy=policies.DATABASE_RETRY,
        )

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
