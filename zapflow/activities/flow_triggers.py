"""The activity behind schedule and deal-stage triggers: find who the trigger is for, make a
run for each (once per key, however often the firing is retried), and have each
conversation's workflow start it as its child."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio import activity

from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.flows.starter import start_in_conversation
from zapflow.models import FlowRunStatus, FlowStatus, utc_now
from zapflow.services import flow_triggers, flows
from zapflow.temporal import TemporalConnection
from zapflow.workflows.inputs import (
    ConversationRef,
    FlowStart,
    FlowTriggerInput,
    FlowTriggerResult,
)

# a deal-stage trigger looks back over several of its polling intervals; run keys deduplicate
DEAL_STAGE_LOOKBACK = timedelta(minutes=10)


class FlowTriggerActivities:
    def __init__(
        self, sessions: SessionFactory, temporal: TemporalConnection, settings: Settings
    ) -> None:
        self._sessions = sessions
        self._temporal = temporal
        self._settings = settings

    @activity.defn
    async def fire_trigger(self, input: FlowTriggerInput) -> FlowTriggerResult:
        company_id = uuid.UUID(input.company_id)
        trigger = input.trigger
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
            runs = [(a, await flow_triggers.run_for_audience(session, flow, a)) for a in audience]
        client = await self._temporal.get()
        started = 0
        for member, run in runs:
            if run.status != FlowRunStatus.RUNNING or run.current_node_id is not None:
                continue  # started before (this is a retry or a later poll), or over already
            conversation = member.conversation
            ref = ConversationRef(
                str(conversation.company_id), str(conversation.instance_id), conversation.remote_jid
            )
            start = FlowStart(str(run.id), str(run.flow_id), run.flow_version)
            await start_in_conversation(client, self._settings, ref, start)
            started += 1
        return FlowTriggerResult(started)
