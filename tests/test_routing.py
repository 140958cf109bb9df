"""Teams and routing: round-robin hands waiting conversations to available members in arrival
order (through the team's routing workflow on the worker); least-busy respects capacity;
"assign to me", transfer, unassign back to the queue, and the inbox filters."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis
from sqlalchemy import text

from tests.fixtures.app import Tenant, isolated_company
from tests.fixtures.traffic import (
    cloud_delivery,
    cloud_text,
    create_cloud_instance,
    eventually,
    start_conversation,
)
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.models import FlowRun
from zapflow.services import flow_actions, routing
from zapflow.services.conversations import persist_inbound
from zapflow.services.events import stream_key
from zapflow.whatsapp.cloud import parse_webhook
from zapflow.whatsapp.types import InboundMessage


async def agent(tenant: Tenant, api_url: str, name: str) -> tuple[str, httpx.AsyncClient]:
    """An agent user and a client with the user's own API key."""
    email = f"{name.lower()}.{uuid.uuid4().hex[:6]}@acme.com"
    user = (await tenant.client.post("/api/v1/users", json={"email": email, "name": name})).json()
    key = await tenant.client.post(
        "/api/v1/api-keys", json={"name": name, "role": "agent", "user_id": user["id"]}
    )
    client = httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {key.json()['key']}"}, timeout=10
    )
    return user["id"], client


async def team(tenant: Tenant, mode: str, *members: str, capacity: int = 5) -> str:
    made = await tenant.client.post(
        "/api/v1/teams", json={"name": f"T {uuid.uuid4().hex[:6]}", "routing_mode": mode}
    )
    assert made.status_code == 201, made.text
    for user_id in members:
        put = await tenant.client.put(
            f"/api/v1/teams/{made.json()['id']}/members/{user_id}", json={"capacity": capacity}
        )
        assert put.status_code == 200, put.text
    return str(made.json()["id"])


async def conversations(tenant: Tenant, n: int) -> list[str]:
    found = []
    for _ in range(n):
        _, conversation_id = await start_conversation(tenant, "5511" + str(uuid.uuid4().int)[:9])
        found.append(conversation_id)
    return found


