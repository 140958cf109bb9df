"""Teams and routing: round-robin hands waiting conversations to available members in arrival
order (through the team's routing workflow on the worker); least-busy respects capacity;
"assign to me", transfer, unassign back to the queue, and the inbox filters."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.fixtures.app import Tenant
from tests.fixtures.traffic import eventually, start_conversation
from zapflow.db import SessionFactory, transaction
from zapflow.services import routing


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


async def assignees(tenant: Tenant, ids: list[str]) -> list[Any]:
    rows = [(await tenant.client.get(f"/api/v1/conversations/{c}")).json() for c in ids]
    return [row["assigned_user_id"] for row in rows]


async def test_round_robin_hands_three_waiting_conversations_to_two_agents_in_order(
    tenant: Tenant, api_url: str, worker: None
) -> None:
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
