"""Which workflows and activities run on which task queue."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis

from zapflow.activities.ai import AIActivities, ChatModel
from zapflow.activities.conversations import ConversationActivities
from zapflow.activities.embeddings import EmbeddingActivities
from zapflow.activities.flow_triggers import FlowTriggerActivities
from zapflow.activities.flows import FlowActivities
from zapflow.activities.followups import FollowUpActivities
from zapflow.activities.messages import MessageActivities
from zapflow.cache import Cache
from zapflow.config import Settings
from zapflow.db import SessionFactory
from zapflow.egress import Egress
from zapflow.embeddings import Embedder
from zapflow.temporal import TemporalConnection
from zapflow.worker.metrics import WorkerMetrics
from zapflow.workflows.conversation import ConversationWorkflow
from zapflow.workflows.flow import FlowWorkflow
from zapflow.workflows.flow_trigger import FlowTriggerWorkflow


@dataclass(frozen=True)
class QueueRegistration:
    task_queue: str
    workflows: Sequence[type]
    activities: Sequence[Callable[..., Any]]
    max_concurrent_activities: int
    max_activities_per_second: float | None = None  # the whole task queue's, across workers


def registrations(
    settings: Settings,
    sessions: SessionFactory,
    redis: Redis,
    http: httpx.AsyncClient,
    egress: Egress,
    metrics: WorkerMetrics,
    embedder: Embedder,
) -> list[QueueRegistration]:
    ai_available = settings.ai_base_url is not None
    # Redis only (no in-process copy): the worker hears no invalidations, and a flow published
    # must trigger at once
    flow_cache = Cache(redis, l1_ttl=0)
    conversations = ConversationActivities(
        sessions, redis, Cache(redis), metrics, ai_available, flow_cache
    )
    ai = AIActivities(sessions, redis, settings, embedder)
    messages = MessageActivities(sessions, redis, http, egress, settings)
    followups = FollowUpActivities(sessions, redis)
    embeddings = EmbeddingActivities()
    flows = FlowActivities(sessions, redis, flow_cache, egress, ChatModel(settings), embedder)
    # schedule and deal-stage triggers start runs through the conversations' workflows
    flow_triggers = FlowTriggerActivities(sessions, TemporalConnection(settings), settings)
    return [
        QueueRegistration(
            task_queue=settings.messages_task_queue,
            # flow runs share the conversations' queue: they are their children, and a flow's
            # activities are short database writes like theirs (http_request has its timeout)
            workflows=[ConversationWorkflow, FlowWorkflow, FlowTriggerWorkflow],
            activities=[
                conversations.persist_inbound,
                conversations.record_persist_failure,
                messages.send_message,
                messages.record_send_failure,
                followups.load_followups,
                followups.fire_followup,
                ai.complete,
                ai.run_tool,
                ai.send_reply,
                ai.record_failure,
                flows.begin_run,
                flows.send,
                flows.act,
                flows.http_request,
                flows.ai_reply,
                flows.mirror,
                flows.route_inbound,
                flows.refuse_run,
                flows.abandon_run,
                flow_triggers.fire_trigger,
            ],
            max_concurrent_activities=settings.message_worker_concurrency,
        ),
        QueueRegistration(
            # the no-op embed_messages of ConversationWorkflow histories: the embedder process
            # embeds, from the embedding queue (zapflow/worker/embedder.py)
            task_queue=settings.embeddings_task_queue,
            workflows=[],
            activities=[embeddings.embed_messages],
            max_concurrent_activities=settings.message_worker_concurrency,
        ),
    ]
