"""Activities that persist a conversation's inbound messages and announce them (and drop the
cached copy of a contact they changed)."""

from __future__ import annotations

import logging
import time
import uuid

from redis.asyncio import Redis
from temporalio import activity

from zapflow.cache import Cache
from zapflow.db import SessionFactory, transaction
from zapflow.logs import CORRELATION_ID
from zapflow.services import ai_agent, followups
from zapflow.services.contacts import forget_contacts
from zapflow.services.conversations import persist_inbound
from zapflow.services.events import publish_outbox
from zapflow.worker.metrics import WorkerMetrics
from zapflow.workflows.inputs import PersistInboundInput, PersistInboundResult

log = logging.getLogger(__name__)


class ConversationActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        redis: Redis,
        cache: Cache,
        metrics: WorkerMetrics,
        ai_available: bool = False,
    ) -> None:
        self._ai_available = ai_available  # a model provider is configured
        self._sessions = sessions
        self._redis = redis
        self._cache = cache
        self._metrics = metrics

    @activity.defn
    async def persist_inbound(self, input: PersistInboundInput) -> PersistInboundResult:
        ref = input.ref
        CORRELATION_ID.set(",".join(input.correlation_ids) or None)
        async with transaction(self._sessions) as session:
            result = await persist_inbound(
                session,
                uuid.UUID(ref.company_id),
                uuid.UUID(ref.instance_id),
                ref.remote_jid,
                input.messages,
                workflow_id=activity.info().workflow_id,
            )
            cancelled = []
            if result.new_inbound:
                cancelled = await followups.cancel_on_reply(session, result.conversation_id)
            ai_delay = None
            if result.new_inbound and self._ai_available:
                ai_delay = await ai_agent.reply_delay(session, result.conversation_id)
        if result.contact_changed:  # before the events: who hears of them reads the new contact
            await forget_contacts(self._cache, [result.contact_id])
        await publish_outbox(self._sessions, self._redis, result.event_ids)
        if cancelled or ai_delay is not None:  # their events, and an automatic resume's
            await publish_outbox(self._sessions, self._redis)
        self._observe_latency(input, result.new_message_ids)
        log.info(
            "inbound persisted",
            extra={
                "workflow_id": activity.info().workflow_id,
                "message_key_ids": [m.key_id for m in input.messages],
                "new_messages": len(result.new_message_ids),
            },
        )
        return PersistInboundResult(
            conversation_id=str(result.conversation_id),
            contact_id=str(result.contact_id),
            new_message_ids=[str(i) for i in result.new_message_ids],
            new_inbound=result.new_inbound,
            cancelled_followup_ids=[str(f.id) for f in cancelled],
            ai_reply_delay=ai_delay,
        )

    def _observe_latency(self, input: PersistInboundInput, new_ids: list[uuid.UUID]) -> None:
        """Webhook receipt → event published, for the messages this call stored (not replays)."""
        if not new_ids:
            return
        now = time.time()
        for received in input.received_at.values():
            self._metrics.message_latency.record(max(0.0, now - received))
