"""The inbox relay: forwards pending inbox rows to Temporal, in arrival order, in batches.

Woken by LISTEN/NOTIFY and by a periodic sweep. Rows are taken with FOR UPDATE SKIP LOCKED, so
several workers share the inbox. Messages and outbound requests become one signal-with-start per
conversation; statuses and connection changes are applied here directly. A row is marked
processed only after Temporal accepted its signal: while Temporal is down rows wait, and a
re-signal after a crash is harmless because the workflow's persistence is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from zapflow.config import Settings
from zapflow.db import SessionFactory, listen_forever
from zapflow.models import (
    InboxEvent,
    InboxEventStatus,
    InboxEventType,
    InstanceStatus,
    WhatsAppInstance,
    utc_now,
)
from zapflow.services.events import Event, publish_outbox, stage
from zapflow.services.inbox import INBOX_CHANNEL
from zapflow.services.messages import StatusOutcome, apply_status, message_status_event
from zapflow.temporal import COMPANY_ID, CONTACT_PHONE, INSTANCE_ID
from zapflow.whatsapp import jid as jids
from zapflow.whatsapp.types import ConnectionUpdate, InboundMessage, StatusUpdate, event_from_dict
from zapflow.worker.metrics import WorkerMetrics
from zapflow.workflows.conversation import ConversationWorkflow
from zapflow.workflows.inputs import ConversationInput, ConversationRef, InboundBatch, OutboundBatch

log = logging.getLogger(__name__)

BATCH_SIZE = 500
SWEEP_SECONDS = 1.0
SIGNAL_CONCURRENCY = 32
SIGNAL_RPC_TIMEOUT = timedelta(seconds=5)
# a status for a message not stored yet is retried with growing delays, then dropped
STATUS_RETRY_STEP = timedelta(seconds=2)
STATUS_MAX_ATTEMPTS = 30

CONNECTION_STATES = {
    "open": InstanceStatus.CONNECTED,
    "connecting": InstanceStatus.CONNECTING,
    "close": InstanceStatus.DISCONNECTED,
}


@dataclass
class ConversationWork:
    ref: ConversationRef
    inbound: list[InboundMessage] = field(default_factory=list)
    outbound: list[str] = field(default_factory=list)
    followups_changed: bool = False
    row_ids: list[int] = field(default_factory=list)
    correlation_ids: list[str] = field(default_factory=list)
    received_at: dict[str, float] = field(default_factory=dict)  # key id → webhook receipt

    def take(self, row: InboxEvent) -> None:
        assert row.id is not None
        self.row_ids.append(row.id)
        if row.correlation_id and row.correlation_id not in self.correlation_ids:
            self.correlation_ids.append(row.correlation_id)


class InboxRelay:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionFactory,
        redis: Redis,
        temporal: Client,
        metrics: WorkerMetrics,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._sessions = sessions
        self._redis = redis
        self._temporal = temporal
        self._wake = asyncio.Event()
        self._signals = asyncio.Semaphore(SIGNAL_CONCURRENCY)

    # --- loop -------------------------------------------------------------------------------
    async def run(self) -> None:
        listener = asyncio.create_task(listen_forever(self._settings, INBOX_CHANNEL, self._wake))
        try:
            while True:
                self._wake.clear()
                try:
                    moved = await self.relay_once()
                except Exception:
                    log.exception("relay pass failed; retrying")
                    moved = 0
                if moved >= BATCH_SIZE:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), SWEEP_SECONDS)
        finally:
            listener.cancel()

    # --- one pass ---------------------------------------------------------------------------
    async def relay_once(self) -> int:
        async with self._sessions() as session, session.begin():
            rows = await self._take_pending(session)
            if not rows:
                return 0
            done, events = await self._handle(session, rows)
            if done:
                await session.execute(
                    update(InboxEvent)
                    .where(col(InboxEvent.id).in_(done))
                    .values(status=InboxEventStatus.PROCESSED, processed_at=utc_now())
                )
            event_ids = await stage(session, events)
        if event_ids:
            await publish_outbox(self._sessions, self._redis, event_ids)
        self._count_relayed(rows, set(done))
        return len(rows)

    def _count_relayed(self, rows: list[InboxEvent], done: set[int]) -> None:
        for row in rows:
            if row.id in done:
                kind = {"kind": row.event_type.value}
                self._metrics.relayed_events.with_additional_attributes(kind).add(1)

    async def _take_pending(self, session: AsyncSession) -> list[InboxEvent]:
        retry_due = col(InboxEvent.received_at) < (
            func.now() - col(InboxEvent.attempts) * STATUS_RETRY_STEP
        )
        query = (
            select(InboxEvent)
            .where(
                col(InboxEvent.status) == InboxEventStatus.PENDING,
                or_(col(InboxEvent.attempts) == 0, retry_due),
            )
            .order_by(col(InboxEvent.id))
            .limit(BATCH_SIZE)
            .with_for_update(skip_locked=True)
        )
        return list((await session.execute(query)).scalars())

    async def _handle(
        self, session: AsyncSession, rows: list[InboxEvent]
    ) -> tuple[list[int], list[Event]]:
        work: dict[str, ConversationWork] = {}
        done: list[int] = []
        events: list[Event] = []
        for row in rows:
            assert row.id is not None
            if row.event_type == InboxEventType.OUTBOUND:
                ref = _ref(row, row.payload["remote_jid"])
                item = work.setdefault(ref.workflow_id, ConversationWork(ref))
                item.outbound.append(row.payload["message_id"])
                item.take(row)
                continue
            if row.event_type == InboxEventType.FOLLOWUP:
                ref = _ref(row, row.payload["remote_jid"])
                item = work.setdefault(ref.workflow_id, ConversationWork(ref))
                item.followups_changed = True
                item.take(row)
                continue
            event = event_from_dict(row.payload)
            if isinstance(event, InboundMessage):
                ref = _ref(row, event.remote_jid)
                item = work.setdefault(ref.workflow_id, ConversationWork(ref))
                item.inbound.append(event)
                item.received_at[event.key_id] = row.received_at.timestamp()
                item.take(row)
            elif isinstance(event, StatusUpdate):
                if await self._apply_status(session, row, event, events):
                    done.append(row.id)
            elif isinstance(event, ConnectionUpdate):
                await _apply_connection(session, row, event)
                done.append(row.id)
        results = await asyncio.gather(*(self._signal(w) for w in work.values()))
        for item, ok in zip(work.values(), results, strict=True):
            if ok:
                done.extend(item.row_ids)
        return done, events

    async def _apply_status(
        self, session: AsyncSession, row: InboxEvent, status: StatusUpdate, events: list[Event]
    ) -> bool:
        """True when the row is finished with (applied, stale, or given up on)."""
        outcome, message = await apply_status(session, row.instance_id, status)
        if message is not None:
            events.append(message_status_event(message))
        if outcome != StatusOutcome.UNKNOWN_MESSAGE:
            return True
        row.attempts += 1
        if row.attempts < STATUS_MAX_ATTEMPTS:
            return False
        row.error = "no stored message has this id"
        return True

    async def _signal(self, work: ConversationWork) -> bool:
        ref = work.ref
        (signal, args), *more = _signals(work)
        async with self._signals:
            try:
                await self._temporal.start_workflow(
                    ConversationWorkflow.run,
                    ConversationInput(
                        ref, embeddings_task_queue=self._settings.embeddings_task_queue
                    ),
                    id=ref.workflow_id,
                    task_queue=self._settings.messages_task_queue,
                    start_signal=signal,
                    start_signal_args=args,
                    search_attributes=_search_attributes(ref),
                    rpc_timeout=SIGNAL_RPC_TIMEOUT,
                )
                handle = self._temporal.get_workflow_handle(ref.workflow_id)
                for signal, args in more:
                    await handle.signal(signal, args=args, rpc_timeout=SIGNAL_RPC_TIMEOUT)
            except (RPCError, OSError, TimeoutError) as exc:
                log.warning("Temporal refused %s; rows stay pending: %s", ref.workflow_id, exc)
                return False
        log.debug(
            "relayed",
            extra={
                "workflow_id": ref.workflow_id,
                "message_key_ids": [m.key_id for m in work.inbound],
                "outbound_message_ids": work.outbound,
                "correlation_ids": work.correlation_ids,
            },
        )
        return True


def _signals(work: ConversationWork) -> list[tuple[str, list[object]]]:
    """The signals one conversation's rows become, inbound first (it may start the workflow)."""
    signals: list[tuple[str, list[object]]] = []
    if work.inbound:
        batch = InboundBatch(work.inbound, work.correlation_ids, work.received_at)
        signals.append(("inbound", [batch]))
    if work.outbound:
        signals.append(("outbound", [OutboundBatch(work.outbound, work.correlation_ids)]))
    if work.followups_changed:
        signals.append(("followups_changed", []))
    return signals


def _ref(row: InboxEvent, remote_jid: str) -> ConversationRef:
    return ConversationRef(str(row.company_id), str(row.instance_id), remote_jid)


def _search_attributes(ref: ConversationRef) -> TypedSearchAttributes:
    pairs = [
        SearchAttributePair(COMPANY_ID, ref.company_id),
        SearchAttributePair(INSTANCE_ID, ref.instance_id),
    ]
    phone = jids.phone_from_jid(ref.remote_jid)
    if phone:
        pairs.append(SearchAttributePair(CONTACT_PHONE, phone))
    return TypedSearchAttributes(pairs)


async def _apply_connection(
    session: AsyncSession, row: InboxEvent, event: ConnectionUpdate
) -> None:
    state = CONNECTION_STATES.get(event.state, InstanceStatus.UNKNOWN)
    await session.execute(
        update(WhatsAppInstance)
        .where(col(WhatsAppInstance.id) == row.instance_id)
        .values(status=state)
    )
