"""SLAs: a team's first-response and resolution targets, counted in the company's business time
(its time zone, weekly hours and holidays: services/business_hours.py).

A conversation joining a team with an SLA (a transfer, a flow's handoff) is held to the team's
targets from then: one ``sla_targets`` row per target, due at the start plus the target in
business time; the targets of a team it leaves are cancelled. A person's first reply completes
the first-response target, closing completes the resolution target (and cancels a first
response never given): ``met`` by the due time, ``missed`` after it. The conversation's
workflow holds a timer per pending target (reloaded from the rows on an ``sla`` inbox row) and
calls ``breach`` when one is due: the target is missed, the conversation marked
(``sla_breached_at``), a system note and an ``sla.breached`` event tell the assignee and the
supervisors, and the team's escalation runs (back to the team's queue, or a higher priority).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zapflow.models import (
    Company,
    Conversation,
    ConversationPriority,
    ConversationStatus,
    SlaEscalation,
    SlaKind,
    SlaStatus,
    SlaTarget,
    SystemNoteKind,
    Team,
    utc_now,
)
from zapflow.services import system_notes
from zapflow.services.business_hours import MAX_DAYS, add_business_time, business_time_between
from zapflow.services.conversations import conversation_updated
from zapflow.services.events import Event, stage
from zapflow.services.inbox import store_routing_wake, store_slas_changed

# a timer may fire this much before the due time by our clock (the Temporal server's may differ)
CLOCK_SKEW = timedelta(seconds=5)


def holidays_of(company: Company) -> frozenset[date]:
    """The company's holidays (``settings.holidays``, ISO dates; the settings' schema checks
    them on write)."""
    days = company.settings.get("holidays") or []
    return frozenset(day if isinstance(day, date) else date.fromisoformat(day) for day in days)


@dataclass(frozen=True)
class Calendar:
    """What the company's business time is counted by: its zone, weekly hours and holidays."""

    timezone: str
    hours: dict[str, list[list[str]]]
    holidays: frozenset[date]

    @classmethod
    def of(cls, company: Company) -> Calendar:
        return cls(company.timezone, dict(company.business_hours), holidays_of(company))

    def after(self, start: datetime, span: timedelta) -> datetime:
        """``span`` of business time after ``start``; hours too short to hold it within
        ``MAX_DAYS`` (a minute a week and a target of days) make it due then."""
        try:
            return add_business_time(start, span, self.timezone, self.hours, self.holidays)
        except ValueError:
            return start + timedelta(days=MAX_DAYS)

    def between(self, start: datetime, end: datetime) -> timedelta:
        return business_time_between(start, end, self.timezone, self.hours, self.holidays)


def due_at(company: Company, started_at: datetime, seconds: int) -> datetime:
    """``seconds`` of business time after ``started_at``."""
    return Calendar.of(company).after(started_at, timedelta(seconds=seconds))


async def start(
    session: AsyncSession, conversation: Conversation, team: Team, now: datetime | None = None
) -> None:
    """Hold the conversation to ``team``'s targets from ``now`` (the clock's by default; a test
    starts one before a DST change to see its timer fire after it), the pending ones of an
    earlier team cancelled; its workflow is told through the inbox."""
    await session.execute(
        update(SlaTarget)
        .where(
            col(SlaTarget.conversation_id) == conversation.id,
            col(SlaTarget.status) == SlaStatus.PENDING,
        )
        .values(status=SlaStatus.CANCELLED)
    )
    conversation.sla_breached_at = None
    targets = {
        SlaKind.FIRST_RESPONSE: team.first_response_seconds,
        SlaKind.RESOLUTION: team.resolution_seconds,
    }
    if not any(targets.values()):
        return
    company = await session.get(Company, conversation.company_id)
    assert company is not None
    now = now or utc_now()
    for kind, seconds in targets.items():
        if seconds:
            session.add(
                SlaTarget(
                    company_id=conversation.company_id,
                    conversation_id=conversation.id,
                    team_id=team.id,
                    kind=kind,
                    started_at=now,
                    due_at=due_at(company, now, seconds),
                )
            )
    await session.flush()
    await store_slas_changed(
        session, conversation.company_id, conversation.instance_id, conversation.remote_jid
    )


async def reschedule(session: AsyncSession, company: Company, before: Calendar) -> int:
    """The company's business time changed (zone, hours or holidays): each pending target keeps
    the business time it had left by the old calendar, counted from now by the new one, and its
    conversation's workflow reloads its timers. A target already due stays due. Returns how
    many conversations' targets moved. One read and the targets' updates, in the caller's
    transaction (an admin's rare edit; the pending targets are open conversations')."""
    after = Calendar.of(company)
    if after == before:
        return 0
    rows = await session.execute(
        select(SlaTarget, col(Conversation.instance_id), col(Conversation.remote_jid))
        .join(Conversation, col(Conversation.id) == col(SlaTarget.conversation_id))
        .where(
            col(SlaTarget.company_id) == company.id,
            col(SlaTarget.status) == SlaStatus.PENDING,
        )
        .with_for_update(of=SlaTarget)
    )
    now = utc_now()
    moved: dict[uuid.UUID, tuple[uuid.UUID, str]] = {}
    for target, instance_id, remote_jid in rows:
        if target.due_at <= now:
            continue
        due = after.after(now, before.between(now, target.due_at))
        if due != target.due_at:
            target.due_at = due
            moved[target.conversation_id] = (instance_id, remote_jid)
    await session.flush()
    for instance_id, remote_jid in moved.values():
        await store_slas_changed(session, company.id, instance_id, remote_jid)
    return len(moved)


