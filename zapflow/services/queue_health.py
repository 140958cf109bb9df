"""Queue health: each Temporal task queue's backlog and pollers, plus the inbox's and the embedding
queue's backlogs, with the seed's warning (100) and critical (500) thresholds; also exported as
Prometheus gauges."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from prometheus_client import Gauge
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from zapflow.config import Settings
from zapflow.db import SessionFactory
from zapflow.services.embeddings import embedding_backlog
from zapflow.services.inbox import Backlog, inbox_backlog

Level = Literal["ok", "warning", "critical"]
QUEUE_BACKLOG = Gauge("zapflow_queue_backlog", "Tasks waiting, by queue", ["queue"])
QUEUE_POLLERS = Gauge("zapflow_queue_pollers", "Workers polling, by task queue", ["queue"])
TASK_TYPES = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)


@dataclass(frozen=True)
class QueueHealth:
    queue: str
    kind: Literal["temporal", "inbox", "embedding_queue"]
    backlog: int
    oldest_age_seconds: float
    pollers: int | None
    level: Level


def level_of(backlog: int, settings: Settings) -> Level:
    if backlog > settings.queue_critical_backlog:
        return "critical"
    return "warning" if backlog > settings.queue_warning_backlog else "ok"


def task_queues(settings: Settings) -> list[str]:
    return [
        settings.messages_task_queue,
        settings.embeddings_task_queue,
        settings.flows_task_queue,
        settings.ai_task_queue,
        settings.followups_task_queue,
    ]


async def _describe(client: Client, settings: Settings, queue: str) -> QueueHealth:
    responses = await asyncio.gather(
        *(
            client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=settings.temporal_namespace,
                    task_queue=TaskQueue(name=queue),
                    task_queue_type=task_type,
                    report_stats=True,
                )
            )
            for task_type in TASK_TYPES
        )
    )
    backlog = sum(r.stats.approximate_backlog_count for r in responses)
    age = max(r.stats.approximate_backlog_age.ToTimedelta().total_seconds() for r in responses)
    pollers = sum(len(r.pollers) for r in responses)
    return QueueHealth(queue, "temporal", backlog, age, pollers, level_of(backlog, settings))


def _table(
    kind: Literal["inbox", "embedding_queue"], backlog: Backlog, settings: Settings
) -> QueueHealth:
    """A queue kept in a Postgres table: no pollers to report."""
    return QueueHealth(
        kind, kind, backlog.pending, backlog.oldest_age_seconds, None,
        level_of(backlog.pending, settings),
    )  # fmt: skip


async def queue_health(
    client: Client, settings: Settings, sessions: SessionFactory
) -> list[QueueHealth]:
    tables = [
        _table("inbox", await inbox_backlog(sessions), settings),
        _table("embedding_queue", await embedding_backlog(sessions), settings),
    ]
    described = (_describe(client, settings, queue) for queue in task_queues(settings))
    temporal = await asyncio.gather(*described)
    report = [*tables, *temporal]
    for item in report:
        QUEUE_BACKLOG.labels(item.queue).set(item.backlog)
        if item.pollers is not None:
            QUEUE_POLLERS.labels(item.queue).set(item.pollers)
    return report
