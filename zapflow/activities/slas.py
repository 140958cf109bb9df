"""Activities behind a conversation's SLA timers: reload them from ``sla_targets``, and mark
one breached when its timer fires (services/slas.py decides, escalates and announces)."""

from __future__ import annotations

import uuid

from temporalio import activity

from zapflow.db import SessionFactory, transaction
from zapflow.services import slas
from zapflow.services.queries import timers_of_chat
from zapflow.workflows.inputs import (
    BreachSlaInput,
    LoadFollowUpsInput,
    LoadSlaTimersResult,
    SlaTimer,
)


class SlaActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    @activity.defn
    async def load_sla_timers(self, input: LoadFollowUpsInput) -> LoadSlaTimersResult:
        ref = input.ref
        async with self._sessions() as session:
            instance_id = uuid.UUID(ref.instance_id)
            rows = await timers_of_chat(session, instance_id, ref.remote_jid, slas.pending_timers)
        return LoadSlaTimersResult([SlaTimer(str(r.id), r.due_at.timestamp()) for r in rows or []])

    @activity.defn
    async def breach_sla(self, input: BreachSlaInput) -> bool:
        async with transaction(self._sessions) as session:
            return await slas.breach(session, uuid.UUID(input.target_id))
