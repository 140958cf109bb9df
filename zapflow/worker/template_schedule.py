"""The ``template-sync`` Temporal Schedule, made sure of on every campaigns worker start: created
when missing, brought to the configured interval when it exists (so several workers starting
at once, or a restart, leave exactly one)."""

from __future__ import annotations

from datetime import timedelta

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
from zapflow.workflows.template_sync import TemplateSyncWorkflow

SCHEDULE_ID = "template-sync"


def template_schedule(settings: Settings) -> Schedule:
    every = timedelta(seconds=settings.template_sync_seconds)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            TemplateSyncWorkflow.run,
            id="template-sync-run",
            task_queue=settings.campaigns_task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_template_schedule(client: Client, settings: Settings) -> None:
    schedule = template_schedule(settings)
    try:
        await client.create_schedule(SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(SCHEDULE_ID).update(replace)
