"""TeamRoutingWorkflow: one per team (id ``routing/<company>/<team>``), the only assigner of the
team's queue. Woken by the ``wake`` signal, which the inbox relay sends (or starts the workflow
with) for ``routing`` inbox rows: a conversation queued or unassigned, a member available, a
member's conversation closed, the team changed. Each row is committed with its change, so a
crash after the commit cannot lose the wake. It sweeps every ``SWEEP`` anyway, and runs
``assign_waiting``: one transaction that hands the waiting conversations, oldest first, to the
team's available members by the team's routing mode.

Postgres holds the queue, not this workflow: a worker killed mid-activity leaves either the
committed assignments or none (the activity is retried, and assigns only conversations still
unassigned, under row locks), so nothing is lost or assigned twice. One activity at a time per
team is what keeps round-robin's order.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow

from zapflow.workflows.inputs import RoutingInput
from zapflow.workflows.policies import DATABASE_RETRY

with workflow.unsafe.imports_passed_through():
    from zapflow.activities.routing import RoutingActivities

# a safety net: every change that frees a place or queues a conversation wakes it (the inbox)
SWEEP = timedelta(seconds=30)
# one transaction of at most PASS_LIMIT rows; short, so a pass cut off by a dead worker is
# retried elsewhere soon (the retry finds only what is still waiting)
PASS_TIMEOUT = timedelta(seconds=10)
PASSES_BEFORE_NEW_RUN = 500  # ~3 events a pass: far below Temporal's history limits


def routing_workflow_id(company_id: str, team_id: str) -> str:
    return f"routing/{company_id}/{team_id}"


@workflow.defn
class TeamRoutingWorkflow:
    def __init__(self) -> None:
        self._woken = True  # a first pass at start

    @workflow.signal
    def wake(self) -> None:
        self._woken = True

    @workflow.run
    async def run(self, team: RoutingInput) -> None:
        for _ in range(PASSES_BEFORE_NEW_RUN):
            with contextlib.suppress(TimeoutError):  # the sweep
                await workflow.wait_condition(lambda: self._woken, timeout=SWEEP)
            self._woken = False
            await workflow.execute_activity_method(
                RoutingActivities.assign_waiting,
                team,
                start_to_close_timeout=PASS_TIMEOUT,
                retry_policy=DATABASE_RETRY,
            )
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(team)
