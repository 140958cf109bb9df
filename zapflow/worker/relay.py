"""The inbox relay: forwards pending inbox rows to Temporal, in arrival order, in batches.

Woken by LISTEN/NOTIFY and by a periodic sweep, at most once per ``relay_pass_interval_ms``
(under load a pass takes what arrived meanwhile). A pass claims up to ``BATCH_SIZE`` pending rows in
a short transaction (``claimed_until``, a lease; SKIP LOCKED, so several relays in several worker
processes share the inbox and never take the same row), makes its Temporal calls outside any
transaction, then marks the rows processed. A relay that dies mid-pass leaves its claim to
expire (``relay_lease_seconds``) and another relay takes the rows again; a second signal is
harmless, because the workflow drops inbox ids it has seen and the persist is idempotent.

Inbound messages are stored here first: every conversation of a pass in one transaction (up to
``STORE_CHUNK`` conversations each; ``ConversationActivities.persist_pass``), which writes each
conversation's persist result on its rows (``inbox_events.persisted``); then each conversation's
workflow gets that result as its signal (ids, no message body) and acts on it (flow routing, the
AI's debounce, cancelled follow-ups) without persisting. A result that sets off none of these
(``PersistInboundResult.needs_workflow``) is not signalled: its messages are stored and on the
stream, and a signal would only cost Temporal a workflow task, or a new run, that does nothing.
So a conversation has a workflow while it has timed or ordered work (a flow, the AI, follow-ups,
SLAs, sends), not for messages alone. A row retried after that commit (its
signal refused, or its relay killed) is signalled with the result written on it, never stored
again. A transaction that fails (a bug, bad data) leaves its conversations' rows to their
workflows' own persist, signalled by reference as before, which retries and dead-letters.
Outbound requests, follow-up changes and flow starts and SLA changes a signal each; a flow cancel
signals the run's own workflow (a run whose workflow is gone ends ``cancelled`` here); campaign
commands start or signal the campaign's workflow (worker/campaign_commands.py); a routing wake
signals (or starts) its team's routing workflow, once per team per pass. A conversation this relay
signalled before gets a plain signal (cheaper for the server than signal-with-start), falling back
to signal-with-start when its workflow has ended. Statuses and connection changes are applied here
directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from zapflow.activities.conversations import STORED, ConversationActivities
from zapflow.config import Settings
from zapflow.db import SessionFactory, autocommit, listen_forever, transaction
from zapflow.models import InboxEventType, InstanceStatus, WhatsAppInstance
from zapflow.services import opt_outs, templates
from zapflow.services.conversations import ChatAddress, chat_keys
from zapflow.services.events import Event, stage
from zapflow.services.flow_runs import cancel_gone
from zapflow.services.inbox import INBOX_CHANNEL
from zapflow.services.messages import StatusOutcome, apply_status, message_status_event
from zapflow.temporal import (
    conversation_input,
    conversation_search_attributes,
    workflow_gone,
)
from zapflow.whatsapp.types import (
    ConnectionUpdate,
    InboundMessage,
    PreferenceUpdate,
    StatusUpdate,
    TemplateUpdate,
    event_from_dict,
)
from zapflow.worker.campaign_commands import relay_campaign_commands
from zapflow.worker.metrics import WorkerMetrics
from zapflow.workflows.conversation import ConversationWorkflow
from zapflow.workflows.flow import FlowWorkflow
from zapflow.workflows.inputs import (
    ConversationRef,
    FlowStart,
    InboundBatch,
    MarkReadInput,
    OutboundBatch,
    PersistInboundInput,
    PersistInboundResult,
    RoutingInput,
)
from zapflow.workflows.mark_read import MarkReadWorkflow, mark_read_workflow_id
from zapflow.workflows.routing import TeamRoutingWorkflow, routing_workflow_id

log = logging.getLogger(__name__)

BATCH_SIZE = 500
SWEEP_SECONDS = 1.0
SIGNAL_CONCURRENCY = 32
SIGNAL_RPC_TIMEOUT = timedelta(seconds=5)
# conversations stored in one transaction (a pass's row locks held for a bounded time), and
# such transactions at once (each holds a pooled connection: worker/main.local_activity_slots)
STORE_CHUNK = 8
STORE_CONCURRENCY = 8
# conversations whose workflow this relay started or signalled: plain signals first
OPEN_WORKFLOWS = 10_000
# inbound addresses whose conversation this relay found (a conversation's key never changes)
CHAT_KEYS = 10_000
# a status for a message not stored yet is retried with growing delays, then dropped
STATUS_RETRY_STEP = timedelta(seconds=2)
STATUS_MAX_ATTEMPTS = 30

CONNECTION_STATES = {
    "open": InstanceStatus.CONNECTED,
    "connecting": InstanceStatus.CONNECTING,
    "close": InstanceStatus.DISCONNECTED,
}

# One statement: claim the oldest pending rows that are due and unclaimed (or whose claim
# expired). A message row returns only what routing needs; the workflow's persist reads the rest.
CLAIM = text(
    """
    UPDATE inbox_events SET claimed_until = now() + make_interval(secs => :lease)
    WHERE id IN (
        SELECT id FROM inbox_events
        WHERE status = 'pending'
          AND (claimed_until IS NULL OR claimed_until < now())
          AND (attempts = 0 OR received_at < now() - attempts * make_interval(secs => :step))
        ORDER BY id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, company_id, instance_id, event_type, correlation_id, received_at, attempts,
        conversation_key, persisted,
        CASE WHEN event_type = 'message'
             THEN jsonb_build_object('remote_jid', payload->'remote_jid',
                                     'from_me', payload->'from_me',
                                     'user_id', payload->'user_id',
                                     'phone', payload->'phone', 'lid', payload->'lid')
             ELSE payload END AS payload
    """
)
FINISH = text(
    """
    UPDATE inbox_events SET status = 'processed', processed_at = now(), claimed_until = NULL,
        persisted = NULL, error = COALESCE(:error, error)
    WHERE id = ANY(:ids)
    """
)
RELEASE = text(
    """
    UPDATE inbox_events SET claimed_until = NULL, attempts = attempts + :retried
    WHERE id = ANY(:ids)
    """
)


@dataclass(frozen=True)
class ClaimedRow:
    id: int
    company_id: Any
    instance_id: Any
    event_type: str
    correlation_id: str | None
    received_at: datetime
    attempts: int
    conversation_key: str | None  # forwarded to this conversation (services/conversations.py)
    persisted: dict[str, Any] | None  # stored by a relay before: its conversation's result
    payload: dict[str, Any]


@dataclass
class ConversationWork:
    ref: ConversationRef
    inbound: list[InboundMessage] = field(default_factory=list)  # given whole (bench/direct.py)
    inbox_ids: list[int] = field(default_factory=list)  # inbound rows
    stored: list[PersistInboundResult] = field(default_factory=list)  # their persists' results
    from_customer: bool = False
    outbound: list[str] = field(default_factory=list)
    followups_changed: bool = False
    slas_changed: bool = False
    flow_starts: list[FlowStart] = field(default_factory=list)
    row_ids: list[int] = field(default_factory=list)
    correlation_ids: list[str] = field(default_factory=list)
    received_at: dict[str, float] = field(default_factory=dict)  # key id → webhook receipt

    def take(self, row: ClaimedRow) -> None:
        self.row_ids.append(row.id)
        if row.correlation_id and row.correlation_id not in self.correlation_ids:
            self.correlation_ids.append(row.correlation_id)


@dataclass
class PassOutcome:
    """What a pass does to its rows once the Temporal calls are made."""

    done: list[int] = field(default_factory=list)
    given_up: list[int] = field(default_factory=list)  # statuses for messages never stored
    retry: list[int] = field(default_factory=list)  # statuses to try again later
    failed: list[int] = field(default_factory=list)  # Temporal refused: released at once
    events: list[Event] = field(default_factory=list)


class InboxRelay:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionFactory,
        temporal: Client,
        metrics: WorkerMetrics,
        persister: ConversationActivities,
    ) -> None:
        self._persister = persister
        self._settings = settings
        self._metrics = metrics
        self._sessions = sessions
        self._temporal = temporal
        self._wake = asyncio.Event()
        self._signals = asyncio.Semaphore(SIGNAL_CONCURRENCY)
        self._stores = asyncio.Semaphore(STORE_CONCURRENCY)
        self._open: OrderedDict[str, None] = OrderedDict()  # workflow ids, least recent first
        self._chat_keys: OrderedDict[ChatAddress, str] = OrderedDict()

    # --- loop -------------------------------------------------------------------------------
    async def run(self) -> None:
        listener = asyncio.create_task(listen_forever(self._settings, INBOX_CHANNEL, self._wake))
        interval = self._settings.relay_pass_interval_ms / 1000
        clock = asyncio.get_running_loop().time
        try:
            while True:
                self._wake.clear()
                started = clock()
                try:
                    moved = await self.relay_once()
                except Exception:
                    log.exception("relay pass failed; retrying")
                    moved = 0
                if moved >= BATCH_SIZE:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), SWEEP_SECONDS)
                # woken soon after a pass: what arrives until the interval is over joins the next
                await asyncio.sleep(max(0.0, started + interval - clock()))
        finally:
            listener.cancel()

    # --- one pass ---------------------------------------------------------------------------
    async def relay_once(self) -> int:
        async with autocommit(self._sessions) as connection:  # one statement
            rows = await _claim(connection, self._settings.relay_lease_seconds)
        if not rows:
            return 0
        outcome = PassOutcome()
        work = self._conversation_work(rows, await self._find_chats(rows))
        await self._store(rows, list(work.values()))
        # a cancel waits for a pass after its run's start: its workflow may not exist yet
        starting = {
            r.payload["start"]["run_id"] for r in rows if r.event_type == InboxEventType.FLOW_START
        }
        cancels = [r for r in rows if r.event_type == InboxEventType.FLOW_CANCEL]
        outcome.failed += [r.id for r in cancels if r.payload["run_id"] in starting]
        cancels = [r for r in cancels if r.payload["run_id"] not in starting]
        others = [r for r in rows if r.event_type not in _SIGNALLED_TYPES]
        campaign_rows = [r for r in rows if r.event_type == InboxEventType.CAMPAIGN]
        if campaign_rows:
            commands = [(r.id, r.payload["campaign_id"]) for r in campaign_rows]
            done, failed = await relay_campaign_commands(
                self._temporal, self._sessions, self._settings, commands
            )
            outcome.done += done
            outcome.failed += failed
        signalled = await asyncio.gather(*(self._signal(w) for w in work.values()))
        for item, ok in zip(work.values(), signalled, strict=True):
            (outcome.done if ok else outcome.failed).extend(item.row_ids)
        reads = [r for r in rows if r.event_type == InboxEventType.READ]
        started = await asyncio.gather(*map(self._mark_read, reads))
        for row, ok in zip(reads, started, strict=True):
            (outcome.done if ok else outcome.failed).append(row.id)
        await self._wake_teams(rows, outcome)
        cancelled = await asyncio.gather(*(self._cancel_flow(row) for row in cancels))
        if others or cancels:
            async with transaction(self._sessions) as session:
                for row, result in zip(cancels, cancelled, strict=True):
                    if result == "gone":
                        await cancel_gone(session, uuid.UUID(row.payload["run_id"]))
                    (outcome.failed if result == "failed" else outcome.done).append(row.id)
                for row in others:
                    await self._apply(session, row, outcome)
                await _finish(session, outcome)
                await stage(session, outcome.events)
        else:  # marking rows only: each UPDATE stands alone (a lease covers a crash between)
            async with autocommit(self._sessions) as connection:
                await _finish(connection, outcome)
        self._count_relayed(rows, {*outcome.done, *outcome.given_up})
        return len(rows)

    def _count_relayed(self, rows: list[ClaimedRow], done: set[int]) -> None:
        for row in rows:
            if row.id in done:
                kind = {"kind": row.event_type}
                self._metrics.relayed_events.with_additional_attributes(kind).add(1)

    async def _find_chats(self, rows: list[ClaimedRow]) -> dict[int, str]:
        """The conversation key of each inbound message's row (``chat_keys``): a BSUID-only
        chat and the same person's phone chat are one. What this relay found before costs no
        query."""
        inbound = [
            r for r in rows if r.event_type == InboxEventType.MESSAGE and not r.conversation_key
        ]
        addresses = dict.fromkeys(_address(r) for r in inbound)
        missing = [address for address in addresses if address not in self._chat_keys]
        if missing:
            async with autocommit(self._sessions) as connection:
                keys = await chat_keys(connection, missing)
            self._chat_keys.update(zip(missing, keys, strict=True))
            while len(self._chat_keys) > CHAT_KEYS:
                self._chat_keys.popitem(last=False)
        found = {address: self._chat_keys[address] for address in addresses}
        for address in addresses:
            self._chat_keys.move_to_end(address)
        return {row.id: found[_address(row)] for row in inbound}

    async def _store(self, rows: list[ClaimedRow], work: list[ConversationWork]) -> None:
        """Store the inbound rows of the pass's conversations, ``STORE_CHUNK`` conversations per
        transaction, in workflow id order (two relays' transactions lock alike), several
        transactions at once; a row stored before brings its result instead."""
        earlier = {r.id: r.persisted for r in rows if r.persisted is not None}
        todo = []
        for item in work:
            found = {tuple(earlier[i]["persisted_inbox_ids"]): earlier[i]
                     for i in item.inbox_ids if i in earlier}  # fmt: skip
            item.stored = [STORED.validate_python(result) for result in found.values()]
            if not item.inbound and any(i not in earlier for i in item.inbox_ids):
                todo.append(item)
        todo.sort(key=lambda w: w.ref.workflow_id)
        chunks = [todo[i : i + STORE_CHUNK] for i in range(0, len(todo), STORE_CHUNK)]
        await asyncio.gather(*(self._store_chunk(chunk, set(earlier)) for chunk in chunks))

    async def _store_chunk(self, chunk: list[ConversationWork], earlier: set[int]) -> None:
        """One transaction's conversations; when it fails (a bug, bad data, a deadlock), their
        rows go by reference to their workflows' own persist."""
        inputs = [
            PersistInboundInput(
                item.ref, inbox_ids=[i for i in item.inbox_ids if i not in earlier],
                route_flows=True,
            )
            for item in chunk
        ]  # fmt: skip
        async with self._stores:
            try:
                results = await self._persister.persist_pass(inputs)
            except (OSError, DBAPIError, ValueError, TypeError, KeyError) as exc:
                log.warning("a pass's persist failed; its workflows persist the rows: %s", exc)
                self._count_stores("fallback", len(chunk))
                return
        self._count_stores("stored", len(chunk))
        for item, result in zip(chunk, results, strict=True):
            item.stored.append(result)

    def _count_stores(self, outcome: str, conversations: int) -> None:
        self._metrics.relay_stores.with_additional_attributes({"outcome": outcome}).add(
            conversations
        )

    def _conversation_work(
        self, rows: list[ClaimedRow], chats: dict[int, str]
    ) -> dict[str, ConversationWork]:
        """The rows for conversations' workflows, grouped by conversation, in arrival order
        (an inbound message by its ``chats`` key)."""
        work: dict[str, ConversationWork] = {}
        for row in rows:
            if row.event_type not in _CONVERSATION_TYPES:
                continue
            remote_jid = row.conversation_key or chats.get(row.id) or row.payload["remote_jid"]
            ref = ConversationRef(str(row.company_id), str(row.instance_id), remote_jid)
            item = work.setdefault(ref.workflow_id, ConversationWork(ref))
            item.take(row)
            if row.event_type == InboxEventType.MESSAGE:
                item.inbox_ids.append(row.id)
                item.from_customer = item.from_customer or not row.payload["from_me"]
            elif row.event_type == InboxEventType.OUTBOUND:
                item.outbound.append(row.payload["message_id"])
            elif row.event_type == InboxEventType.FLOW_START:
                item.flow_starts.append(FlowStart(**row.payload["start"]))
            elif row.event_type == InboxEventType.SLA:
                item.slas_changed = True
            else:
                item.followups_changed = True
        return work

    async def _apply(self, session: AsyncSession, row: ClaimedRow, outcome: PassOutcome) -> None:
        """A status, a connection change, a template's or a user's marketing preference,
        applied here; other rows are only marked done."""
        event = event_from_dict(row.payload) if "kind" in row.payload else None
        if isinstance(event, StatusUpdate):
            result, message = await apply_status(session, row.instance_id, event)
            if message is not None:
                outcome.events.append(message_status_event(message))
            if result != StatusOutcome.UNKNOWN_MESSAGE:
                outcome.done.append(row.id)
            elif row.attempts + 1 < STATUS_MAX_ATTEMPTS:
                outcome.retry.append(row.id)
            else:
                outcome.given_up.append(row.id)
            return
        if isinstance(event, ConnectionUpdate):
            await _apply_connection(session, row, event)
        elif isinstance(event, TemplateUpdate):
            await templates.apply_update(session, row.company_id, event)
        elif isinstance(event, PreferenceUpdate):
            await opt_outs.apply_preference(session, row.company_id, event)
        outcome.done.append(row.id)

    async def _signal(self, work: ConversationWork) -> bool:
        ref = work.ref
        signals = _signals(work)
        if not signals:  # stored, and nothing for the workflow to do
            self._metrics.quiet_conversations.add(1)
            return True
        async with self._signals:
            try:
                for signal, args in signals:
                    await self._deliver(ref, signal, args)
            except (RPCError, OSError, TimeoutError) as exc:
                log.warning("Temporal refused %s; rows stay pending: %s", ref.workflow_id, exc)
                self._open.pop(ref.workflow_id, None)
                return False
        log.debug(
            "relayed",
            extra={
                "workflow_id": ref.workflow_id,
                "inbox_ids": work.inbox_ids,
                "outbound_message_ids": work.outbound,
                "correlation_ids": work.correlation_ids,
            },
        )
        return True

    async def _wake_teams(self, rows: list[ClaimedRow], outcome: PassOutcome) -> None:
        """One wake per team named by the pass's ``routing`` rows."""
        teams: dict[RoutingInput, list[int]] = {}
        for row in rows:
            if row.event_type == InboxEventType.ROUTING:
                team = RoutingInput(str(row.company_id), row.payload["team_id"])
                teams.setdefault(team, []).append(row.id)
        woken = await asyncio.gather(*(self._wake_team(team) for team in teams))
        for ids, ok in zip(teams.values(), woken, strict=True):
            (outcome.done if ok else outcome.failed).extend(ids)

    async def _wake_team(self, team: RoutingInput) -> bool:
        async with self._signals:
            try:
                await self._temporal.start_workflow(
                    TeamRoutingWorkflow.run,
                    team,
                    id=routing_workflow_id(team.company_id, team.team_id),
                    task_queue=self._settings.messages_task_queue,
                    start_signal="wake",
                    rpc_timeout=SIGNAL_RPC_TIMEOUT,
                )
            except (RPCError, OSError, TimeoutError) as exc:
                log.warning("Temporal refused a routing wake; rows stay pending: %s", exc)
                return False
        return True

    async def _cancel_flow(self, row: ClaimedRow) -> str:
        """Tell a flow run's workflow to stop: "signalled", "gone" (never started, or closed:
        the run ends here) or "failed" (Temporal refused; the row stays pending)."""
        handle = self._temporal.get_workflow_handle(row.payload["workflow_id"])
        async with self._signals:
            try:
                await handle.signal(FlowWorkflow.cancel, rpc_timeout=SIGNAL_RPC_TIMEOUT)
            except RPCError as exc:
                return "gone" if workflow_gone(exc) else "failed"
            except (OSError, TimeoutError):
                return "failed"
        return "signalled"

    async def _mark_read(self, row: ClaimedRow) -> bool:
        """Start the best-effort ``MarkReadWorkflow``; False when Temporal refused (the row
        stays pending). One already running for the message is as good as started."""
        message_id = row.payload["message_id"]
        async with self._signals:
            try:
                await self._temporal.start_workflow(
                    MarkReadWorkflow.run,
                    MarkReadInput(message_id),
                    id=mark_read_workflow_id(message_id),
                    task_queue=self._settings.messages_task_queue,
                    rpc_timeout=SIGNAL_RPC_TIMEOUT,
                )
            except WorkflowAlreadyStartedError:
                pass
            except (RPCError, OSError, TimeoutError) as exc:
                log.warning("Temporal refused to mark %s read: %s", message_id, exc)
                return False
        return True

    async def _deliver(self, ref: ConversationRef, signal: Any, args: list[object]) -> None:
        """A plain signal to a workflow this relay knows open; else (or when it has ended since)
        signal-with-start."""
        if ref.workflow_id in self._open:
            self._open.move_to_end(ref.workflow_id)
            handle = self._temporal.get_workflow_handle(ref.workflow_id)
            try:
                await handle.signal(signal, args=args, rpc_timeout=SIGNAL_RPC_TIMEOUT)
                return
            except RPCError as exc:
                if not workflow_gone(exc):
                    raise
        await self._temporal.start_workflow(
            ConversationWorkflow.run,
            conversation_input(self._settings, ref),
            id=ref.workflow_id,
            task_queue=self._settings.messages_task_queue,
            start_signal=signal.__name__,  # a signal's name is its method's
            start_signal_args=args,
            search_attributes=conversation_search_attributes(ref),
            rpc_timeout=SIGNAL_RPC_TIMEOUT,
        )
        self._open[ref.workflow_id] = None
        if len(self._open) > OPEN_WORKFLOWS:
            self._open.popitem(last=False)


_CONVERSATION_TYPES = {
    InboxEventType.MESSAGE,
    InboxEventType.OUTBOUND,
    InboxEventType.FOLLOWUP,
    InboxEventType.FLOW_START,
    InboxEventType.SLA,
}
_SIGNALLED_TYPES = {
    *_CONVERSATION_TYPES,
    InboxEventType.FLOW_CANCEL,
    InboxEventType.READ,
    InboxEventType.CAMPAIGN,
    InboxEventType.ROUTING,
}


def _address(row: ClaimedRow) -> ChatAddress:
    payload = row.payload
    return ChatAddress(
        row.company_id,
        row.instance_id,
        payload["remote_jid"],
        payload.get("user_id"),
        payload.get("phone"),
        payload.get("lid"),
    )


async def _claim(connection: AsyncConnection, lease_seconds: float) -> list[ClaimedRow]:
    parameters = {
        "lease": lease_seconds,
        "step": STATUS_RETRY_STEP.total_seconds(),
        "limit": BATCH_SIZE,
    }
    result = await connection.execute(CLAIM, parameters)
    return sorted((ClaimedRow(**row._mapping) for row in result), key=lambda r: r.id)


async def _finish(session: AsyncSession | AsyncConnection, outcome: PassOutcome) -> None:
    if outcome.done:
        await session.execute(FINISH, {"ids": outcome.done, "error": None})
    if outcome.given_up:
        await session.execute(
            FINISH, {"ids": outcome.given_up, "error": "no stored message has this id"}
        )
    if outcome.retry:
        await session.execute(RELEASE, {"ids": outcome.retry, "retried": 1})
    if outcome.failed:
        await session.execute(RELEASE, {"ids": outcome.failed, "retried": 0})


def _signals(work: ConversationWork) -> list[tuple[Any, list[object]]]:
    """The signals one conversation's rows become, inbound first (it may start the workflow);
    none for messages stored here that need nothing from the workflow."""
    signals: list[tuple[Any, list[object]]] = []
    for result in work.stored:
        if result.needs_workflow():
            stored = InboundBatch(from_customer=work.from_customer, stored=result)
            signals.append((ConversationWorkflow.inbound, [stored]))
    stored_ids = {i for result in work.stored for i in result.persisted_inbox_ids}
    by_reference = [i for i in work.inbox_ids if i not in stored_ids]
    if work.inbound or by_reference:
        batch = InboundBatch(
            messages=work.inbound,
            correlation_ids=work.correlation_ids if work.inbound else [],
            received_at=work.received_at,
            inbox_ids=by_reference,
            from_customer=work.from_customer,
        )
        signals.append((ConversationWorkflow.inbound, [batch]))
    if work.outbound:
        outbound = OutboundBatch(work.outbound, work.correlation_ids)
        signals.append((ConversationWorkflow.outbound, [outbound]))
    if work.followups_changed:
        signals.append((ConversationWorkflow.followups_changed, []))
    if work.slas_changed:
        signals.append((ConversationWorkflow.slas_changed, []))
    signals += [(ConversationWorkflow.start_flow, [start]) for start in work.flow_starts]
    return signals


async def _apply_connection(
    session: AsyncSession, row: ClaimedRow, event: ConnectionUpdate
) -> None:
    state = CONNECTION_STATES.get(event.state, InstanceStatus.UNKNOWN)
    await session.execute(
        update(WhatsAppInstance)
        .where(col(WhatsAppInstance.id) == row.instance_id)
        .values(status=state)
    )
