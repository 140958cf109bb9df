"""Funnels, stages and deals: CRUD and validation, stage order, moves and their history,
won/lost, the kanban board (shape, per-stage cap, bounded queries), live events, and the
cross-tenant matrix of every {id} route and of every id a body or query names."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.fixtures.app import Tenant, in_process_api, recorded_statements
from tests.fixtures.traffic import EventListener
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.models import Contact, Deal, User, UserRole, utc_now
from zapflow.schemas.funnels import BoardPublic
from zapflow.services.auth import create_api_key, create_company

COLORS = ["#64748b", "#3b82f6", "#f59e0b", "#22c55e"]


# --- helpers --------------------------------------------------------------------------------------


async def make_contact(sessions: SessionFactory, company_id: str, name: str = "Maria") -> str:
    async with transaction(sessions) as session:
        contact = Contact(
            company_id=uuid.UUID(company_id),
            name=name,
            phone_number=f"+55119{uuid.uuid4().int % 10**8:08d}",
        )
        session.add(contact)
    return str(contact.id)


async def make_user(sessions: SessionFactory, company_id: str) -> str:
    async with transaction(sessions) as session:
        user = User(company_id=uuid.UUID(company_id), email=f"{uuid.uuid4()}@x.io", name="Ana")
        session.add(user)
    return str(user.id)


async def make_funnel(client: httpx.AsyncClient, stages: int = 4, name: str = "Sales") -> dict:
    body = {
        "name": name,
        "stages": [{"name": f"S{i}", "color": COLORS[i % 4]} for i in range(stages)],
    }
    response = await client.post("/api/v1/funnels", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def make_deal(
    client: httpx.AsyncClient, funnel: dict, contact_id: str, stage: int = 0, **extra: Any
) -> dict:
    body = {
        "title": "Coffee",
        "value": "100.50",
        "funnel_id": funnel["id"],
        "stage_id": funnel["stages"][stage]["id"],
        "contact_id": contact_id,
        **extra,
    }
    response = await client.post("/api/v1/deals", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    err: dict = response.json()["error"]
    return err


def stage_ids(funnel: dict) -> list[str]:
    return [s["id"] for s in funnel["stages"]]


@pytest.fixture
async def other(api_url: str, sessions: SessionFactory) -> AsyncIterator[Tenant]:
    """A second company, to prove that nothing of one is reachable from the other."""
    async with transaction(sessions) as session:
        company, key = await create_company(session, "Other Co")
    headers = {"Authorization": f"Bearer {key.plain}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10) as client:
        yield Tenant(str(company.id), key.plain, client)


@pytest.fixture
async def contact(tenant: Tenant, sessions: SessionFactory) -> str:
    return await make_contact(sessions, tenant.id)


# --- funnels --------------------------------------------------------------------------------------


async def test_funnel_crud_lists_stages_by_position(tenant: Tenant) -> None:
    client = tenant.client
    created = await make_funnel(client, 3)
    assert [(s["name"], s["position"], s["color"]) for s in created["stages"]] == [
        ("S0", 0, "#64748b"),
        ("S1", 1, "#3b82f6"),
        ("S2", 2, "#f59e0b"),
    ]
    empty = (await client.post("/api/v1/funnels", json={"name": "Empty"})).json()
    assert empty["stages"] == [] and empty["description"] is None

    listed = (await client.get("/api/v1/funnels")).json()
    assert [f["id"] for f in listed] == [created["id"], empty["id"]]
    assert listed[0]["stages"] == created["stages"]
    sparse = (await client.get("/api/v1/funnels", params={"fields": "name"})).json()
    assert sparse[0] == {"id": created["id"], "name": "Sales"}
    assert "nope" in error(await client.get("/api/v1/funnels?fields=nope"), 422)["message"]

    url = f"/api/v1/funnels/{created['id']}"
    patched = await client.patch(url, json={"name": "Pipeline", "description": "B2B"})
    assert (patched.json()["name"], patched.json()["description"]) == ("Pipeline", "B2B")
    cleared = await client.patch(url, json={"description": None})
    assert (cleared.json()["name"], cleared.json()["description"]) == ("Pipeline", None)
    assert "null" in error(await client.patch(url, json={"name": None}), 422)["message"]
    error(await client.patch(url, json={"name": ""}), 422)
    error(await client.patch(url, json={"nope": 1}), 422)
    assert (await client.get(url, params={"fields": "stages"})).json()["stages"] == created[
        "stages"
    ]

    assert (await client.delete(url)).status_code == 204
    error(await client.get(url), 404)
    assert [f["id"] for f in (await client.get("/api/v1/funnels")).json()] == [empty["id"]]


async def test_funnel_delete_is_refused_while_deals_are_open(tenant: Tenant, contact: str) -> None:
    client = tenant.client
    funnel = await make_funnel(client, 2)
    deal = await make_deal(client, funnel, contact)
    url = f"/api/v1/funnels/{funnel['id']}"
    refused = error(await client.delete(url), 409)
    assert refused["code"] == "funnel_has_open_deals" and refused["details"]["open_deals"] == 1

    await client.post(f"/api/v1/deals/{deal['id']}/won")
    assert (await client.delete(url)).status_code == 204  # closed deals do not hold it
    error(await client.get(f"/api/v1/deals/{deal['id']}"), 404)

    funnel = await make_funnel(client, 2)
    deal = await make_deal(client, funnel, contact, stage=1)
    url = f"/api/v1/funnels/{funnel['id']}"
    error(await client.delete(url), 409)
    assert (await client.delete(url, params={"force": "true"})).status_code == 204
    error(await client.get(f"/api/v1/deals/{deal['id']}"), 404)


async def test_an_agent_key_reads_funnels_but_cannot_change_them(
    tenant: Tenant, sessions: SessionFactory, api_url: str, contact: str
) -> None:
    funnel = await make_funnel(tenant.client, 2)
    async with transaction(sessions) as session:
        key = await create_api_key(session, uuid.UUID(tenant.id), "agent", UserRole.AGENT)
    headers = {"Authorization": f"Bearer {key.plain}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers) as agent:
        url = f"/api/v1/funnels/{funnel['id']}"
        assert (await agent.get(url)).status_code == 200
        assert (await agent.get(f"{url}/board")).status_code == 200
        error(await agent.post("/api/v1/funnels", json={"name": "X"}), 403)
        error(await agent.patch(url, json={"name": "X"}), 403)
        error(await agent.post(f"{url}/stages", json={"name": "X"}), 403)
        error(await agent.delete(url), 403)
        await make_deal(agent, funnel, contact)  # deals are every agent's work


# --- stages ---------------------------------------------------------------------------------------


async def test_stage_colors_are_validated_and_normalized(tenant: Tenant) -> None:
    client = tenant.client
    funnel = await make_funnel(client, 1)
    url = f"/api/v1/funnels/{funnel['id']}/stages"
    for color in ("#fff", "red", "#GGGGGG", "22c55e", "#22c55e0", ""):
        err = error(await client.post(url, json={"name": "X", "color": color}), 422)
        assert err["details"][0]["field"] == "body.color", err
    error(
        await client.post(
            "/api/v1/funnels", json={"name": "F", "stages": [{"name": "A", "color": "x"}]}
        ),
        422,
    )
    upper = await client.post(url, json={"name": "Upper", "color": "#22C55E"})
    assert upper.status_code == 201 and upper.json()["color"] == "#22c55e"
    default = (await client.post(url, json={"name": "Default"})).json()
    assert default["color"] == "#64748b"

    stage_url = f"{url}/{default['id']}"
    patched = await client.patch(stage_url, json={"name": "Won", "color": "#ABCDEF"})
    assert (patched.json()["name"], patched.json()["color"]) == ("Won", "#abcdef")
    error(await client.patch(stage_url, json={"color": "#12"}), 422)
    error(await client.patch(stage_url, json={"color": None}), 422)
    error(await client.patch(stage_url, json={"position": 0}), 422)  # reorder has its own route


async def test_stage_inserted_at_a_position_shifts_the_others(tenant: Tenant) -> None:
    client = tenant.client
    funnel = await make_funnel(client, 3)
    base = f"/api/v1/funnels/{funnel['id']}"
    url = f"{base}/stages"
    assert (await client.post(url, json={"name": "Mid", "position": 1})).json()["position"] == 1
    assert (await client.post(url, json={"name": "First", "position": 0})).json()["position"] == 0
    assert (await client.post(url, json={"name": "Last", "position": 99})).json()["position"] == 5
    error(await client.post(url, json={"name": "X", "position": -1}), 422)
    full = await make_funnel(client, 50)
    too_many = error(
        await client.post(f"/api/v1/funnels/{full['id']}/stages", json={"name": "X"}), 422
    )
    assert too_many["code"] == "too_many_stages"
    error(
        await client.post("/api/v1/funnels", json={"name": "F", "stages": [{"name": "S"}] * 51}),
        422,
    )
    stages = (await client.get(base)).json()["stages"]
    assert [(s["name"], s["position"]) for s in stages] == [
        ("First", 0),
        ("S0", 1),
        ("Mid", 2),
        ("S1", 3),
        ("S2", 4),
        ("Last", 5),
    ]


async def test_concurrent_stage_inserts_keep_positions_unique(tenant: Tenant) -> None:
    client = tenant.client
    funnel = await make_funnel(client, 2)
    url = f"/api/v1/funnels/{funnel['id']}/stages"
    bodies = [{"name": f"N{i}", **({"position": 0} if i % 2 else {})} for i in range(8)]
    responses = await asyncio.gather(*(client.post(url, json=body) for body in bodies))
    assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
    stages = (await client.get(f"/api/v1/funnels/{funnel['id']}")).json()["stages"]
    assert [s["position"] for s in stages] == list(range(10))
    assert {s["name"] for s in stages} == {"S0", "S1", *(b["name"] for b in bodies)}


async def test_reorder_reverses_the_stages(tenant: Tenant) -> None:
    client = tenant.client
    funnel = await make_funnel(client, 4)
    other_funnel = await make_funnel(client, 1)
    base = f"/api/v1/funnels/{funnel['id']}"
    ids = stage_ids(funnel)

    reordered = await client.put(f"{base}/stages/order", json={"stage_ids": ids[::-1]})
    assert reordered.status_code == 200, reordered.text
    assert [(s["id"], s["position"]) for s in reordered.json()] == list(
        zip(ids[::-1], range(4), strict=True)
    )
    stages = (await client.get(base)).json()["stages"]
    assert [s["name"] for s in stages] == ["S3", "S2", "S1", "S0"]

    rotated = ids[1:] + ids[:1]
    await client.put(f"{base}/stages/order", json={"stage_ids": rotated})
    assert stage_ids((await client.get(base)).json()) == rotated

    for bad in (
        rotated[:3],  # one missing
        [*rotated[:3], rotated[0]],  # a duplicate
        [*rotated, stage_ids(other_funnel)[0]],  # one of another funnel
        [*rotated[:3], stage_ids(other_funnel)[0]],
        [],
    ):
        err = error(await client.put(f"{base}/stages/order", json={"stage_ids": bad}), 422)
        assert err["details"][0]["field"] == "body.stage_ids"
    assert stage_ids((await client.get(base)).json()) == rotated


async def test_stage_with_deals_is_deleted_only_moving_them(tenant: Tenant, contact: str) -> None:
    client = tenant.client
    funnel = await make_funnel(client, 4)
    other_funnel = await make_funnel(client, 1)
    ids = stage_ids(funnel)
    open_deal = await make_deal(client, funnel, contact, stage=1)
    won_deal = await make_deal(client, funnel, contact, stage=1)
    await client.post(f"/api/v1/deals/{won_deal['id']}/won")
    url = f"/api/v1/funnels/{funnel['id']}/stages/{ids[1]}"

    assert error(await client.delete(url), 409)["code"] == "stage_has_deals"
    for move_to in (ids[1], stage_ids(other_funnel)[0], str(uuid.uuid4())):
        err = error(await client.delete(url, params={"move_to": move_to}), 422)
        assert err["details"][0]["field"] == "query.move_to"

    async with EventListener(client) as events:
        deleted = await client.delete(url, params={"move_to": ids[3]})
        assert deleted.status_code == 204
        moved = await events.wait_for("deal.moved", lambda e: len(e) == 2)
    assert {e["data"]["id"] for e in moved} == {open_deal["id"], won_deal["id"]}
    assert {e["data"]["stage"]["id"] for e in moved} == {ids[3]}

    for deal in (open_deal, won_deal):
        body = (await client.get(f"/api/v1/deals/{deal['id']}")).json()
        assert body["stage_id"] == ids[3] and body["updated_at"] > deal["updated_at"]
        history = (await client.get(f"/api/v1/deals/{deal['id']}/history")).json()["data"]
        assert history[0]["to_stage"]["id"] == ids[3]
    stages = (await client.get(f"/api/v1/funnels/{funnel['id']}")).json()["stages"]
    assert [(s["id"], s["position"]) for s in stages] == [(ids[0], 0), (ids[2], 1), (ids[3], 2)]

    empty_url = f"/api/v1/funnels/{funnel['id']}/stages/{ids[0]}"
    assert (await client.delete(empty_url)).status_code == 204
    error(await client.delete(empty_url), 404)
    error(await client.patch(empty_url, json={"name": "X"}), 404)


# --- deals ----------------------------------------------------------------------------------------


async def test_deal_crud_and_validation(
    tenant: Tenant, sessions: SessionFactory, contact: str
) -> None:
    client = tenant.client
    funnel = await make_funnel(client, 3)
    other_funnel = await make_funnel(client, 2)
    owner = await make_user(sessions, tenant.id)
    deal = await make_deal(
        client, funnel, contact, stage=1, value=1500, currency="USD", owner_user_id=owner
    )
    assert deal["value"] == "1500.00" and deal["currency"] == "USD"
    assert (deal["status"], deal["closed_at"], deal["owner_user_id"]) == ("open", None, owner)
    assert deal["contact"]["id"] == contact and deal["contact"]["name"] == "Maria"
    assert deal["contact"]["phone_number"].startswith("+55")
    assert deal["stage"] == {"id": funnel["stages"][1]["id"], "name": "S1", "color": "#3b82f6"}

    first = (
        await client.post(
            "/api/v1/deals",
            json={"title": "T", "funnel_id": funnel["id"], "contact_id": contact, "value": 0.1},
        )
    ).json()
    assert first["stage_id"] == funnel["stages"][0]["id"]  # no stage: the funnel's first
    assert (first["value"], first["currency"], first["owner_user_id"]) == ("0.10", "BRL", None)

    base = {"title": "T", "funnel_id": funnel["id"], "contact_id": contact}
    invalid = [
        ({"currency": "brl"}, "body.currency"),
        ({"currency": "BR"}, "body.currency"),
        ({"currency": "BRLX"}, "body.currency"),
        ({"value": -1}, "body.value"),
        ({"value": "1.234"}, "body.value"),
        ({"value": "NaN"}, "body.value"),
        ({"value": "1e20"}, "body.value"),
        ({"title": ""}, "body.title"),
        ({"stage_id": other_funnel["stages"][0]["id"]}, "body.stage_id"),
        ({"stage_id": str(uuid.uuid4())}, "body.stage_id"),
        ({"contact_id": str(uuid.uuid4())}, "body.contact_id"),
        ({"owner_user_id": str(uuid.uuid4())}, "body.owner_user_id"),
        ({"funnel_id": str(uuid.uuid4())}, "body.funnel_id"),
        ({"status": "won"}, "body.status"),
    ]
    for change, field_name in invalid:
        err = error(await client.post("/api/v1/deals", json={**base, **change}), 422)
        assert err["details"][0]["field"] == field_name, (change, err)
    empty_funnel = (await client.post("/api/v1/funnels", json={"name": "E"})).json()
    err = error(
        await client.post("/api/v1/deals", json={**base, "funnel_id": empty_funnel["id"]}), 422
    )
    assert "no stages" in err["message"]

    url = f"/api/v1/deals/{deal['id']}"
    assert (await client.get(url)).json() == deal
    assert (await client.get(url, params={"fields": "title,stage"})).json() == {
        "id": deal["id"],
        "title": "Coffee",
        "stage": deal["stage"],
    }
    other_contact = await make_contact(sessions, tenant.id, "João")
    patched = await client.patch(
        url,
        json={"title": "Tea", "value": "99.9", "contact_id": other_contact, "owner_user_id": None},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["title"], body["value"], body["owner_user_id"]) == ("Tea", "99.90", None)
    assert body["contact"]["name"] == "João" and body["currency"] == "USD"
    for bad in (
        {"title": None},
        {"value": None},
        {"currency": "usd"},
        {"contact_id": str(uuid.uuid4())},
        {"stage_id": funnel["stages"][0]["id"]},
        {"status": "won"},
    ):
        error(await client.patch(url, json=bad), 422)

    assert (await client.delete(url)).status_code == 204
    error(await client.get(url), 404)
    error(await client.delete(url), 404)


async def test_a_users_key_owns_the_deals_it_creates(
    tenant: Tenant, sessions: SessionFactory, api_url: str, contact: str
) -> None:
    funnel = await make_funnel(tenant.client, 1)
    user = await make_user(sessions, tenant.id)
    async with transaction(sessions) as session:
        key = await create_api_key(
            session, uuid.UUID(tenant.id), "ana", UserRole.AGENT, uuid.UUID(user)
        )
    headers = {"Authorization": f"Bearer {key.plain}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers) as agent:
        deal = await make_deal(agent, funnel, contact)
        assert deal["owner_user_id"] == user
        unowned = await make_deal(agent, funnel, contact, owner_user_id=None)
        assert unowned["owner_user_id"] is None


async def test_moves_are_recorded_newest_first(tenant: Tenant, contact: str) -> None:
    client = tenant.client
    funnel = await make_funnel(client, 3)
    other_funnel = await make_funnel(client, 2)
    ids = stage_ids(funnel)
    deal = await make_deal(client, funnel, contact)
    url = f"/api/v1/deals/{deal['id']}"

    async with EventListener(client) as events:
        moved = await client.post(f"{url}/move", json={"stage_id": ids[2]})
        assert moved.status_code == 200 and moved.json()["stage"]["name"] == "S2"
        assert moved.json()["updated_at"] > deal["updated_at"]
        same = await client.post(f"{url}/move", json={"stage_id": ids[2]})  # no-op
        assert same.status_code == 200 and same.json()["updated_at"] == moved.json()["updated_at"]
        await client.post(f"{url}/move", json={"stage_id": ids[1]})
        got = await events.wait_for("deal.moved", lambda e: len(e) >= 2)
    assert [e["data"]["stage_id"] for e in got] == [ids[2], ids[1]]
    assert got[0]["conversation_id"] is None and got[0]["data"]["id"] == deal["id"]

    for bad in (stage_ids(other_funnel)[0], str(uuid.uuid4())):
        err = error(await client.post(f"{url}/move", json={"stage_id": bad}), 422)
        assert err["details"][0]["field"] == "body.stage_id"
    error(await client.post(f"{url}/move", json={}), 422)

    history = (await client.get(f"{url}/history")).json()
    steps = [
        (h["from_stage"] and h["from_stage"]["name"], h["to_stage"]["name"])
        for h in history["data"]
    ]
    assert steps == [("S2", "S1"), ("S0", "S2"), (None, "S0")]
    assert history["has_more"] is False
    first_page = (await client.get(f"{url}/history", params={"limit": 2})).json()
    assert len(first_page["data"]) == 2 and first_page["has_more"]
    rest = await client.get(f"{url}/history", params={"cursor": first_page["next_cursor"]})
    assert [h["to_stage"]["name"] for h in rest.json()["data"]] == ["S0"]


async def test_won_lost_and_reopen_set_closed_at(tenant: Tenant, contact: str) -> None:
    client = tenant.client
    funnel = await make_funnel(client, 1)
    deal = await make_deal(client, funnel, contact)
    url = f"/api/v1/deals/{deal['id']}"
    async with EventListener(client) as events:
        won = (await client.post(f"{url}/won")).json()
        assert won["status"] == "won" and won["closed_at"] is not None
        again = (await client.post(f"{url}/won")).json()
        assert again["closed_at"] == won["closed_at"]  # already won: unchanged
        lost = (await client.post(f"{url}/lost")).json()
        assert lost["status"] == "lost" and lost["closed_at"] >= won["closed_at"]
        reopened = (await client.post(f"{url}/reopen")).json()
        assert (reopened["status"], reopened["closed_at"]) == ("open", None)
        updates = await events.wait_for("deal.updated", lambda e: len(e) >= 3)
    assert [e["data"]["status"] for e in updates] == ["won", "lost", "open"]
    listed = (await client.get("/api/v1/deals", params={"status": "open"})).json()["data"]
    assert [d["id"] for d in listed] == [deal["id"]]


async def test_deal_list_filters_and_pages(
    tenant: Tenant, sessions: SessionFactory, contact: str
) -> None:
    client = tenant.client
    sales, support = await make_funnel(client, 2), await make_funnel(client, 1, "Support")
    owner = await make_user(sessions, tenant.id)
    second_contact = await make_contact(sessions, tenant.id, "João")
    deals = [await make_deal(client, sales, contact, stage=i % 2) for i in range(5)]
    owned = await make_deal(client, support, second_contact, owner_user_id=owner)
    await client.post(f"/api/v1/deals/{deals[0]['id']}/lost")

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/api/v1/deals", params=params)
        assert response.status_code == 200, response.text
        return [d["id"] for d in response.json()["data"]]

    newest_first = [owned["id"], *[d["id"] for d in reversed(deals)]]
    assert await ids() == newest_first
    assert await ids(funnel_id=sales["id"]) == newest_first[1:]
    assert await ids(stage_id=sales["stages"][1]["id"]) == [deals[3]["id"], deals[1]["id"]]
    assert await ids(status="lost") == [deals[0]["id"]]
    assert await ids(owner_user_id=owner) == [owned["id"]]
    assert await ids(contact_id=second_contact) == [owned["id"]]
    assert await ids(funnel_id=str(uuid.uuid4())) == []
    error(await client.get("/api/v1/deals", params={"status": "maybe"}), 422)
    error(await client.get("/api/v1/deals", params={"limit": 101}), 422)
    error(await client.get("/api/v1/deals", params={"cursor": "garbage"}), 422)

    pages: list[str] = []
    cursor = None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/deals", params=params)).json()
        pages += [d["id"] for d in page["data"]]
        cursor = page["next_cursor"]
        assert page["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert pages == newest_first

    rows = (await client.get("/api/v1/deals", params={"fields": "contact,stage,value"})).json()
    assert rows["data"][0] == {
        "id": owned["id"],
        "value": "100.50",
        "contact": {
            "id": second_contact,
            "name": "João",
            "phone_number": owned["contact"]["phone_number"],
        },
        "stage": owned["stage"],
    }
    assert "secret" in error(await client.get("/api/v1/deals?fields=secret"), 422)["message"]


async def test_deal_created_and_updated_are_announced(tenant: Tenant, contact: str) -> None:
    client = tenant.client
    funnel = await make_funnel(client, 1)
    async with EventListener(client) as events:
        deal = await make_deal(client, funnel, contact)
        await client.patch(f"/api/v1/deals/{deal['id']}", json={"title": "Tea"})
        await client.delete(f"/api/v1/deals/{deal['id']}")
        created = await events.wait_for("deal.created", lambda e: len(e) == 1)
        updated = await events.wait_for("deal.updated", lambda e: len(e) == 1)
        deleted = await events.wait_for("deal.deleted", lambda e: len(e) == 1)
    assert created[0]["data"] == deal
    assert updated[0]["data"]["title"] == "Tea"
    assert deleted[0]["data"]["id"] == deal["id"]


# --- board ----------------------------------------------------------------------------------------


async def seed_deals(
    sessions: SessionFactory, company_id: str, funnel: dict, per_stage: list[int], contact: str
) -> None:
    """Open deals straight into the database, ``per_stage[i]`` in stage i (for volume)."""
    async with transaction(sessions) as session:
        for stage, count in zip(funnel["stages"], per_stage, strict=True):
            session.add_all(
                Deal(
                    company_id=uuid.UUID(company_id),
                    title=f"{stage['name']}-{i}",
                    value=Decimal("10.00"),
                    funnel_id=uuid.UUID(funnel["id"]),
                    stage_id=uuid.UUID(stage["id"]),
                    contact_id=uuid.UUID(contact),
                    created_at=utc_now(),
                )
                for i in range(count)
            )


async def test_board_lists_each_stage_newest_open_deals_capped(
    tenant: Tenant, contact: str
) -> None:
    client = tenant.client
    funnel = await make_funnel(client, 3)
    first = [await make_deal(client, funnel, contact, title=f"A{i}") for i in range(5)]
    dollars = await make_deal(client, funnel, contact, title="USD", value="7", currency="USD")
    second = [await make_deal(client, funnel, contact, stage=1, title=f"B{i}") for i in range(2)]
    await client.post(f"/api/v1/deals/{second[0]['id']}/won")  # closed: not on the board

    response = await client.get(f"/api/v1/funnels/{funnel['id']}/board", params={"per_stage": 3})
    assert response.status_code == 200, response.text
    board = response.json()
    assert (board["id"], board["name"]) == (funnel["id"], "Sales")
    columns = board["stages"]
    assert [(c["id"], c["position"], c["color"]) for c in columns] == [
        (s["id"], s["position"], s["color"]) for s in funnel["stages"]
    ]
    a, b, c = columns
    assert [d["title"] for d in a["deals"]] == ["USD", "A4", "A3"]
    assert (a["deal_count"], a["has_more"]) == (6, True)
    assert a["value_totals"] == {"BRL": "502.50", "USD": "7.00"}
    assert a["deals"][0] == dollars
    assert [d["title"] for d in b["deals"]] == ["B1"]
    assert (b["deal_count"], b["has_more"], b["value_totals"]) == (1, False, {"BRL": "100.50"})
    assert (c["deals"], c["deal_count"], c["value_totals"], c["has_more"]) == ([], 0, {}, False)
    assert first[0]["id"] not in {d["id"] for d in a["deals"]}

    default = (await client.get(f"/api/v1/funnels/{funnel['id']}/board")).json()
    assert len(default["stages"][0]["deals"]) == 6
    # written from columns without the models: exactly what BoardPublic (the schema) writes
    assert BoardPublic.model_validate(board).model_dump(mode="json") == board
    bare = await make_funnel(client, 0)
    empty = (await client.get(f"/api/v1/funnels/{bare['id']}/board")).json()
    assert (empty["id"], empty["stages"]) == (bare["id"], [])
    for bad in (0, 201, "x"):
        error(await client.get(f"/api/v1/funnels/{funnel['id']}/board?per_stage={bad}"), 422)


@dataclass
class CountingClient:
    client: httpx.AsyncClient
    statements: list[str] = field(default_factory=list)

    async def count(self, url: str, **params: Any) -> int:
        """The SQL statements one request issues (after a warm-up request that fills the
        authentication and settings caches)."""
        assert (await self.client.get(url, params=params)).status_code == 200
        self.statements.clear()
        response = await self.client.get(url, params=params)
        assert response.status_code == 200, response.text
        return len(self.statements)


@pytest.fixture
async def counting(settings: Settings, tenant: Tenant) -> AsyncIterator[CountingClient]:
    """The tenant's client over an in-process app whose engine records every statement."""
    async with in_process_api(settings, tenant.api_key) as (app, client):
        with recorded_statements(app) as statements:
            yield CountingClient(client, statements)


