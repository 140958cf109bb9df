"""Activities that persist a conversation's inbound messages (the services stage their events
and invalidate a changed contact's cached copy after the commit), and the dead letter of a batch
that cannot be stored."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence

from pydantic import TypeAdapter
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from zapflow.activities.flows import route_inbound
from zapflow.cache import Cache
from zapflow.db import SessionFactory, transaction
from zapflow.logs import CORRELATION_ID
from zapflow.models import DeadLetter, DeadLetterKind, SlaKind
from zapflow.services import ai_agent, followups, opt_outs, slas
from zapflow.services.contact_merge import merge_revealed
from zapflow.services.conversations import (
    InboxDelivery,
    PersistResult,
    persist_inbound,
    read_inbound,
)
from zapflow.services.inbox import mark_persisted
from zapflow.worker.metrics import WorkerMetrics
from zapflow.workflows.inputs import (
    FlowRouteInput,
    FlowRouteResult,
    PersistFailedInput,
    PersistInboundInput,
    PersistInboundResult,
)

log = logging.getLogger(__name__)

# a batch that fails this many times with an error that is not a lost connection is a bug or bad
# data: it becomes a dead letter instead of holding its conversation back forever
PERSIST_ATTEMPTS = 5
# a relay's persist result as ``inbox_events.persisted`` holds it (JSON)
STORED = TypeAdapter(PersistInboundResult)


class ConversationActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        cache: Cache,
        metrics: WorkerMetrics,
        ai_available: bool = False,
    ) -> None:
        self._ai_available = ai_available  # a model provider is configured
        self._sessions = sessions
        self._cache = cache  # published flows' triggers, companies' settings
        self._metrics = metrics

    @activity.defn
    async def persist_inbound(self, input: PersistInboundInput) -> PersistInboundResult:
        try:
            return await self._persist(input)
        except (OSError, OperationalError):
            raise  # the database is away: retried for as long as it takes
        except (DBAPIError, ValueError, TypeError, KeyError) as exc:
            lost = isinstance(exc, DBAPIError) and exc.connection_invalidated  # a restart
            if lost or activity.info().attempt < PERSIST_ATTEMPTS:
                raise
            raise ApplicationError(
                f"{type(exc).__name__}: {exc}", type="PersistFailed", non_retryable=True
            ) from exc

    async def _persist(self, input: PersistInboundInput) -> PersistInboundResult:
        """One transaction: read the inbox rows, store the messages, cancel follow-ups, decide the
        AI's debounce and the flow routing (its events are published after the commit)."""
        async with transaction(self._sessions) as session:
            deliveries = await read_inbound(session, input.inbox_ids) if input.inbox_ids else []
            result, received = await self._store(
                session, input, deliveries, activity.info().workflow_id
            )
        self._observe_latency(received if result.new_message_ids else [])
        return result

    async def persist_pass(
        self, inputs: Sequence[PersistInboundInput]
    ) -> list[PersistInboundResult]:
        """Every conversation of a relay pass in one transaction (worker/relay.py): one read of
        the inbox rows, each conversation's persist, and each result written on its rows
        (``inbox_events.persisted``, what a retried row signals instead of persisting again);
        their events are published after the commit, together."""
        received: list[float] = []
        results = []
        relay_context = CORRELATION_ID.set(None)  # each conversation's is set while it is stored
        async with transaction(self._sessions) as session:
            rows = [i for input in inputs for i in input.inbox_ids]
            found = {d.inbox_id: d for d in await read_inbound(session, rows)}
            for input in inputs:
                mine = [found[i] for i in input.inbox_ids if i in found]
                mine.sort(key=lambda d: (d.message.timestamp or 0, d.message.key_id))
                result, times = await self._store(session, input, mine, input.ref.workflow_id)
                received += times if result.new_message_ids else []
                results.append(result)
            await mark_persisted(session, {i: STORED.dump_python(r, mode="json") for r in
                                           results for i in r.persisted_inbox_ids})  # fmt: skip
        CORRELATION_ID.reset(relay_context)
        self._observe_latency(received)
        return results

    async def _store(
        self,
        session: AsyncSession,
        input: PersistInboundInput,
        deliveries: list[InboxDelivery],
        workflow_id: str | None,
    ) -> tuple[PersistInboundResult, list[float]]:
        """One conversation's messages stored in the caller's transaction, with what follows
        from them; and when the webhook received each."""
        ref = input.ref
        correlation_ids = [*input.correlation_ids, *(d.correlation_id for d in deliveries)]
        CORRELATION_ID.set(",".join(dict.fromkeys(c for c in correlation_ids if c)) or None)
        messages = [*input.messages, *(d.message for d in deliveries)]
        result = await persist_inbound(
            session,
            uuid.UUID(ref.company_id),
            uuid.UUID(ref.instance_id),
            ref.remote_jid,
            messages,
            workflow_id=workflow_id,
            # rows another conversation of the person may take (not messages given whole)
            inbox_ids=[] if input.messages else input.inbox_ids,
        )
        if result.reopened:
            await slas.restart(session, result.conversation_id)
        if result.phone_replies:  # a person answered, on the phone: nobody's reply in zapflow
            await slas.complete(session, result.conversation_id, [SlaKind.FIRST_RESPONSE], None)
        cancelled = []
        if result.new_inbound:
            cancelled = await followups.cancel_on_reply(session, result.conversation_id)
            await opt_outs.opt_out_by_keyword(
                session, self._cache, uuid.UUID(ref.company_id), result.conversation_id, messages
            )
        ai_delay = None
        if result.new_inbound and self._ai_available:
            ai_delay = await ai_agent.reply_delay(session, result.conversation_id)
        flow = await self._route(session, input, result, deliveries)
        if result.revealed:  # last: its conversation may be merged into the person's older
            await merge_revealed(session, uuid.UUID(ref.company_id), *result.revealed)
        log.info(
            "inbound persisted",
            extra={
                "workflow_id": workflow_id,
                "message_key_ids": [m.key_id for m in messages],
                "new_messages": len(result.new_message_ids),
            },
        )
        customer_texts = [m.answer() for m in messages if not m.from_me]
        persisted = PersistInboundResult(
            conversation_id=str(result.conversation_id),
            contact_id=str(result.contact_id),
            new_message_ids=[str(i) for i in result.new_message_ids],
            new_inbound=result.new_inbound,
            cancelled_followup_ids=[str(i) for i in cancelled],
            ai_reply_delay=ai_delay,
            flow=flow,
            # only a run in progress reads the texts (as answers): none go to history otherwise
            flow_replies=customer_texts if flow and flow.active_workflow_id else [],
            persisted_inbox_ids=list(input.inbox_ids),
        )
        received = [*input.received_at.values(), *(d.received_at for d in deliveries)]
        return persisted, received

    async def _route(
        self,
        session: AsyncSession,
        input: PersistInboundInput,
        result: PersistResult,
        deliveries: list[InboxDelivery],
    ) -> FlowRouteResult | None:
        customer = [m for m in [*input.messages, *(d.message for d in deliveries)] if not m.from_me]
        if not (input.route_flows and customer) or result.forwarded_to:
            return None
        route = FlowRouteInput(
            company_id=input.ref.company_id,
            conversation_id=str(result.conversation_id),
            texts=[m.answer() for m in customer],
            fresh=result.new_inbound,
            key_id=customer[0].key_id,
        )
        return await route_inbound(session, self._cache, route)

    @activity.defn
    async def record_persist_failure(self, input: PersistFailedInput) -> None:
        """The dead letter of a batch that could not be stored (its inbox rows keep the data)."""
        async with transaction(self._sessions) as session:
            session.add(
                DeadLetter(
                    company_id=uuid.UUID(input.ref.company_id),
                    kind=DeadLetterKind.OTHER,
                    reference={
                        "workflow_id": input.ref.workflow_id,
                        "inbox_event_ids": input.inbox_ids,
                        "message_key_ids": input.message_key_ids,
                    },
                    error=input.error,
                    attempts=PERSIST_ATTEMPTS,
                )
            )

    def _observe_latency(self, received: list[float]) -> None:
        """Webhook receipt → event published, for the messages a call stored (not replays)."""
        now = time.time()
        for at in received:
            self._metrics.message_latency.record(max(0.0, now - at))
