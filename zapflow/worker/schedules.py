"""The Temporal Schedules, made sure of on every campaigns worker start: created when missing,
brought to the configured interval when they exist (so several workers starting at once, or a
restart, leave exactly one of each). ``template-sync`` syncs the numbers' templates;
``media-retention`` sweeps uploaded files nothing names."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from zapflow.config import Settings
from zapflow.workflows.media_retention import MediaRetentionWorkflow
from zapflow.workflows.template_sync import TemplateSyncWorkflow

SCHEDULE_ID = "template-sync"
MEDIA_SCHEDULE_ID = "media-retention"


def _every(run: Callable[..., Any], workflow_id: str, seconds: float, queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(run, id=workflow_id, task_queue=queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=seconds))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


def schedules(settings: Settings) -> dict[str, Schedule]:
    queue = settings.campaigns_task_queue
    return {
        SCHEDULE_ID: _every(
            TemplateSyncWorkflow.run, "template-sync-run", settings.template_sync_seconds, queue
        ),
        MEDIA_SCHEDULE_ID: _every(
            MediaRetentionWorkflow.run,
            "media-retention-run",
            settings.media_retention_sweep_seconds,
            queue,
        ),
    }


async def ensure_schedules(client: Client, settings: Settings) -> None:
    for schedule_id, schedule in schedules(settings).items():
        try:
            await client.create_schedule(schedule_id, schedule)
        except ScheduleAlreadyRunningError:

            def replace(_: ScheduleUpdateInput, schedule: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=schedule)

            await client.get_schedule_handle(schedule_id).update(replace)
