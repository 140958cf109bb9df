"""Teams and routing: a team's members (with a capacity), its routing mode, the queue of
conversations waiting for a human of the team (``conversations.team_id`` + ``waiting_since``),
and ``assign_waiting``, which the team's routing workflow runs (workflows/routing.py).

- manual: nothing is assigned by itself; agents take waiting conversations ("assign to me").
- round_robin: the next available member after the one given the last conversation
  (``teams.last_assigned_user_id``), in the order members joined; a member at capacity is
  skipped.
- least_busy: the available member with the fewest open conversations, under capacity; ties go
  to the member who joined first.

Waiting conversations are read oldest first under ``FOR UPDATE`` and the team row is locked for
the pass, so two passes can never hand out the same conversation or the same turn. A pass waits
for a waiting conversation another transaction holds (an agent opening it: ``mark_read``), for
at most ``LOCK_WAIT`` (then it fails and its activity retries): skipping it instead left it
waiting, with no wake to come, until the routing workflow's next sweep.

Whatever may move a team's queue (a conversation queued, a member available, the team changed)
wakes its routing workflow through the durable inbox (``request_pass``: a ``routing`` row in the
same transaction, relayed after the commit), so a crash after the commit cannot lose the wake.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.errors import NotFound
from zapflow.models import (
    Availability,
    Conversation,
    ConversationStatus,
    RoutingMode,
    SystemNoteKind,
    Team,
    TeamMember,
    User,
    utc_now,
)
from zapflow.services import slas, system_notes
from zapflow.services.conversations import conversation_updated
from zapflow.services.events import stage
from zapflow.services.inbox import store_routing_wake
from zapflow.services.queries import get_scoped

PASS_LIMIT = 200  # conversations one pass may assign (the next wake takes the rest)
# a desk action holds a conversation's row for one short transaction; longer fails the pass
LOCK_WAIT = "5s"


@dataclass
class Candidate:
    user_id: uuid.UUID
    capacity: int
    load: int  # open conversations assigned to them now

    @property
    def free(self) -> bool:
        return self.load < self.capacity


async def _candidates(session: AsyncSession, team_id: uuid.UUID) -> list[Candidate]:
    """The team's available, active members in the order they joined, with their load."""
    load = (
        select(func.count())
        .where(
            col(Conversation.assigned_user_id) == col(TeamMember.user_id),
            col(Conversation.status) == ConversationStatus.OPEN,
        )
        .scalar_subquery()
    )
    rows = await session.execute(
        select(col(TeamMember.user_id), col(TeamMember.capacity), load)
        .join(User, col(User.id) == col(TeamMember.user_id))
        .where(
            col(TeamMember.team_id) == team_id,
            col(User.is_active).is_(True),
            col(User.availability) == Availability.AVAILABLE,
        )
        .order_by(col(TeamMember.created_at), col(TeamMember.user_id))
    )
    return [Candidate(user_id, capacity, count) for user_id, capacity, count in rows]


def _pick(team: Team, candidates: list[Candidate], skip: uuid.UUID | None) -> Candidate | None:
    """The member to hand the next conversation to, never ``skip`` (its passed-over member)."""
    free = [c for c in candidates if c.free and c.user_id != skip]
    if not free:
        return None
    if team.routing_mode == RoutingMode.LEAST_BUSY:
        return min(free, key=lambda c: c.load)  # min keeps the first of equals
    order = [c.user_id for c in candidates]
    start = (
        order.index(team.last_assigned_user_id) + 1 if team.last_assigned_user_id in order else 0
    )
    for offset in range(len(candidates)):
        candidate = candidates[(start + offset) % len(candidates)]
        if candidate in free:
            return candidate
    return None


async def assign_waiting(
    session: AsyncSession, company_id: uuid.UUID, team_id: uuid.UUID
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Hands the team's waiting conversations, oldest first, to its members by the team's
    mode; returns (conversation, user) pairs. A team deleted meanwhile assigns nothing."""
    await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
    team = (
        await session.execute(
            select(Team)
            .where(col(Team.id) == team_id, col(Team.company_id) == company_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if team is None or team.routing_mode == RoutingMode.MANUAL:
        return []
    candidates = await _candidates(session, team_id)
    if not any(c.free for c in candidates):
        return []
    waiting = (
        await session.execute(
            select(Conversation)
            .where(
                col(Conversation.team_id) == team_id,
                col(Conversation.waiting_since).is_not(None),
                col(Conversation.assigned_user_id).is_(None),
                col(Conversation.status) == ConversationStatus.OPEN,
            )
            .order_by(col(Conversation.waiting_since), col(Conversation.id))
            .limit(PASS_LIMIT)
            .with_for_update()
        )
    ).scalars()
    assigned = []
    for conversation in waiting:
        chosen = _pick(team, candidates, conversation.passed_over_user_id)
        if chosen is None:
            if any(c.free for c in candidates):
                continue  # only its passed-over member is free: it waits, the next may not
            break
        conversation.assigned_user_id = chosen.user_id
        conversation.waiting_since = None
        conversation.passed_over_user_id = None
        chosen.load += 1
        team.last_assigned_user_id = chosen.user_id
        assigned.append((conversation.id, chosen.user_id))
        await stage(session, [conversation_updated(conversation)])
        await system_notes.add(
            session,
            conversation,
            SystemNoteKind.ASSIGNED,
            user_id=chosen.user_id,
            team_id=team_id,
            detail="routing",
        )
    await session.flush()
    return assigned


async def request_pass(
    session: AsyncSession, company_id: uuid.UUID, team_ids: Iterable[uuid.UUID]
) -> None:
    """Wake each team's routing workflow once this transaction commits (durably: see above)."""
    for team_id in set(team_ids):
        await store_routing_wake(session, company_id, team_id)


async def get_team(
    session: AsyncSession, company_id: uuid.UUID, team_id: uuid.UUID, field: str = "team_id"
) -> Team:
    try:
        return await get_scoped(session, Team, company_id, team_id)
    except NotFound:
        raise NotFound(f"{field}: no such team", details={"field": field}) from None


async def team_named(session: AsyncSession, company_id: uuid.UUID, name: str) -> Team | None:
    found = await session.execute(
        select(Team).where(col(Team.company_id) == company_id, col(Team.name) == name)
    )
    return found.scalar_one_or_none()


async def queue_conversation(
    session: AsyncSession,
    conversation: Conversation,
    team: Team,
    actor_user_id: uuid.UUID | None = None,
) -> None:
    """The conversation waits for a human of ``team`` (transfer, or a flow's handoff): it leaves
    its assignee and joins the back of the team's queue, announced as ``conversation.updated``
    with a system note; it is held to the team's SLA from now, and the team's routing woken."""
    conversation.team_id = team.id
    conversation.assigned_user_id = None
    conversation.passed_over_user_id = None
    conversation.waiting_since = utc_now()
    await slas.start(session, conversation, team)
    await session.flush()
    await stage(session, [conversation_updated(conversation)])
    await system_notes.add(
        session,
        conversation,
        SystemNoteKind.TRANSFERRED,
        actor_user_id=actor_user_id,
        team_id=team.id,
    )
    await request_pass(session, conversation.company_id, [team.id])


async def member_teams(session: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    """The teams the user belongs to (a wake for each when the user becomes available)."""
    rows = await session.execute(
        select(col(TeamMember.team_id)).where(col(TeamMember.user_id) == user_id)
    )
    return list(rows.scalars())
