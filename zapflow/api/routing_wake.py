"""Waking a team's routing workflow after a commit that changed its queue or its members'
availability (signal-with-start: the first wake starts it). A wake lost between the commit and
the signal (the API process died) costs at most the workflow's sweep interval."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from zapflow.api.state import AppState
from zapflow.db import after_commit
from zapflow.workflows.inputs import RoutingInput
from zapflow.workflows.routing import TeamRoutingWorkflow, routing_workflow_id

RPC_TIMEOUT = timedelta(seconds=5)
log = logging.getLogger(__name__)


def wake_routing(
    session: AsyncSession, state: AppState, company_id: uuid.UUID, team_ids: Iterable[uuid.UUID]
) -> None:
    teams = [RoutingInput(str(company_id), str(team_id)) for team_id in set(team_ids)]

    async def wake() -> None:
        try:
            client = await state.temporal.get()
            for team in teams:
                await _signal(client, state, team)
        except (RPCError, RuntimeError, OSError) as exc:  # committed already: the sweep assigns
            log.warning("routing wake not delivered (%s): the team's sweep will assign", exc)

    if teams:
        after_commit(session, wake)


async def _signal(client: Client, state: AppState, team: RoutingInput) -> None:
    await client.start_workflow(
        TeamRoutingWorkflow.run,
        team,
        id=routing_workflow_id(team.company_id, team.team_id),
        task_queue=state.settings.messages_task_queue,
        start_signal="wake",
        rpc_timeout=RPC_TIMEOUT,
    )