async def test_board_and_lists_issue_a_bounded_number_of_queries(
    tenant: Tenant, sessions: SessionFactory, counting: CountingClient, contact: str
) -> None:
    small = await make_funnel(tenant.client, 1)
    await seed_deals(sessions, tenant.id, small, [1], contact)
    small_board = await counting.count(f"/api/v1/funnels/{small['id']}/board")
    small_list = await counting.count("/api/v1/deals", limit=1)
    small_funnels = await counting.count("/api/v1/funnels")

    large = await make_funnel(tenant.client, 8)
    await seed_deals(sessions, tenant.id, large, [30, 0, 12, 5, 60, 1, 2, 3], contact)
    for _ in range(3):
        await make_funnel(tenant.client, 4)
    large_board = await counting.count(f"/api/v1/funnels/{large['id']}/board", per_stage=10)
    board = (await counting.client.get(f"/api/v1/funnels/{large['id']}/board")).json()
    assert sum(len(c["deals"]) for c in board["stages"]) == 30 + 12 + 5 + 50 + 1 + 2 + 3

    assert large_board == small_board == 1, counting.statements
    assert await counting.count("/api/v1/deals", limit=100) == small_list <= 2
    assert await counting.count("/api/v1/funnels") == small_funnels <= 3


# --- tenancy --------------------------------------------------------------------------------------


