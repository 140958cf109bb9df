"""SLAs per team, end to end on the worker: a transfer holds the conversation to the team's
targets (business time: services/business_hours.py, tested in test_business_hours.py); the
conversation's workflow breaches a target past due (missed, badge, system note, ``sla.breached``
live) and escalates (raise the priority, or hand it to the next member); a person's reply and a
close meet their targets; the SLA report counts them per team, agent and day; a reopened
conversation is held to its team's targets anew; a target started before a DST change breaches at
the local opening after it. System notes say who assigned, transferred and unassigned."""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import col

from tests.fixtures.app import Tenant
from tests.fixtures.traffic import (
    EventListener,
    cloud_delivery,
    cloud_text,
    eventually,
    post_cloud,
    start_conversation,
)
from tests.test_replay import RECORD, _save, _workflow_id
from tests.test_routing import agent, assignees, conversations
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.models import Conversation, SlaTarget, Team
from zapflow.services import slas
from zapflow.temporal import connect


async def sla_team(tenant: Tenant, *members: str, **sla: Any) -> str:
    made = await tenant.client.post(
        "/api/v1/teams", json={"name": f"SLA {uuid.uuid4().hex[:6]}", **sla}
    )
    assert made.status_code == 201, made.text
    for user_id in members:
        put = await tenant.client.put(
            f"/api/v1/teams/{made.json()['id']}/members/{user_id}", json={"capacity": 5}
        )
        assert put.status_code == 200, put.text
    return str(made.json()["id"])


async def targets(sessions: SessionFactory, conversation_id: str) -> dict[str, SlaTarget]:
    async with sessions() as session:
        rows = await session.execute(
            select(SlaTarget)
            .where(col(SlaTarget.conversation_id) == uuid.UUID(conversation_id))
            .order_by(col(SlaTarget.started_at))
        )
    return {f"{t.kind.value}:{t.status.value}": t for t in rows.scalars()}


async def notes(tenant: Tenant, conversation_id: str) -> list[dict[str, Any]]:
    answer = await tenant.client.get(f"/api/v1/conversations/{conversation_id}/system-notes")
    assert answer.status_code == 200, answer.text
    return list(answer.json())


