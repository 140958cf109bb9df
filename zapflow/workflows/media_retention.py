"""MediaRetentionWorkflow: started by the ``media-retention`` Temporal Schedule (every
``media_retention_sweep_seconds``) to delete a batch of uploaded files nothing names, older than
``media_retention_days`` (activities/media_files.py)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from zapflow.activities.media_files import MediaActivities

SWEEP_TIMEOUT = timedelta(minutes=5)
SWEEP_RETRY = RetryPolicy(initial_interval=timedelta(seconds=10), maximum_attempts=3)


@workflow.defn
class MediaRetentionWorkflow:
    @workflow.run
    async def run(self) -> int:
        return await workflow.execute_activity_method(
            MediaActivities.sweep_unused,
            start_to_close_timeout=SWEEP_TIMEOUT,
            retry_policy=SWEEP_RETRY,
        )
