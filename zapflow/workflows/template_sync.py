"""TemplateSyncWorkflow: started by the ``template-sync`` Temporal Schedule (every
``template_sync_seconds``) to sync every Cloud API number's templates from the Graph API, so a
template approved, paused or edited at Meta is seen even when its webhook was missed."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from zapflow.activities.templates import TemplateActivities

SYNC_TIMEOUT = timedelta(minutes=10)
SYNC_HEARTBEAT = timedelta(minutes=1)
SYNC_RETRY = RetryPolicy(initial_interval=timedelta(seconds=10), maximum_attempts=3)


@workflow.defn
class TemplateSyncWorkflow:
    @workflow.run
    async def run(self) -> int:
        return await workflow.execute_activity_method(
            TemplateActivities.sync_all,
            start_to_close_timeout=SYNC_TIMEOUT,
            heartbeat_timeout=SYNC_HEARTBEAT,
            retry_policy=SYNC_RETRY,
        )