async def test_another_companys_objects_are_not_found(
    tenant: Tenant, other: Tenant, sessions: SessionFactory
) -> None:
    """Every {id} route of funnels, stages, deals, board and history answers 404 to another
    company, and changes nothing; ids of another company in bodies or queries are refused."""
    theirs_contact = await make_contact(sessions, other.id)
    theirs_user = await make_user(sessions, other.id)
    theirs = await make_funnel(other.client, 2)
    theirs_deal = await make_deal(other.client, theirs, theirs_contact)
    f, s, d = theirs["id"], theirs["stages"][0]["id"], theirs_deal["id"]

    mine_contact = await make_contact(sessions, tenant.id)
    mine = await make_funnel(tenant.client, 2)
    mine_deal = await make_deal(tenant.client, mine, mine_contact)
    client = tenant.client

    routes: list[tuple[str, str, dict | None]] = [
        ("GET", f"/api/v1/funnels/{f}", None),
        ("PATCH", f"/api/v1/funnels/{f}", {"name": "x"}),
        ("DELETE", f"/api/v1/funnels/{f}?force=true", None),
        ("GET", f"/api/v1/funnels/{f}/board", None),
        ("POST", f"/api/v1/funnels/{f}/stages", {"name": "x"}),
        ("PUT", f"/api/v1/funnels/{f}/stages/order", {"stage_ids": stage_ids(theirs)}),
        ("PATCH", f"/api/v1/funnels/{f}/stages/{s}", {"name": "x"}),
        ("DELETE", f"/api/v1/funnels/{f}/stages/{s}", None),
        # their stage under my funnel
        ("PATCH", f"/api/v1/funnels/{mine['id']}/stages/{s}", {"name": "x"}),
        ("DELETE", f"/api/v1/funnels/{mine['id']}/stages/{s}", None),
        ("GET", f"/api/v1/deals/{d}", None),
        ("PATCH", f"/api/v1/deals/{d}", {"title": "x"}),
        ("DELETE", f"/api/v1/deals/{d}", None),
        ("POST", f"/api/v1/deals/{d}/move", {"stage_id": theirs["stages"][1]["id"]}),
        ("POST", f"/api/v1/deals/{d}/won", None),
        ("POST", f"/api/v1/deals/{d}/lost", None),
        ("POST", f"/api/v1/deals/{d}/reopen", None),
        ("GET", f"/api/v1/deals/{d}/history", None),
    ]
    for method, url, body in routes:
        response = await client.request(method, url, json=body)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["error"]["code"] == "not_found"

    create = {"title": "x", "funnel_id": mine["id"], "contact_id": mine_contact}
    mine_url = f"/api/v1/deals/{mine_deal['id']}"
    stages_url = f"/api/v1/funnels/{mine['id']}/stages"
    refused = [
        ("POST", "/api/v1/deals", {**create, "funnel_id": f}, "body.funnel_id"),
        ("POST", "/api/v1/deals", {**create, "stage_id": s}, "body.stage_id"),
        ("POST", "/api/v1/deals", {**create, "contact_id": theirs_contact}, "body.contact_id"),
        ("POST", "/api/v1/deals", {**create, "owner_user_id": theirs_user}, "body.owner_user_id"),
        ("PATCH", mine_url, {"contact_id": theirs_contact}, "body.contact_id"),
        ("PATCH", mine_url, {"owner_user_id": theirs_user}, "body.owner_user_id"),
        ("POST", f"{mine_url}/move", {"stage_id": s}, "body.stage_id"),
        ("PUT", f"{stages_url}/order", {"stage_ids": [*stage_ids(mine), s]}, "body.stage_ids"),
        ("DELETE", f"{stages_url}/{mine['stages'][0]['id']}?move_to={s}", None, "query.move_to"),
    ]
    for method, url, body, field_name in refused:
        err = error(await client.request(method, url, json=body), 422)
        assert err["details"][0]["field"] == field_name, (method, url, err)

    for params in ({"funnel_id": f}, {"stage_id": s}, {"contact_id": theirs_contact}):
        listed = await client.get("/api/v1/deals", params=params)
        assert listed.json()["data"] == [], params
    assert [x["id"] for x in (await client.get("/api/v1/deals")).json()["data"]] == [
        mine_deal["id"]
    ]
    assert [x["id"] for x in (await client.get("/api/v1/funnels")).json()] == [mine["id"]]

    # nothing of theirs changed
    assert (await other.client.get(f"/api/v1/funnels/{f}")).json() == theirs
    assert (await other.client.get(f"/api/v1/deals/{d}")).json() == theirs_deal
