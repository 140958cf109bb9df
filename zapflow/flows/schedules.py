"""The Temporal Schedules behind a flow's schedule triggers (their cron) and deal-stage
triggers (polled every ``DEAL_STAGE_EVERY``), kept in step with the flow's current version:
publishing replaces them, archiving removes them."""

from __future__ import annotations

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
)
from temporalio.service import RPCError, RPCStatusCode

from zapflow.config import Settings
from zapflow.workflows.flow_trigger import FlowTriggerWorkflow
from zapflow.workflows.inputs import FlowTriggerInput

SCHEDULED = ("schedule", "deal_stage")
DEAL_STAGE_EVERY = timedelta(seconds=30)


def schedule_id(flow_id: str, index: int) -> str:
    return f"flow-trigger/{flow_id}/{index}"


def _spec(trigger: dict[str, Any]) -> ScheduleSpec:
    if trigger["type"] == "schedule":
        return ScheduleSpec(cron_expressions=[trigger["cron"]])
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=DEAL_STAGE_EVERY)])


async def sync_schedules(
    client: Client,
    settings: Settings,
    company_id: str,
    flow_id: str,
    triggers: list[dict[str, Any]],
    previous: list[dict[str, Any]],
) -> None:
    """One schedule per scheduled trigger of ``triggers``; those of ``previous`` (the last
    version's, by position) that are gone are deleted."""
    wanted = {i: t for i, t in enumerate(triggers) if t["type"] in SCHEDULED}
    for index, trigger in wanted.items():
        await _replace(client, settings, company_id, flow_id, index, trigger)
    for index, trigger in enumerate(previous):
        if trigger["type"] in SCHEDULED and index not in wanted:
            await _delete(client, schedule_id(flow_id, index))


async def _replace(
    client: Client,
    settings: Settings,
    company_id: str,
    flow_id: str,
    index: int,
    trigger: dict[str, Any],
) -> None:
    action = ScheduleActionStartWorkflow(
        FlowTriggerWorkflow.run,
        FlowTriggerInput(company_id, flow_id, trigger),
        id=f"flow-trigger-run/{flow_id}/{index}",
        task_queue=settings.messages_task_queue,
    )
    schedule = Schedule(
        action=action,
        spec=_spec(trigger),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    identifier = schedule_id(flow_id, index)
    try:
        await client.create_schedule(identifier, schedule)
    except ScheduleAlreadyRunningError:
        await _delete(client, identifier)
        await client.create_schedule(identifier, schedule)


async def _delete(client: Client, identifier: str) -> None:
    try:
        await client.get_schedule_handle(identifier).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
