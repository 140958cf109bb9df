"""Activities behind a conversation's follow-up timers: reload them from ``followup_queue``, and
fire one (queue its message on the idempotent send path, or fail it for the 24-hour window)."""

from __future__ import annotations

import uuid

from temporalio import activity

from zapflow.db import SessionFactory, transaction
from zapflow.services import followups
from zapflow.services.queries import timers_of_chat
from zapflow.workflows.inputs import (
    FireFollowUpInput,
    FireFollowUpResult,
    FollowUpTimer,
    LoadFollowUpsInput,
    LoadFollowUpsResult,
)


class FollowUpActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    @activity.defn
    async def load_followups(self, input: LoadFollowUpsInput) -> LoadFollowUpsResult:
        ref = input.ref
        async with self._sessions() as session:
            instance_id = uuid.UUID(ref.instance_id)
            rows = await timers_of_chat(
                session, instance_id, ref.remote_jid, followups.pending_timers
            )
        return LoadFollowUpsResult(
            [
                FollowUpTimer(str(r.id), r.scheduled_for.timestamp(), r.cancel_on_reply)
                for r in rows or []
            ],
            merged_away=rows is None,
        )

    @activity.defn
    async def fire_followup(self, input: FireFollowUpInput) -> FireFollowUpResult:
        async with transaction(self._sessions) as session:
            message_id = await followups.fire(session, uuid.UUID(input.followup_id))
        return FireFollowUpResult(str(message_id) if message_id else None)
