"""Activities that persist a conversation's inbound messages (the services stage their events
and invalidate a changed contact's cached copy after the commit), and the dead letter of a batch
that cannot be stored."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import TypeAdapter
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from zapflow.activities.flows import route_all
from zapflow.cache import Cache
from zapflow.db import SessionFactory, transaction
from zapflow.logs import CORRELATION_ID
from zapflow.models import DeadLetter, DeadLetterKind, SlaKind
from zapflow.services import ai_agent, followups, opt_outs, slas
from zapflow.services.contact_merge import merge_revealed
from zapflow.services.conversations import (
    Chat,
    InboxDelivery,
    PersistResult,
    arrival_order,
    persist_chats,
    read_inbound,
)
from zapflow.services.identities import Identity, KnownOwners
from zapflow.services.inbox import mark_persisted
from zapflow.whatsapp.types import InboundMessage
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
            item = _Item(input, deliveries, activity.info().workflow_id)
            results, received = await self._store(session, [item])
        _log_persisted([item], results)
        self._observe_latency(received)
        return results[0]

    async def persist_pass(
        self, inputs: Sequence[PersistInboundInput]
    ) -> list[PersistInboundResult]:
        """Every conversation of a relay pass in one transaction (worker/relay.py): one read of
        the inbox rows, the conversations' persist (a statement per step for them all), and each
        result written on its rows (``inbox_events.persisted``, what a retried row signals
        instead of persisting again); their events are published after the commit, together."""
        relay_context = CORRELATION_ID.set(None)  # each conversation's is set while it is stored
        async with transaction(self._sessions) as session:
            rows = [i for input in inputs for i in input.inbox_ids]
            found = {d.inbox_id: d for d in await read_inbound(session, rows)}
            items = [
                _Item(input, sorted((found[i] for i in input.inbox_ids if i in found),
                                    key=arrival_order), input.ref.workflow_id)
                for input in inputs
            ]  # fmt: skip
            known = await KnownOwners.read(session, [
                (uuid.UUID(item.input.ref.company_id),
                 Identity.of_chat(item.input.ref.remote_jid, messages))
                for item in items if (messages := item.messages())
            ])  # fmt: skip
            results, received = await self._store(session, items, known)
            await mark_persisted(session, {i: STORED.dump_python(r, mode="json") for r in
                                           results for i in r.persisted_inbox_ids})  # fmt: skip
        _log_persisted(items, results)
        CORRELATION_ID.reset(relay_context)
        self._observe_latency(received)
        return results

    async def _store(
        self, session: AsyncSession, items: Sequence[_Item], known: KnownOwners | None = None
    ) -> tuple[list[PersistInboundResult], list[float]]:
        """The conversations' messages stored in the caller's transaction, with what follows
        from them, as one by one, a step at a time for as many as can go together
        (``persist_chats``); and when the webhook received each stored message. ``known``: the
        contacts of the transaction's conversations, read at once."""
        results: list[PersistInboundResult] = []
        received: list[float] = []
        while len(results) < len(items):
            todo = items[len(results) :]
            _correlate(*todo)  # the steps of them all
            stored = await persist_chats(session, [item.chat() for item in todo], known)
            results += await self._follow(session, todo[: len(stored)], stored)
        for item, result in zip(items, results, strict=True):
            received += item.received() if result.new_message_ids else []
        return results, received

    async def _follow(
        self, session: AsyncSession, items: Sequence[_Item], stored: Sequence[PersistResult]
    ) -> list[PersistInboundResult]:
        """What follows from stored messages, in each conversation's order of effects: SLAs,
        follow-ups cancelled (one statement for all), an opt-out keyword, the AI's debounce,
        the flow routing (one read of the runs in progress), then a revealed person's merge."""
        for item, result in zip(items, stored, strict=True):
            _correlate(item)
            if result.reopened:
                await slas.restart(session, result.conversation_id)
            if result.phone_replies:  # a person answered, on the phone: nobody's reply here
                kinds = [SlaKind.FIRST_RESPONSE]
                await slas.complete(session, result.conversation_id, kinds, None)
        replied = [r.conversation_id for r in stored if r.new_inbound]
        cancelled = await followups.cancel_on_reply(session, replied)
        delays: dict[uuid.UUID, float | None] = {}
        for item, result in zip(items, stored, strict=True):
            if not result.new_inbound:
                continue
            _correlate(item)
            company_id = uuid.UUID(item.input.ref.company_id)
            await opt_outs.opt_out_by_keyword(
                session, self._cache, company_id, result.conversation_id, item.messages()
            )
            if self._ai_available:
                delays[result.conversation_id] = await ai_agent.reply_delay(
                    session, result.conversation_id
                )
        flows = await self._route(session, items, stored)
        persisted = []
        for item, result, flow in zip(items, stored, flows, strict=True):
            _correlate(item)
            if result.revealed:  # last: its conversation may be merged into the person's older
                company_id = uuid.UUID(item.input.ref.company_id)
                await merge_revealed(session, company_id, *result.revealed)
            done = cancelled.get(result.conversation_id, [])
            delay = delays.get(result.conversation_id)
            persisted.append(_persisted(item, result, done, delay, flow))
        return persisted

    async def _route(
        self, session: AsyncSession, items: Sequence[_Item], stored: Sequence[PersistResult]
    ) -> list[FlowRouteResult | None]:
        """The flow routing of the conversations whose customer wrote (not forwarded ones)."""
        routes: dict[int, FlowRouteInput] = {}
        for i, (item, result) in enumerate(zip(items, stored, strict=True)):
            customer = [m for m in item.messages() if not m.from_me]
            if item.input.route_flows and customer and not result.forwarded_to:
                routes[i] = FlowRouteInput(
                    company_id=item.input.ref.company_id,
                    conversation_id=str(result.conversation_id),
                    texts=[m.answer() for m in customer],
                    fresh=result.new_inbound,
                    key_id=customer[0].key_id,
                )
        routed = await route_all(session, self._cache, list(routes.values()))
        found = dict(zip(routes, routed, strict=True))
        return [found.get(i) for i in range(len(items))]

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