async def conversation(tenant: Tenant, conversation_id: str) -> dict[str, Any]:
    return dict((await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json())


async def test_a_missed_first_response_breaches_live_and_raises_the_priority(
    tenant: Tenant, sessions: SessionFactory, settings: Settings, worker: None
) -> None:
    """(With ``ZAPFLOW_RECORD_HISTORIES`` set, the conversation's history is kept for
    tests/test_replay.py: a run holding SLA timers.)"""
    team_id = await sla_team(
        tenant,
        first_response_seconds=2,
        resolution_seconds=3600,
        sla_escalation="raise_priority",
    )
    [conversation_id] = await conversations(tenant, 1)
    async with EventListener(tenant.client) as events:
        moved = await tenant.client.post(
            f"/api/v1/conversations/{conversation_id}/transfer", json={"team_id": team_id}
        )
        assert moved.status_code == 200, moved.text
        [breach] = await events.wait_for("sla.breached", lambda found: len(found) >= 1)
    assert breach["conversation_id"] == conversation_id
    assert breach["data"]["kind"] == "first_response" and breach["data"]["team_id"] == team_id
    row = await conversation(tenant, conversation_id)
    assert row["sla_breached_at"] and row["priority"] == "high"
    found = await targets(sessions, conversation_id)
    assert set(found) == {"first_response:missed", "resolution:pending"}
    missed = found["first_response:missed"]
    assert missed.breached_at and missed.breached_at >= missed.due_at
    kinds = [(n["kind"], n["detail"]) for n in await notes(tenant, conversation_id)]
    assert kinds == [("transferred", None), ("sla_breached", "first_response")]
    if RECORD:
        await _save(await connect(settings), "conversation-sla", _workflow_id(tenant, row))


async def test_a_reply_and_a_close_meet_their_targets(
    tenant: Tenant, api_url: str, sessions: SessionFactory, worker: None
) -> None:
    ana, ana_client = await agent(tenant, api_url, "Ana")
    try:
        team_id = await sla_team(tenant, ana, first_response_seconds=3600, resolution_seconds=7200)
        first, second = await conversations(tenant, 2)
        for conversation_id in (first, second):
            await tenant.client.post(
                f"/api/v1/conversations/{conversation_id}/transfer", json={"team_id": team_id}
            )
        taken = await ana_client.post(f"/api/v1/conversations/{first}/take")
        assert taken.status_code == 200, taken.text
        reply = await ana_client.post(
            f"/api/v1/conversations/{first}/messages", json={"type": "text", "text": "Olá!"}
        )
        assert reply.status_code in (200, 201, 202), reply.text
        await ana_client.post(f"/api/v1/conversations/{first}/close")
        await ana_client.post(f"/api/v1/conversations/{second}/close")  # never answered
        assert set(await targets(sessions, first)) == {"first_response:met", "resolution:met"}
        assert set(await targets(sessions, second)) == {
            "first_response:cancelled",
            "resolution:met",
        }
        met = (await targets(sessions, first))["first_response:met"]
        assert met.completed_at and met.completed_at <= met.due_at and met.breached_at is None
        kinds = [(n["kind"], n["actor_user_id"], n["user_id"]) for n in await notes(tenant, first)]
        assert kinds == [("transferred", None, None), ("assigned", ana, ana)]
    finally:
        await ana_client.aclose()


async def test_a_breach_reassigns_to_the_next_member(
    tenant: Tenant, api_url: str, sessions: SessionFactory, worker: None
) -> None:
    """Ana takes the conversation and does not answer in time: it goes back to the queue and
    round-robin hands it to Bia, not to Ana, whose turn it was (the first member, nobody
    having been routed one yet); the thread's notes tell the story."""
    (ana, ana_client), (bia, bia_client) = [await agent(tenant, api_url, n) for n in ("Ana", "Bia")]
    try:
        for client in (ana_client, bia_client):
            await client.patch("/api/v1/me", json={"availability": "available"})
        team_id = await sla_team(
            tenant, ana, bia, first_response_seconds=3, sla_escalation="reassign"
        )
        [conversation_id] = await conversations(tenant, 1)
        await tenant.client.post(
            f"/api/v1/conversations/{conversation_id}/transfer", json={"team_id": team_id}
        )
        taken = await ana_client.post(f"/api/v1/conversations/{conversation_id}/take")
        assert taken.json()["assigned_user_id"] == ana, taken.text
        routed = await tenant.client.patch(
            f"/api/v1/teams/{team_id}", json={"routing_mode": "round_robin"}
        )
        assert routed.status_code == 200, routed.text
        await eventually(
            lambda: assignees(tenant, [conversation_id]), lambda got: got == [bia], within=30
        )
        steps = [
            (n["kind"], n["user_id"], n["detail"]) for n in await notes(tenant, conversation_id)
        ]
        assert steps == [
            ("transferred", None, None),
            ("assigned", ana, None),  # she took it
            ("unassigned", ana, "sla"),
            ("sla_breached", ana, "first_response"),
            ("assigned", bia, "routing"),
        ]
        assert set(await targets(sessions, conversation_id)) == {"first_response:missed"}
        missed = (await targets(sessions, conversation_id))["first_response:missed"]
        assert missed.user_id == uuid.UUID(ana)  # missed by whom had it: the report's agent
    finally:
        await ana_client.aclose()
        await bia_client.aclose()


async def test_a_reply_typed_on_the_business_phone_is_a_first_response_of_no_agent(
    tenant: Tenant, api_url: str, sessions: SessionFactory, worker: None
) -> None:
    """The person answered from the WhatsApp Business app (an echo, not sent through zapflow):
    the customer has a first response, met, but no agent is credited with it."""
    ana, ana_client = await agent(tenant, api_url, "Ana")
    try:
        team_id = await sla_team(tenant, ana, first_response_seconds=3600)
        wa_id = "5511" + str(uuid.uuid4().int)[:9]
        instance, conversation_id = await start_conversation(tenant, wa_id)
        await tenant.client.post(
            f"/api/v1/conversations/{conversation_id}/transfer", json={"team_id": team_id}
        )
        taken = await ana_client.post(f"/api/v1/conversations/{conversation_id}/take")
        assert taken.status_code == 200, taken.text
        echo = {
            "from": "15550001111", "to": wa_id, "id": f"wamid.{uuid.uuid4().hex}",
            "timestamp": str(int(time.time())), "type": "text", "text": {"body": "Respondi"},
        }  # fmt: skip
        delivery = cloud_delivery(instance["phone_number_id"], {"message_echoes": [echo]})
        delivery["entry"][0]["changes"][0]["field"] = "smb_message_echoes"
        posted = await post_cloud(tenant.client, instance["webhook_url"], delivery)
        assert posted.status_code == 200, posted.text
        found = await eventually(
            lambda: targets(sessions, conversation_id),
            lambda got: "first_response:met" in got,
            within=15,
        )
        assert found["first_response:met"].user_id is None  # not Ana's, though she has it
    finally:
        await ana_client.aclose()


async def test_new_business_hours_move_a_pending_target_and_its_timer(
    tenant: Tenant, sessions: SessionFactory, worker: None
) -> None:
    """Always open (no hours) when the target starts: due in 5 s. Then the company opens one
    hour a week, two days from now: the seconds it had left count from that opening, and the
    timer that was due in 5 s breaches nothing."""
    team_id = await sla_team(tenant, first_response_seconds=5)
    [conversation_id] = await conversations(tenant, 1)
    moved = await tenant.client.post(
        f"/api/v1/conversations/{conversation_id}/transfer", json={"team_id": team_id}
    )
    assert moved.status_code == 200, moved.text
    before = (await targets(sessions, conversation_id))["first_response:pending"]
    opening = datetime.now(UTC).date() + timedelta(days=2)
    day = opening.strftime("%a").lower()
    changed = await tenant.client.patch(
        "/api/v1/company", json={"timezone": "UTC", "business_hours": {day: [["09:00", "10:00"]]}}
    )
    assert changed.status_code == 200, changed.text
    after = (await targets(sessions, conversation_id))["first_response:pending"]
    starts = datetime.combine(opening, datetime.min.time(), UTC) + timedelta(hours=9)
    assert starts < after.due_at <= starts + timedelta(seconds=5), (before.due_at, after.due_at)
    await asyncio.sleep(max(0.0, (before.due_at - datetime.now(UTC)).total_seconds()) + 1)
    assert set(await targets(sessions, conversation_id)) == {"first_response:pending"}
    assert (await conversation(tenant, conversation_id))["sla_breached_at"] is None


async def test_sla_settings_are_checked(tenant: Tenant) -> None:
    bad = await tenant.client.post(
        "/api/v1/teams", json={"name": "Bad SLA", "first_response_seconds": 0}
    )
    assert bad.status_code == 422 and "first_response_seconds" in bad.text
    team_id = await sla_team(tenant, resolution_seconds=60, sla_escalation="reassign")
    cleared = await tenant.client.patch(
        f"/api/v1/teams/{team_id}", json={"resolution_seconds": None}
    )
    assert cleared.status_code == 200 and cleared.json()["resolution_seconds"] is None
    assert cleared.json()["sla_escalation"] == "reassign"
    null_mode = await tenant.client.patch(f"/api/v1/teams/{team_id}", json={"routing_mode": None})
    assert null_mode.status_code == 422 and "routing_mode" in null_mode.text


async def all_targets(sessions: SessionFactory, conversation_id: str) -> list[SlaTarget]:
    async with sessions() as session:
        rows = await session.execute(
            select(SlaTarget)
            .where(col(SlaTarget.conversation_id) == uuid.UUID(conversation_id))
            .order_by(col(SlaTarget.started_at), col(SlaTarget.kind))
        )
    return list(rows.scalars())


async def sla_report(tenant: Tenant, group_by: str, **params: str) -> dict[str, dict[str, Any]]:
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()  # near midnight
    query = {"group_by": group_by, "from": yesterday, **params}
    answer = await tenant.client.get("/api/v1/reports/slas", params=query)
    assert answer.status_code == 200, answer.text
    return {row["key"]: row for row in answer.json()["rows"]}


def figures(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[f"{k}_{f}"] for k in ("first_response", "resolution")
                 for f in ("met", "missed", "met_pct"))  # fmt: skip


async def test_the_sla_report_and_a_reopened_conversation_held_anew(
    tenant: Tenant, other_tenant: Tenant, api_url: str, sessions: SessionFactory, worker: None
) -> None:
    """Ana answers and closes one conversation in time; the other's first response breaches
    unassigned. The report counts each target for its team and for who met or missed it. Then
    the customer writes to the closed one, and the other is reopened by hand: each is held to
    its team's targets again from then, and the old breach's badge goes."""
    ana, ana_client = await agent(tenant, api_url, "Ana")
    try:
        slow = await sla_team(tenant, ana, first_response_seconds=3600, resolution_seconds=7200)
        fast = await sla_team(tenant, first_response_seconds=1, resolution_seconds=7200)
        wa_id = "5511" + str(uuid.uuid4().int)[:9]
        instance, answered = await start_conversation(tenant, wa_id)
        [late] = await conversations(tenant, 1)
        for conversation_id, team_id in ((answered, slow), (late, fast)):
            moved = await tenant.client.post(
                f"/api/v1/conversations/{conversation_id}/transfer", json={"team_id": team_id}
            )
            assert moved.status_code == 200, moved.text
        assert (await ana_client.post(f"/api/v1/conversations/{answered}/take")).is_success
        reply = {"type": "text", "text": "Olá!"}
        assert await ana_client.post(f"/api/v1/conversations/{answered}/messages", json=reply)
        assert (await ana_client.post(f"/api/v1/conversations/{answered}/close")).is_success
        await eventually(lambda: targets(sessions, late), lambda t: "first_response:missed" in t)
        assert (await tenant.client.post(f"/api/v1/conversations/{late}/close")).is_success

        by_team = await sla_report(tenant, "team")
        assert figures(by_team[slow]) == (1, 0, 100.0, 1, 0, 100.0)
        assert figures(by_team[fast]) == (0, 1, 0.0, 1, 0, 100.0)
        by_agent = await sla_report(tenant, "agent")
        assert figures(by_agent[ana]) == (1, 0, 100.0, 1, 0, 100.0)
        assert figures(by_agent[""]) == (0, 1, 0.0, 1, 0, 100.0)  # nobody had it
        days = (await sla_report(tenant, "day")).values()
        assert [sum(row[name] for row in days) for name in ("first_response_met",
                "first_response_missed", "resolution_met")] == [1, 1, 2]  # fmt: skip
        only_fast = await sla_report(tenant, "team", team_id=fast)
        assert list(only_fast) == [fast] and only_fast[fast]["label"].startswith("SLA ")
        exported = await tenant.client.get(
            "/api/v1/reports/slas", params={"group_by": "team", "format": "csv"}
        )
        rows = list(csv.reader(io.StringIO(exported.text)))
        assert rows[0][:3] == ["key", "label", "first_response_met"] and len(rows) == 3
        assert await sla_report(other_tenant, "team") == {}

        # the customer writes again: the closed conversation reopens under its team's SLA
        closed_at = datetime.now(UTC)
        text = cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", "de novo", int(time.time()))
        delivery = cloud_delivery(instance["phone_number_id"], text)
        assert (await post_cloud(tenant.client, instance["webhook_url"], delivery)).is_success
        renewed = await eventually(
            lambda: all_targets(sessions, answered), lambda found: len(found) == 4
        )
        assert [(t.kind.value, t.status.value) for t in renewed[2:]] == [
            ("first_response", "pending"),
            ("resolution", "pending"),
        ]
        assert all(t.started_at >= closed_at - timedelta(seconds=1) for t in renewed[2:])
        # reopened by hand (its team's target now an hour): held anew, the old badge gone
        patched = await tenant.client.patch(
            f"/api/v1/teams/{fast}", json={"first_response_seconds": 3600}
        )
        assert patched.status_code == 200, patched.text
        assert (await conversation(tenant, late))["sla_breached_at"]
        reopened = await tenant.client.post(f"/api/v1/conversations/{late}/reopen")
        assert reopened.status_code == 200 and reopened.json()["sla_breached_at"] is None
        held = [(t.kind.value, t.status.value) for t in await all_targets(sessions, late)]
        assert held[2:] == [("first_response", "pending"), ("resolution", "pending")]
    finally:
        await ana_client.aclose()


def _offset(zone: ZoneInfo, day: date, at: dtime) -> timedelta | None:
    return datetime.combine(day, at, zone).utcoffset()


def _last_week_before_dst_change(zone: ZoneInfo, today: date, opens: dtime, closes: dtime) -> date:
    """The latest date a whole number of weeks before ``today`` whose ``opens`` had another UTC
    offset than today's (a DST change lies between), with none from ``opens`` to ``closes``."""
    for weeks in range(1, 60):
        day = today - timedelta(weeks=weeks)
        then = _offset(zone, day, opens)
        if then != _offset(zone, today, opens) and then == _offset(zone, day, closes):
            return day
    raise AssertionError(f"{zone} has had no DST change in a year")


async def test_a_timer_started_before_a_dst_change_breaches_at_the_local_opening_after_it(
    tenant: Tenant, sessions: SessionFactory, worker: None
) -> None:
    """New York (Lisbon when it is near midnight there), open one 10-minute window a week
    (today's weekday, from this minute), the weeks in between holidays. A first response
    started at that window's opening on the last such day before the latest DST change (another
    UTC offset) uses the window then and is due a few seconds into today's: today's opening is
    the same wall-clock time at today's offset. The conversation's workflow loads the due time
    and its timer breaches the target then, not before. A naive calculation (hours in UTC, or
    the start's offset kept) puts the due time hours or one hour away: the stored due time
    differs, and the timer fires at once or not within the wait."""
    zone = ZoneInfo("America/New_York")
    if datetime.now(zone).time() > dtime(23, 45):  # today's window must end before midnight
        zone = ZoneInfo("Europe/Lisbon")  # 4 or 5 hours later
    team_id = await sla_team(tenant, first_response_seconds=3600)
    [conversation_id] = await conversations(tenant, 1)
    local_now = datetime.now(zone)
    today, opens = local_now.date(), local_now.time().replace(second=0, microsecond=0)
    closes = (datetime.combine(today, opens) + timedelta(minutes=10)).time()
    before = _last_week_before_dst_change(zone, today, opens, closes)
    weeks = (today - before).days // 7
    window = [opens.strftime("%H:%M"), closes.strftime("%H:%M")]
    company = (await tenant.client.get("/api/v1/company")).json()
    changed = await tenant.client.patch(
        "/api/v1/company",
        json={
            "timezone": zone.key,
            "business_hours": {today.strftime("%a").lower(): [window]},
            "settings": {
                **company["settings"],
                "holidays": [(today - timedelta(weeks=w)).isoformat() for w in range(1, weeks)],
            },
        },
    )
    assert changed.status_code == 200, changed.text
    started = datetime.combine(before, opens, zone).astimezone(UTC)
    used = datetime.combine(before, closes, zone) - datetime.combine(before, opens, zone)
    opened_today = datetime.combine(today, opens, zone).astimezone(UTC)
    due = (datetime.now(UTC) + timedelta(seconds=9)).replace(microsecond=0)
    seconds = int((used + (due - opened_today)).total_seconds())
    patched = await tenant.client.patch(
        f"/api/v1/teams/{team_id}", json={"first_response_seconds": seconds}
    )
    assert patched.status_code == 200, patched.text
    async with transaction(sessions) as session:
        row = await session.get(Conversation, uuid.UUID(conversation_id))
        team = await session.get(Team, uuid.UUID(team_id))
        assert row is not None and team is not None
        row.team_id = team.id
        await slas.start(session, row, team, now=started)
    assert (await targets(sessions, conversation_id))["first_response:pending"].due_at == due
    await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds() - 2))
    assert set(await targets(sessions, conversation_id)) == {"first_response:pending"}
    found = await eventually(
        lambda: targets(sessions, conversation_id),
        lambda got: "first_response:missed" in got,
        within=60,
    )
    breached_at = found["first_response:missed"].breached_at
    assert breached_at is not None and breached_at >= due, (breached_at, due)
