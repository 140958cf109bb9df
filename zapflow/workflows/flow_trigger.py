"""FlowTriggerWorkflow: what a flow's Temporal Schedule starts, for a schedule trigger (its
cron) or a deal-stage trigger (a short polling interval): one activity that starts the runs."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from zapflow.activities.flow_triggers import FlowTriggerActivities
    from zapflow.workflows import policies
    from zapflow.workflows.inputs import FlowTriggerInput, FlowTriggerResult

FIRE_TIMEOUT = timedelta(minutes=5)


@workflow.defn
class FlowTriggerWorkflow:
    @workflow.run
    async def run(self, input: FlowTriggerInput) -> FlowTriggerResult:
        # each firing has its own workflow id (the schedule appends its time): its runs' key
        firing = FlowTriggerInput(
            input.company_id, input.flow_id, input.trigger, workflow.info().workflow_id
        )
        return await workflow.execute_activity_method(
            FlowTriggerActivities.fire_trigger,
            firing,
            start_to_close_timeout=FIRE_TIMEOUT,
            retry_policy=policies.DATABASE_RETRY,
        )
