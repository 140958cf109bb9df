"""The routing workflow's one activity: hand a team's waiting conversations to its members."""

from __future__ import annotations

import uuid

from temporalio import activity

from zapflow.db import SessionFactory, transaction
from zapflow.services import routing
from zapflow.workflows.inputs import RoutingInput


class RoutingActivities:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    @activity.defn
    async def assign_waiting(self, team: RoutingInput) -> int:
        """How many conversations were assigned (all in one transaction)."""
        async with transaction(self._sessions) as session:
            assigned = await routing.assign_waiting(
                session, uuid.UUID(team.company_id), uuid.UUID(team.team_id)
            )
        return len(assigned)