def _text(wa_id: str) -> InboundMessage:
    delivery = cloud_delivery("pn", cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", "oi", 1))
    [message] = parse_webhook(delivery)
    assert isinstance(message, InboundMessage)
    return message


async def assignees(tenant: Tenant, ids: list[str]) -> list[Any]:
    """Each conversation's agent, in the order of ``ids``: one list request per call, so a
    test polling it for a minute stays far under the key's rate limit (a GET per id did not)."""
    listed = await tenant.client.get("/api/v1/conversations", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    agent_of = {row["id"]: row["assigned_user_id"] for row in listed.json()["data"]}
    return [agent_of[c] for c in ids]


async def test_round_robin_hands_three_waiting_conversations_to_two_agents_in_order(
    tenant: Tenant, api_url: str, sessions: SessionFactory, worker: None
) -> None:
    """Arrival order, whatever the priority: the last one raised to high (as an SLA escalation
    would) does not jump the queue."""
    (ana, ana_client), (bia, bia_client) = [await agent(tenant, api_url, n) for n in ("Ana", "Bia")]
    team_id = await team(tenant, "manual", ana, bia)
    ids = await conversations(tenant, 3)
    try:
        for conversation_id in ids:  # manual routing: they wait, in this order
            moved = await tenant.client.post(
                f"/api/v1/conversations/{conversation_id}/transfer", json={"team_id": team_id}
            )
            assert moved.status_code == 200 and moved.json()["waiting_since"], moved.text
        waiting = await tenant.client.get(f"/api/v1/conversations?waiting=true&team_id={team_id}")
        assert {row["id"] for row in waiting.json()["data"]} == set(ids)
        assert await assignees(tenant, ids) == [None, None, None]
        async with transaction(sessions) as session:
            await session.execute(
                text("UPDATE conversations SET priority = 'high' WHERE id = :id"), {"id": ids[2]}
            )

        for client in (ana_client, bia_client):
            ready = await client.patch("/api/v1/me", json={"availability": "available"})
            assert ready.status_code == 200, ready.text
        assert await assignees(tenant, ids) == [None, None, None]
        # both available: round-robin's one pass takes the queue oldest first
        routed = await tenant.client.patch(
            f"/api/v1/teams/{team_id}", json={"routing_mode": "round_robin"}
        )
        assert routed.status_code == 200, routed.text
        found = await eventually(
            lambda: assignees(tenant, ids), lambda got: None not in got, within=30
        )
        assert found == [ana, bia, ana]
        mine = (await ana_client.get("/api/v1/conversations?assigned=me")).json()["data"]
        assert sorted(row["id"] for row in mine) == sorted([ids[0], ids[2]])
        theirs = (await bia_client.get("/api/v1/conversations?teams=mine")).json()["data"]
        assert {row["id"] for row in theirs} == set(ids)
        gone = await tenant.client.get(f"/api/v1/conversations?waiting=true&team_id={team_id}")
        assert gone.json()["data"] == []
    finally:
        await ana_client.aclose()
        await bia_client.aclose()


async def test_least_busy_respects_capacity_and_a_pass_assigns_once(
    tenant: Tenant, api_url: str, sessions: SessionFactory, worker: None
) -> None:
    """Run straight (no workflow): the second of two passes over the same queue finds nothing
    left to assign, and nobody gets more than their capacity."""
    (ana, ana_client), (bia, bia_client) = [await agent(tenant, api_url, n) for n in ("Ana", "Bia")]
    try:
        team_id = await team(tenant, "manual", ana, bia, capacity=1)
        ids = await conversations(tenant, 3)
        for conversation_id in ids:
            await tenant.client.post(
                f"/api/v1/conversations/{conversation_id}/transfer", json={"team_id": team_id}
            )
        taken = await ana_client.post(f"/api/v1/conversations/{ids[0]}/take")
        assert taken.json()["assigned_user_id"] == ana and taken.json()["waiting_since"] is None
        await bia_client.patch("/api/v1/me", json={"availability": "available"})
        await ana_client.patch("/api/v1/me", json={"availability": "available"})
        assert await assignees(tenant, ids[1:]) == [None, None]  # manual: nobody assigns
        patched = await tenant.client.patch(
            f"/api/v1/teams/{team_id}", json={"routing_mode": "least_busy"}
        )
        assert patched.status_code == 200
        company, team_uuid = uuid.UUID(tenant.id), uuid.UUID(team_id)
        async with transaction(sessions) as session:
            first = await routing.assign_waiting(session, company, team_uuid)
        async with transaction(sessions) as session:
            second = await routing.assign_waiting(session, company, team_uuid)
        # Ana holds one already (capacity 1): Bia gets the oldest waiting, the third waits
        assert [pair for pair in first] in ([], [(uuid.UUID(ids[1]), uuid.UUID(bia))])
        assert second == []
        assert await assignees(tenant, ids) == [ana, bia, None]

        back = await bia_client.post(f"/api/v1/conversations/{ids[1]}/unassign")
        assert back.json()["assigned_user_id"] is None and back.json()["waiting_since"]
    finally:
        await ana_client.aclose()
        await bia_client.aclose()


# sessions another one (``:p``) holds waiting for a lock
BLOCKED_BY = text("SELECT count(*) FROM pg_stat_activity WHERE :p = ANY(pg_blocking_pids(pid))")


async def available_pair(tenant: Tenant, sessions: SessionFactory) -> list[str]:
    """Two users, Ana and Bia, both available (written straight: no wake)."""
    users = []
    for name in ("Ana", "Bia"):
        email = f"{name.lower()}.{uuid.uuid4().hex[:6]}@acme.com"
        made = await tenant.client.post("/api/v1/users", json={"email": email, "name": name})
        users.append(made.json()["id"])
    async with transaction(sessions) as session:
        await session.execute(
            text("UPDATE users SET availability = 'available' WHERE company_id = :c"),
            {"c": tenant.id},
        )
    return users


async def transferred(
    tenant: Tenant, sessions: SessionFactory, instance_id: str, team_id: str, prefix: str, n: int
) -> list[str]:
    """``n`` conversations stored straight by the persist (no worker needed), each transferred
    to the team in turn."""
    ids = []
    for i in range(n):
        wa_id = f"{prefix}{i:08d}"
        async with transaction(sessions) as session:
            persisted = await persist_inbound(
                session,
                uuid.UUID(tenant.id),
                uuid.UUID(instance_id),
                f"{wa_id}@s.whatsapp.net",
                [_text(wa_id)],
            )
        ids.append(str(persisted.conversation_id))
        moved = await tenant.client.post(
            f"/api/v1/conversations/{ids[-1]}/transfer", json={"team_id": team_id}
        )
        assert moved.status_code == 200, moved.text
    return ids


async def test_a_waiting_conversation_held_by_an_agent_is_routed_by_the_wake_not_the_sweep(
    tenant: Tenant, sessions: SessionFactory, worker: None
) -> None:
    """An agent opening a waiting conversation (``mark_read``) holds its row while the wake's
    pass runs: the pass waits for it instead of skipping it, which left it for the 30 s sweep."""
    ana, _ = await available_pair(tenant, sessions)
    team_id = await team(tenant, "manual", ana)
    instance = await create_cloud_instance(tenant)
    held, free = await transferred(tenant, sessions, instance["id"], team_id, "5521", 2)
    async with sessions() as holder, holder.begin():
        await holder.execute(
            text("SELECT 1 FROM conversations WHERE id = :id FOR UPDATE"), {"id": held}
        )
        pid = (await holder.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        routed = await tenant.client.patch(
            f"/api/v1/teams/{team_id}", json={"routing_mode": "round_robin"}
        )
        assert routed.status_code == 200, routed.text

        async def pass_waits_or_skips() -> tuple[int, Any]:
            async with sessions() as session:
                blocked = await session.execute(
                    BLOCKED_BY,
                    {"p": pid},
                )
                return blocked.scalar_one(), (await assignees(tenant, [free]))[0]

        await eventually(pass_waits_or_skips, lambda got: got[0] > 0 or got[1] is not None)
    # released: well before the routing workflow's next sweep (30 s), both are Ana's
    found = await eventually(
        lambda: assignees(tenant, [held, free]), lambda got: None not in got, within=10
    )
    assert found == [ana, ana]


async def test_a_worker_killed_at_the_wake_loses_and_doubles_no_assignment(
    isolated: Settings,
) -> None:
    """Twelve conversations wait in a manual team of two available agents; switching it to
    round-robin wakes its routing workflow, and the worker is SIGKILLed right then. A new
    worker finishes the job: every conversation assigned, in arrival order, alternating, each
    announced as assigned exactly once (the company's event stream)."""
    async with isolated_company(isolated, "Routing Kill Co") as company:
        tenant, sessions = company.tenant, company.sessions
        users = await available_pair(tenant, sessions)
        team_id = await team(tenant, "manual", *users, capacity=20)
        instance = await create_cloud_instance(tenant)
        ids = await transferred(tenant, sessions, instance["id"], team_id, "55119", 12)

        routed = await tenant.client.patch(
            f"/api/v1/teams/{team_id}", json={"routing_mode": "round_robin"}
        )
        assert routed.status_code == 200
        company.worker.kill()
        await company.worker.restart()
        found = await eventually(
            lambda: assignees(tenant, ids), lambda got: None not in got, within=60
        )
        assert found == [users[n % 2] for n in range(12)]
        redis = Redis.from_url(isolated.redis_url)

        async def announced() -> Counter[str]:
            entries = await redis.xrange(stream_key(tenant.id))
            events = [orjson.loads(fields[b"payload"]) for _, fields in entries]
            return Counter(
                e["data"]["id"]
                for e in events
                if e["type"] == "conversation.updated" and e["data"]["assigned_user_id"]
            )

        try:
            # assignments the killed worker committed but had not published yet stay in the
            # outbox until the new worker's publisher sweeps it (every 2 s)
            assigned = await eventually(announced, lambda got: set(got) == set(ids))
        finally:
            await redis.aclose()
        assert assigned == dict.fromkeys(ids, 1), assigned


async def test_a_flow_handoff_naming_a_team_queues_the_conversation_there(
    tenant: Tenant, sessions: SessionFactory, worker: None
) -> None:
    """The ``handoff`` node's ``team`` names a team of the company: the conversation waits in
    that team's queue (a name no team has only pauses the bot, as before)."""
    team_id = await team(tenant, "manual")
    name = (await tenant.client.get("/api/v1/teams")).json()[0]["name"]
    [first, second] = await conversations(tenant, 2)
    for conversation_id, named in ((first, name), (second, "No such team")):
        conversation = (await tenant.client.get(f"/api/v1/conversations/{conversation_id}")).json()
        run = FlowRun(  # the node's run, as the flow activity hands it (not stored: unused)
            company_id=uuid.UUID(tenant.id),
            flow_id=uuid.uuid4(),
            flow_version=1,
            conversation_id=uuid.UUID(conversation_id),
            contact_id=uuid.UUID(conversation["contact_id"]),
        )
        async with transaction(sessions) as session:
            await flow_actions.handoff(session, run, {"team": named})
    queued, paused = [
        (await tenant.client.get(f"/api/v1/conversations/{c}")).json() for c in (first, second)
    ]
    assert queued["team_id"] == team_id and queued["waiting_since"] and queued["is_paused"]
    assert paused["team_id"] is None and paused["waiting_since"] is None and paused["is_paused"]


async def test_a_wake_committed_while_no_worker_runs_is_not_lost(isolated: Settings) -> None:
    """The wake is a ``routing`` inbox row in the same transaction as the change, not a signal
    sent after the commit: with the worker SIGKILLed before the team exists (so no routing
    workflow runs and no sweep could assign), a round-robin team of two available agents is
    made and three conversations transferred to it; their wakes stay pending. A new worker's
    relay delivers them, starting the team's workflow, and the queue is handed out in order."""
    async with isolated_company(isolated, "Routing Wake Co") as company:
        tenant, sessions = company.tenant, company.sessions
        company.worker.kill()
        users = await available_pair(tenant, sessions)
        team_id = await team(tenant, "round_robin", *users)
        instance = await create_cloud_instance(tenant)
        ids = await transferred(tenant, sessions, instance["id"], team_id, "55118", 3)
        async with sessions() as session:
            pending = await session.execute(
                text(
                    "SELECT payload->>'team_id' FROM inbox_events WHERE company_id = :c"
                    " AND event_type = 'routing' AND status = 'pending'"
                ),
                {"c": tenant.id},
            )
            assert set(pending.scalars()) == {team_id}
        assert await assignees(tenant, ids) == [None, None, None]
        await company.worker.restart()
        found = await eventually(
            lambda: assignees(tenant, ids), lambda got: None not in got, within=60
        )
        assert found == [users[0], users[1], users[0]]