async def restart(session: AsyncSession, conversation_id: uuid.UUID) -> None:
    """A closed conversation reopened (the customer wrote again, or by hand): it is held to its
    team's targets anew from now, as when it joined (its closing completed or cancelled the
    earlier ones), and an earlier breach's badge goes."""
    conversation = await session.get(Conversation, conversation_id, populate_existing=True)
    if conversation is None or conversation.team_id is None:
        return
    team = await session.get(Team, conversation.team_id)
    if team is None:
        return
    badge = conversation.sla_breached_at is not None
    await start(session, conversation, team)
    if badge:
        await session.flush()
        await stage(session, [conversation_updated(conversation)])


async def complete(
    session: AsyncSession,
    conversation_id: uuid.UUID,
    kinds: Iterable[SlaKind],
    user_id: uuid.UUID | None,
    cancel: Iterable[SlaKind] = (),
) -> None:
    """The conversation's pending targets of ``kinds`` are done now, by ``user_id`` (the
    reports' agent): met by their due time, missed after it; those of ``cancel`` no longer
    apply. One statement each, and none when nothing is pending (an indexed look-up)."""
    now = utc_now()
    pending = (
        col(SlaTarget.conversation_id) == conversation_id,
        col(SlaTarget.status) == SlaStatus.PENDING,
    )
    late = col(SlaTarget.due_at) < now
    await session.execute(
        update(SlaTarget)
        .where(*pending, col(SlaTarget.kind).in_(list(kinds)))
        .values(
            completed_at=now,
            user_id=user_id,
            status=case((late, SlaStatus.MISSED.value), else_=SlaStatus.MET.value),
            breached_at=case((late, col(SlaTarget.due_at)), else_=None),
        )
    )
    if cancel := list(cancel):
        await session.execute(
            update(SlaTarget)
            .where(*pending, col(SlaTarget.kind).in_(cancel))
            .values(status=SlaStatus.CANCELLED)
        )


async def pending_timers(session: AsyncSession, conversation_id: uuid.UUID) -> list[SlaTarget]:
    rows = await session.execute(
        select(SlaTarget).where(
            col(SlaTarget.conversation_id) == conversation_id,
            col(SlaTarget.status) == SlaStatus.PENDING,
        )
    )
    return list(rows.scalars())


async def breach(session: AsyncSession, target_id: uuid.UUID) -> bool:
    """The target's timer fired: unless it was completed or cancelled meanwhile, it is missed,
    announced and escalated. True when it breached now."""
    target = (
        await session.execute(
            select(SlaTarget).where(col(SlaTarget.id) == target_id).with_for_update()
        )
    ).scalar_one_or_none()
    if target is None or target.status != SlaStatus.PENDING:
        return False
    if target.due_at > utc_now() + CLOCK_SKEW:  # moved later (new business hours): it reloads
        return False
    conversation = (
        await session.execute(
            select(Conversation)
            .where(col(Conversation.id) == target.conversation_id)
            .with_for_update()
        )
    ).scalar_one()
    now = utc_now()
    assignee = conversation.assigned_user_id
    target.status, target.breached_at, target.user_id = SlaStatus.MISSED, now, assignee
    conversation.sla_breached_at = now
    team = await session.get(Team, target.team_id) if target.team_id else None
    if team is not None and conversation.status == ConversationStatus.OPEN:
        await _escalate(session, conversation, team)
    await session.flush()
    await system_notes.add(
        session,
        conversation,
        SystemNoteKind.SLA_BREACHED,
        user_id=assignee,
        team_id=target.team_id,
        detail=target.kind.value,
    )
    await stage(session, [_breached(target, assignee), conversation_updated(conversation)])
    return True


async def _escalate(session: AsyncSession, conversation: Conversation, team: Team) -> None:
    if team.sla_escalation == SlaEscalation.RAISE_PRIORITY:
        conversation.priority = ConversationPriority.HIGH
    elif team.sla_escalation == SlaEscalation.REASSIGN and conversation.assigned_user_id:
        # back to the team's queue: routing hands it to another member (never the one who
        # let it breach; with nobody else free it waits)
        previous = conversation.assigned_user_id
        conversation.assigned_user_id = None
        conversation.passed_over_user_id = previous
        conversation.waiting_since = utc_now()
        await system_notes.add(
            session,
            conversation,
            SystemNoteKind.UNASSIGNED,
            user_id=previous,
            team_id=team.id,
            detail="sla",
        )
        await store_routing_wake(session, conversation.company_id, team.id)


def _breached(target: SlaTarget, assignee: uuid.UUID | None) -> Event:
    data: dict[str, Any] = {
        "id": str(target.id),
        "conversation_id": str(target.conversation_id),
        "team_id": str(target.team_id) if target.team_id else None,
        "kind": target.kind.value,
        "due_at": target.due_at.isoformat(),
        "breached_at": target.breached_at.isoformat() if target.breached_at else None,
        "assigned_user_id": str(assignee) if assignee else None,
    }
    return Event("sla.breached", target.company_id, data, target.conversation_id)
