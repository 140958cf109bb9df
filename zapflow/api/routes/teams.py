"""Teams: members with a capacity and a routing mode; transferring a conversation to a team
queues it there, and the team's routing workflow assigns it (services/routing.py); a team's SLA
(services/slas.py) and its CSAT settings (services/csat.py) are part of the team."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import select
from sqlmodel import col

from zapflow.api.deps import CurrentPrincipal, Requires, SessionDep
from zapflow.errors import Conflict
from zapflow.models import Team, TeamMember, User
from zapflow.schemas.teams import MemberPublic, Membership, TeamCreate, TeamPublic, TeamUpdate
from zapflow.services import routing
from zapflow.services.desk import ensure_active_user
from zapflow.services.permissions import Permission
from zapflow.services.queries import get_scoped

router = APIRouter(prefix="/teams", tags=["teams"])


async def _public(session: SessionDep, team: Team) -> TeamPublic:
    rows = await session.execute(
        select(TeamMember)
        .where(col(TeamMember.team_id) == team.id)
        .order_by(col(TeamMember.created_at), col(TeamMember.user_id))
    )
    members = [MemberPublic(user_id=m.user_id, capacity=m.capacity) for m in rows.scalars()]
    return TeamPublic(
        id=team.id,
        name=team.name,
        routing_mode=team.routing_mode,
        first_response_seconds=team.first_response_seconds,
        resolution_seconds=team.resolution_seconds,
        sla_escalation=team.sla_escalation,
        csat=team.csat,
        members=members,
        created_at=team.created_at,
    )


@router.get(
    "",
    summary="The company's teams with their members",
    response_model=list[TeamPublic],
    dependencies=[Requires(Permission.TEAMS_READ)],
)
async def list_teams(principal: CurrentPrincipal, session: SessionDep) -> Any:
    teams = await session.execute(
        select(Team).where(col(Team.company_id) == principal.company_id).order_by(col(Team.name))
    )
    return [await _public(session, team) for team in teams.scalars()]


@router.post(
    "",
    status_code=201,
    summary="Create a team",
    response_model=TeamPublic,
    responses={409: {"description": "another team has this name"}},
    dependencies=[Requires(Permission.TEAMS_MANAGE)],
)
async def create_team(body: TeamCreate, principal: CurrentPrincipal, session: SessionDep) -> Any:
    taken = await session.execute(
        select(col(Team.id)).where(
            col(Team.company_id) == principal.company_id, col(Team.name) == body.name
        )
    )
    if taken.first() is not None:
        raise Conflict("name: another team has this name", details={"field": "name"})
    team = Team(company_id=principal.company_id, **body.model_dump())
    session.add(team)
    await session.flush()
    return await _public(session, team)


@router.patch(
    "/{team_id}",
    summary="Rename a team, change its routing mode or its SLA (new targets apply to conversations "
    "that join it from now)",
    response_model=TeamPublic,
    dependencies=[Requires(Permission.TEAMS_MANAGE)],
)
async def update_team(
    team_id: uuid.UUID,
    body: TeamUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> Any:
    team = await routing.get_team(session, principal.company_id, team_id)
    for name, value in body.model_dump(exclude_unset=True).items():
        setattr(team, name, value)
    await session.flush()
    await routing.request_pass(session, principal.company_id, [team.id])
    return await _public(session, team)


@router.put(
    "/{team_id}/members/{user_id}",
    summary="Add a member to the team, or change their capacity",
    response_model=TeamPublic,
    dependencies=[Requires(Permission.TEAMS_MANAGE)],
)
async def put_member(
    team_id: uuid.UUID,
    user_id: uuid.UUID,
    body: Membership,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> Any:
    team = await routing.get_team(session, principal.company_id, team_id)
    await get_scoped(session, User, principal.company_id, user_id)  # another company's: 404
    await ensure_active_user(session, principal.company_id, user_id, "user_id")
    member = await session.get(TeamMember, (team.id, user_id))
    if member is None:
        member = TeamMember(team_id=team.id, user_id=user_id, company_id=principal.company_id)
        session.add(member)
    member.capacity = body.capacity
    await session.flush()
    await routing.request_pass(session, principal.company_id, [team.id])
    return await _public(session, team)


@router.delete(
    "/{team_id}/members/{user_id}",
    status_code=204,
    summary="Remove a member from the team",
    dependencies=[Requires(Permission.TEAMS_MANAGE)],
)
async def delete_member(
    team_id: uuid.UUID, user_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    team = await routing.get_team(session, principal.company_id, team_id)
    await get_scoped(session, User, principal.company_id, user_id)  # another company's: 404
    member = await session.get(TeamMember, (team.id, user_id))
    if member is not None:
        await session.delete(member)
        await session.flush()
    return Response(status_code=204)
