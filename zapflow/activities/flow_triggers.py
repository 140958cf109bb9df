"""The activity behind schedule and deal-stage triggers: find who the trigger is for, make a
run for each (once per key, however often the firing is retried), and queue each run's start in
the inbox, in the same transaction (the relay has its conversation's workflow start it)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio import activity

from zapflow.db import SessionFactory, transaction
from zapflow.models import FlowRunStatus, FlowStatus, utc_now
from zapflow.services import flow_runs, flow_triggers, flows
from zapflow.workflows.inputs import (
    FlowTriggerInput,
    FlowTriggerResult,
)

# a deal-stage trigger looks back over several of its polling intervals; run keys deduplicate
DEAL_STAGE_LOOKBACK = timedelta(minutes=10)


class FlowTriggerActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    @activity.defn
    async def fire_trigger(self, input: FlowTriggerInput) -> FlowTriggerResult:
        company_id = uuid.UUID(input.company_id)
        trigger = input.trigger
        started = 0
        async with transaction(self._sessions) as session:
            flow = await flows.get_flow(session, company_id, uuid.UUID(input.flow_id))
            if flow.status != FlowStatus.PUBLISHED:
                return FlowTriggerResult(0)
            if trigger["type"] == "schedule":
                audience = await flow_triggers.tagged_audience(
                    session, company_id, trigger["tag"], input.firing
                )
            else:
                since = utc_now() - DEAL_STAGE_LOOKBACK
                audience = await flow_triggers.stage_audience(
                    session, company_id, trigger["stage_id"], since
                )
            for member in audience:
                run = await flow_triggers.run_for_audience(session, flow, member)
                if run.status != FlowRunStatus.RUNNING or run.current_node_id is not None:
                    continue  # started before (this is a retry or a later poll), or over already
                # queued once per run: a retried firing's second request is the same inbox row
                await flow_runs.request_start(session, run, member.conversation)
                started += 1
        return FlowTriggerResult(started)
