"""The worker process: Temporal workers for the task queues of its roles (worker/registry.py);
with the ``pipeline`` role also the inbox relay and the outbox publisher. Several processes with
the pipeline role share the inbox (each relay claims its own rows)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

from redis.asyncio import Redis
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from zapflow.activities.conversations import ConversationActivities
from zapflow.cache import Cache, invalidate_on_commit
from zapflow.config import Settings
from zapflow.db import SessionFactory, create_engine, session_factory
from zapflow.egress import Egress, egress_policy
from zapflow.embeddings import Embedders
from zapflow.redis import create_redis
from zapflow.services.events import publish_on_commit, publish_outbox
from zapflow.temporal import connect, runtime_with_metrics
from zapflow.whatsapp import provider_http_client
from zapflow.worker.metrics import ActivityOutcomeInterceptor, WorkerMetrics
from zapflow.worker.registry import ROLES, ai_available, registrations
from zapflow.worker.relay import STORE_CONCURRENCY, InboxRelay
from zapflow.worker.schedules import ensure_schedules

log = logging.getLogger(__name__)
OUTBOX_SWEEP_SECONDS = 2.0
CONNECT_RETRY_SECONDS = 2.0
# The sandbox guards workflow code against non-deterministic calls (clock, random, I/O) and gives
# each run its own copy of the workflow modules. Passing every other module through already cut
# its cost (at 50 msg/s in bench/pipeline_latency.py: delivered ~45 → ~50 msg/s, webhook→SSE p50
# 3.1 s → 0.25 s), but it still executes the workflow modules for every new run (one per new
# conversation) and wraps every activation. The test suite and the replay test run workflows in
# it (ZAPFLOW_WORKFLOW_SANDBOX, tests/conftest.py), so a non-deterministic call fails there;
# workers run without it unless told to.
SANDBOXED_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
)


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The sandbox when ``workflow_sandbox`` asks for it, else workflows run as plain code."""
    return SANDBOXED_RUNNER if settings.workflow_sandbox else UnsandboxedWorkflowRunner()


async def connect_with_retry(settings: Settings) -> Client:
    runtime = (
        runtime_with_metrics(settings.worker_metrics_port) if settings.worker_metrics_port else None
    )
    while True:
        try:
            return await connect(settings, runtime)
        except Exception as exc:
            log.warning("Temporal at %s unreachable (%s); retrying", settings.temporal_address, exc)
            await asyncio.sleep(CONNECT_RETRY_SECONDS)


@asynccontextmanager
async def worker_services(
    settings: Settings, client: Client, roles: Sequence[str] = ROLES
) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Start the roles' Temporal workers (with ``pipeline`` the relay and the outbox publisher;
    with ``campaigns`` the template-sync Schedule made sure of); stop them on exit."""
    engine = create_engine(settings, pre_ping=False)  # every caller here retries
    sessions = session_factory(engine)
    redis = create_redis(settings)
    # flows' triggers and companies' settings, read on every persist: in-process copies, evicted
    # by the invalidations every process publishes (the listener task below); what the
    # activities' and the relay's operations invalidate and stage goes out after their commits
    cache = Cache(redis)
    invalidate_on_commit(sessions, cache)
    publish_on_commit(sessions, redis)
    http = provider_http_client(settings)
    egress = Egress(egress_policy(settings.egress_allowed))
    # the AI agent's related messages: the model its company's search uses (services/search)
    embedders = Embedders(settings)
    runtime = client.service_client.config.runtime or Runtime.default()
    metrics = WorkerMetrics(runtime.metric_meter)
    workers = [
        Worker(
            client,
            task_queue=r.task_queue,
            workflows=list(r.workflows),
            activities=list(r.activities),
            max_concurrent_activities=r.max_concurrent_activities,
            # each persist holds a pooled connection: more at once than the pool only queue for
            # one, or open and close overflow connections (a connect and a backend per persist
            # once the worker falls behind: the collapse seen at 40 msg/s on a loaded machine)
            max_concurrent_local_activities=local_activity_slots(settings),
            max_task_queue_activities_per_second=r.max_activities_per_second,
            # one cached run per open conversation: a run evicted is replayed from its history
            max_cached_workflows=settings.workflow_cache_size,
            sticky_queue_schedule_to_start_timeout=timedelta(
                seconds=settings.workflow_sticky_timeout_seconds
            ),
            workflow_runner=workflow_runner(settings),
            interceptors=[ActivityOutcomeInterceptor(metrics)],
        )
        for r in registrations(
            settings, sessions, redis, cache, http, egress, metrics, embedders, roles
        )
    ]
    if "campaigns" in roles:  # before any task runs: a refusal here leaves nothing to stop
        await ensure_schedules(client, settings)
    tasks = [asyncio.create_task(w.run(), name=f"worker:{w.task_queue}") for w in workers]
    tasks.append(asyncio.create_task(cache.listen(), name="cache invalidations"))
    if "pipeline" in roles:
        persister = ConversationActivities(sessions, cache, metrics, ai_available(settings))
        relay = InboxRelay(settings, sessions, client, metrics, persister)
        tasks.append(asyncio.create_task(relay.run(), name="relay"))
        tasks.append(asyncio.create_task(_publish_outbox_forever(sessions, redis), name="outbox"))
    try:
        yield tasks
    finally:
        for task in tasks[len(workers) :]:
            task.cancel()
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)
        await http.aclose()
        await egress.aclose()
        await embedders.aclose()
        await redis.aclose()
        await engine.dispose()


def local_activity_slots(settings: Settings) -> int:
    """Local activities (persists, follow-up loads) at once: the pool, less the relay's
    persists and a few connections for its claims, the outbox publisher and a commit's own
    publishing."""
    return max(1, settings.database_pool_size - STORE_CONCURRENCY - 4)


async def _publish_outbox_forever(sessions: SessionFactory, redis: Redis) -> None:
    """Publishes the events an activity could not (Redis was down, or it crashed after commit)."""
    while True:
        try:
            while await publish_outbox(sessions, redis):
                pass
        except Exception:
            log.exception("outbox publisher pass failed")
        await asyncio.sleep(OUTBOX_SWEEP_SECONDS)


async def run_worker(settings: Settings, roles: Sequence[str] = ROLES) -> None:
    client = await connect_with_retry(settings)
    log.info("worker (%s) connected to Temporal at %s", ",".join(roles), settings.temporal_address)
    async with worker_services(settings, client, roles) as tasks:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            with contextlib.suppress(asyncio.CancelledError):
                task.result()