@dataclass(frozen=True)
class _Item:
    """One conversation of a persist: its input, the inbox rows read for it, its workflow."""

    input: PersistInboundInput
    deliveries: list[InboxDelivery]
    workflow_id: str | None

    def messages(self) -> list[InboundMessage]:
        return [*self.input.messages, *(d.message for d in self.deliveries)]

    def received(self) -> list[float]:
        """When the webhook received each message."""
        return [*self.input.received_at.values(), *(d.received_at for d in self.deliveries)]

    def chat(self) -> Chat:
        ref = self.input.ref
        return Chat(
            uuid.UUID(ref.company_id),
            uuid.UUID(ref.instance_id),
            ref.remote_jid,
            self.messages(),
            workflow_id=self.workflow_id,
            # rows another conversation of the person may take (not messages given whole)
            inbox_ids=[] if self.input.messages else self.input.inbox_ids,
        )


def _correlate(*items: _Item) -> None:
    """The log lines of the conversations' steps carry their deliveries' correlation ids."""
    correlation_ids = [
        c for item in items
        for c in [*item.input.correlation_ids, *(d.correlation_id for d in item.deliveries)]
    ]  # fmt: skip
    CORRELATION_ID.set(",".join(dict.fromkeys(c for c in correlation_ids if c)) or None)


def _persisted(
    item: _Item,
    result: PersistResult,
    cancelled: list[uuid.UUID],
    ai_delay: float | None,
    flow: FlowRouteResult | None,
) -> PersistInboundResult:
    """A conversation's result as the workflow reads it."""
    customer_texts = [m.answer() for m in item.messages() if not m.from_me]
    return PersistInboundResult(
        conversation_id=str(result.conversation_id),
        contact_id=str(result.contact_id),
        new_message_ids=[str(i) for i in result.new_message_ids],
        new_inbound=result.new_inbound,
        cancelled_followup_ids=[str(i) for i in cancelled],
        ai_reply_delay=ai_delay,
        flow=flow,
        # only a run in progress reads the texts (as answers): none go to history otherwise
        flow_replies=customer_texts if flow and flow.active_workflow_id else [],
        persisted_inbox_ids=list(item.input.inbox_ids),
    )


def _log_persisted(items: Sequence[_Item], results: Sequence[PersistInboundResult]) -> None:
    """A line per conversation, once its messages are committed (whoever reads on finds them)."""
    for item, result in zip(items, results, strict=True):
        _correlate(item)
        log.info(
            "inbound persisted",
            extra={
                "workflow_id": item.workflow_id,
                "message_key_ids": [m.key_id for m in item.messages()],
                "new_messages": len(result.new_message_ids),
            },
        )
