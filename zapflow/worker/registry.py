"""Which workflows and activities run on which task queue, by worker role.

A role is a task queue with its own activity pool, so a slow model, a tenant's slow URL and the
local embedding model never take the slots of the conversations' sends and persists:

- ``pipeline``: conversations' and flow runs' workflows, persist, sends, follow-ups (and the
  inbox relay and outbox publisher, see worker/main.py);
- ``ai``: the model calls of the AI agent and of flows' ``ai_reply`` nodes;
- ``flows``: flows' ``http_request`` nodes (tenants' URLs);
- ``campaigns``: broadcasts' workflows and their paced sends (and the scheduled template sync),
  so a campaign's 100k sends never take the slots of the conversations' replies.

The fourth role, ``embeddings``, is no Temporal worker: the embedder process drains the
embedding queue (worker/embedder.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis

from zapflow.activities.ai import AIActivities, ChatModel
from zapflow.activities.campaigns import CampaignActivities
from zapflow.activities.conversations import ConversationActivities
from zapflow.activities.embeddings import EmbeddingActivities
from zapflow.activities.flow_triggers import FlowTriggerActivities
from zapflow.activities.flows import FlowActivities
from zapflow.activities.followups import FollowUpActivities
from zapflow.activities.media_files import MediaActivities
from zapflow.activities.messages import MessageActivities
from zapflow.activities.routing import RoutingActivities
from zapflow.activities.slas import SlaActivities
from zapflow.activities.templates import TemplateActivities
from zapflow.cache import Cache
from zapflow.config import Settings
from zapflow.db import SessionFactory
from zapflow.egress import Egress
from zapflow.embeddings import Embedders
from zapflow.services.number_pace import NumberPace
from zapflow.worker.metrics import WorkerMetrics
from zapflow.workflows.campaign import CampaignWorkflow
from zapflow.workflows.conversation import ConversationWorkflow
from zapflow.workflows.flow import FlowWorkflow
from zapflow.workflows.flow_trigger import FlowTriggerWorkflow
from zapflow.workflows.mark_read import MarkReadWorkflow
from zapflow.workflows.media_retention import MediaRetentionWorkflow
from zapflow.workflows.routing import TeamRoutingWorkflow
from zapflow.workflows.template_sync import TemplateSyncWorkflow

ROLES = (
    "pipeline",
    "ai",
    "flows",
    "campaigns",
)  # the Temporal roles; `embeddings` is the embedder process


@dataclass(frozen=True)
class QueueRegistration:
    task_queue: str
    workflows: Sequence[type]
    activities: Sequence[Callable[..., Any]]
    max_concurrent_activities: int
    max_activities_per_second: float | None = None  # the whole task queue's, across workers


def ai_available(settings: Settings) -> bool:
    """A model provider is configured: the persist decides the AI agent's debounce."""
    return settings.ai_base_url is not None


def registrations(
    settings: Settings,
    sessions: SessionFactory,
    redis: Redis,
    cache: Cache,
    http: httpx.AsyncClient,
    egress: Egress,
    metrics: WorkerMetrics,
    embedders: Embedders,
    roles: Sequence[str] = ROLES,
) -> list[QueueRegistration]:
    """The task queues the given roles poll (``cache``: the worker's, for flows' triggers and
    companies' settings)."""
    conversations = ConversationActivities(sessions, cache, metrics, ai_available(settings))
    ai = AIActivities(sessions, settings, embedders)
    pace = NumberPace(redis)
    messages = MessageActivities(sessions, http, egress, settings, pace)
    followups = FollowUpActivities(sessions)
    routing = RoutingActivities(sessions)
    sla = SlaActivities(sessions)
    campaigns = CampaignActivities(sessions, messages, settings, pace)
    template_sync = TemplateActivities(sessions, http, settings)
    media = MediaActivities(sessions, settings)
    embeddings = EmbeddingActivities()
    flows = FlowActivities(sessions, cache, egress, ChatModel(settings), embedders)
    # schedule and deal-stage triggers queue runs' starts in the inbox
    flow_triggers = FlowTriggerActivities(sessions)
    # runs started before the roles call the model and tenants' URLs on the messages queue:
    # it keeps those activities for them
    ai_activities: list[Callable[..., Any]] = [
        ai.complete,
        ai.run_tool,
        ai.record_failure,
        flows.ai_reply,
    ]
    flow_http: list[Callable[..., Any]] = [flows.http_request]
    queues = {
        "pipeline": QueueRegistration(
            task_queue=settings.messages_task_queue,
            # flow runs share the conversations' queue: they are their children, and a flow's
            # activities are short database writes like theirs
            workflows=[
                ConversationWorkflow,
                FlowWorkflow,
                FlowTriggerWorkflow,
                TeamRoutingWorkflow,
                MarkReadWorkflow,
            ],
            activities=[
                conversations.persist_inbound,
                conversations.record_persist_failure,
                messages.send_message,
                messages.record_send_failure,
                messages.mark_read,
                followups.load_followups,
                followups.fire_followup,
                routing.assign_waiting,
                sla.load_sla_timers,
                sla.breach_sla,
                ai.send_reply,
                flows.begin_run,
                flows.send,
                flows.act,
                flows.mirror,
                flows.route_inbound,
                flows.refuse_run,
                flows.abandon_run,
                flow_triggers.fire_trigger,
                *ai_activities,
                *flow_http,
            ],
            max_concurrent_activities=settings.message_worker_concurrency,
        ),
        "ai": QueueRegistration(
            task_queue=settings.ai_task_queue,
            workflows=[],
            activities=ai_activities,
            max_concurrent_activities=settings.ai_worker_concurrency,
        ),
        "flows": QueueRegistration(
            task_queue=settings.flows_task_queue,
            workflows=[],
            activities=flow_http,
            max_concurrent_activities=settings.flow_worker_concurrency,
        ),
        "campaigns": QueueRegistration(
            task_queue=settings.campaigns_task_queue,
            workflows=[CampaignWorkflow, TemplateSyncWorkflow, MediaRetentionWorkflow],
            activities=[
                campaigns.snapshot,
                campaigns.snapshot_when_due,
                campaigns.send_batch,
                campaigns.finish,
                template_sync.sync_all,
                media.sweep_unused,
            ],
            max_concurrent_activities=settings.campaign_worker_concurrency,
        ),
    }
    # the no-op embed_messages of ConversationWorkflow histories: the embedder process embeds,
    # from the embedding queue (zapflow/worker/embedder.py)
    old_embeddings = QueueRegistration(
        task_queue=settings.embeddings_task_queue,
        workflows=[],
        activities=[embeddings.embed_messages],
        max_concurrent_activities=settings.message_worker_concurrency,
    )
    return [queues[role] for role in roles] + ([old_embeddings] if "pipeline" in roles else [])
