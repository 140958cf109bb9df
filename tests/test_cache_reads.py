"""The cached reads (a contact by id, a funnel's stages): after every kind of write the next read
shows the new state, a warm read issues no query on the table, and a cached object of one
company is still a 404 for another."""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.fixtures.app import SCRAPER, Tenant, in_process_api, recorded_statements
from tests.fixtures.system import api_subprocess
from tests.fixtures.traffic import (
    cloud_delivery,
    cloud_text,
    create_cloud_instance,
    eventually,
    post_cloud,
)
from zapflow.cache import INVALIDATION_CHANNEL
from zapflow.config import Settings
from zapflow.db import SessionFactory, transaction
from zapflow.models import Deal, Stage
from zapflow.redis import create_redis
from zapflow.services.auth import create_company

CONTACTS = "/api/v1/contacts"
FUNNELS = "/api/v1/funnels"


def _phone() -> str:
    return f"+55119{random.randrange(10**8):08d}"


async def _create_contact(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post(CONTACTS, json={"phone_number": _phone(), **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _read_contact(client: httpx.AsyncClient, contact_id: str) -> dict[str, Any]:
    response = await client.get(f"{CONTACTS}/{contact_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
async def other(api_url: str, sessions: SessionFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a second company."""
    async with transaction(sessions) as session:
        _, key = await create_company(session, "Other Co")
    headers = {"Authorization": f"Bearer {key.plain}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10) as client:
        yield client


# --- contact: no stale read after a write ---------------------------------------------------------


async def test_a_patched_contact_is_read_back_changed(tenant: Tenant) -> None:
    contact = await _create_contact(tenant.client, name="Maria")
    assert (await _read_contact(tenant.client, contact["id"]))["name"] == "Maria"  # cached
    response = await tenant.client.patch(
        f"{CONTACTS}/{contact['id']}", json={"name": "Maria Souza", "email": "m@example.com"}
    )
    assert response.status_code == 200, response.text
    read = await _read_contact(tenant.client, contact["id"])
    assert (read["name"], read["email"]) == ("Maria Souza", "m@example.com")


async def test_tags_added_and_removed_are_read_back(tenant: Tenant) -> None:
    contact = await _create_contact(tenant.client, tags=["lead"])
    assert (await _read_contact(tenant.client, contact["id"]))["tags"] == ["lead"]
    added = await tenant.client.post(f"{CONTACTS}/{contact['id']}/tags", json={"tag": "vip"})
    assert added.status_code == 200, added.text
    assert (await _read_contact(tenant.client, contact["id"]))["tags"] == ["lead", "vip"]
    removed = await tenant.client.delete(f"{CONTACTS}/{contact['id']}/tags/lead")
    assert removed.status_code == 204, removed.text
    assert (await _read_contact(tenant.client, contact["id"]))["tags"] == ["vip"]


async def test_a_deleted_contact_is_not_found_at_once(tenant: Tenant) -> None:
    contact = await _create_contact(tenant.client)
    await _read_contact(tenant.client, contact["id"])
    assert (await tenant.client.delete(f"{CONTACTS}/{contact['id']}")).status_code == 204
    assert (await tenant.client.get(f"{CONTACTS}/{contact['id']}")).status_code == 404


async def test_a_csv_import_updating_a_contact_is_read_back(tenant: Tenant) -> None:
    contacts = [await _create_contact(tenant.client, name=f"Old {i}") for i in range(3)]
    for contact in contacts:
        await _read_contact(tenant.client, contact["id"])
    rows = [f"{c['phone_number']},New {i}" for i, c in enumerate(contacts[:2])]
    csv = "\n".join(["phone_number,name", *rows, f"{_phone()},Brand new"]) + "\n"
    response = await tenant.client.post(
        f"{CONTACTS}/import", content=csv.encode(), headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["created"], response.json()["updated"]) == (1, 2)
    names = [(await _read_contact(tenant.client, c["id"]))["name"] for c in contacts]
    assert names == ["New 0", "New 1", "Old 2"]


@pytest.mark.usefixtures("worker")
async def test_a_name_learned_from_an_inbound_message_is_read_back(tenant: Tenant) -> None:
    """The worker merges the push name into the contact known by phone only, and invalidates
    the contact the API process had cached (L1 through the published invalidation, L2 by
    tombstone): well before either copy would have expired."""
    contact = await _create_contact(tenant.client)
    assert (await _read_contact(tenant.client, contact["id"]))["name"] == ""  # cached
    instance = await create_cloud_instance(tenant)
    wa_id = contact["phone_number"].lstrip("+")
    delivery = cloud_delivery(
        instance["phone_number_id"],
        cloud_text(wa_id, f"wamid.{uuid.uuid4().hex}", "oi", int(time.time()), name="Maria"),
    )
    response = await post_cloud(tenant.client, instance["webhook_url"], delivery)
    assert response.status_code == 200, response.text
    read = await eventually(
        lambda: _read_contact(tenant.client, contact["id"]), lambda c: c["name"] == "Maria"
    )
    assert read["id"] == contact["id"]


# --- contact: served from the cache, tenancy kept -------------------------------------------------


async def _read_on_new_connections(url: str, path: str, key: str, times: int) -> set[str]:
    """The names read, each on a connection of its own: the kernel hands new connections to
    whichever API process accepts first, so both processes answer some."""
    names = set()
    for _ in range(times):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            response = await client.get(path, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, response.text
            names.add(response.json()["name"])
    return names


async def test_two_api_processes_share_invalidations_and_metrics(
    settings: Settings, tenant: Tenant
) -> None:
    """`zapflow api --workers 2`: a write through one process is read back fresh from both
    (each L1 copy dropped through Redis pub/sub), and /metrics adds up both processes."""
    contact = (
        await tenant.client.post(
            "/api/v1/contacts", json={"phone_number": "+5511900001234", "name": "Before"}
        )
    ).json()
    path = f"/api/v1/contacts/{contact['id']}"
    redis = create_redis(settings)

    async def listening() -> int:
        [(_, count)] = await redis.pubsub_numsub(INVALIDATION_CHANNEL)
        return int(count)

    before = await listening()
    with api_subprocess(settings, "--workers", "2") as (url, _):
        # both processes are up: each listens for invalidations
        await eventually(listening, lambda n: n == before + 2, within=60)
        assert await _read_on_new_connections(url, path, tenant.api_key, 30) == {"Before"}
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            patched = await client.patch(
                path, json={"name": "After"}, headers={"Authorization": f"Bearer {tenant.api_key}"}
            )
            assert patched.status_code == 200
            assert await _read_on_new_connections(url, path, tenant.api_key, 30) == {"After"}
            exposition = (await client.get("/metrics", headers=SCRAPER)).text
    await redis.aclose()
    template = 'path_template="/api/v1/contacts/{contact_id}"'
    served = [
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("starlette_requests_total{")
        and template in line
        and 'method="GET"' in line
    ]
    assert served == [60]  # 30 + 30 reads, whichever process counted them


@dataclass
class Counting:
    """A client of an in-process app whose engine records every SQL statement."""

    client: httpx.AsyncClient
    statements: list[str] = field(default_factory=list)

    def on(self, table: str) -> list[str]:
        return [s for s in self.statements if re.search(rf"\b{table}\b", s)]


@pytest.fixture
async def counting(settings: Settings, tenant: Tenant) -> AsyncIterator[Counting]:
    async with in_process_api(settings, tenant.api_key) as (app, client):
        with recorded_statements(app) as statements:
            # warm up: authentication and the company's settings are cached reads too
            assert (await client.get("/api/v1/tags")).status_code == 200
            yield Counting(client, statements)


async def test_a_second_read_of_a_contact_does_not_query_the_contacts(
    tenant: Tenant, counting: Counting
) -> None:
    contact = await _create_contact(tenant.client, name="Maria", tags=["vip"])
    counting.statements.clear()
    first = await _read_contact(counting.client, contact["id"])
    assert counting.on("contacts"), "the first read loads the row"
    counting.statements.clear()
    second = await _read_contact(counting.client, contact["id"])
    assert counting.on("contacts") == [], counting.statements
    assert first == second == contact
    sparse = await counting.client.get(f"{CONTACTS}/{contact['id']}", params={"fields": "name"})
    assert sparse.json() == {"id": contact["id"], "name": "Maria"}


async def test_a_cached_contact_is_still_another_companys_404(
    tenant: Tenant, other: httpx.AsyncClient
) -> None:
    contact = await _create_contact(tenant.client, name="Maria")
    url = f"{CONTACTS}/{contact['id']}"
    assert (await other.get(url)).status_code == 404  # cold: nothing cached for them
    await _read_contact(tenant.client, contact["id"])
    await _read_contact(tenant.client, contact["id"])  # surely cached now
    refused = await other.get(url)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"
    assert "Maria" not in refused.text
    assert (await _read_contact(tenant.client, contact["id"]))["name"] == "Maria"


# --- funnel stages --------------------------------------------------------------------------------


async def _create_funnel(client: httpx.AsyncClient, *stages: str) -> dict[str, Any]:
    body = {"name": "Sales", "stages": [{"name": name} for name in stages]}
    response = await client.post(FUNNELS, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _stages(client: httpx.AsyncClient, funnel_id: str) -> list[dict[str, Any]]:
    """The stages as the funnel and its board both show them (they must agree)."""
    funnel = await client.get(f"{FUNNELS}/{funnel_id}")
    board = await client.get(f"{FUNNELS}/{funnel_id}/board")
    assert funnel.status_code == board.status_code == 200, (funnel.text, board.text)
    on_board = [
        {k: v for k, v in s.items() if k not in ("deal_count", "value_totals", "has_more", "deals")}
        for s in board.json()["stages"]
    ]
    stages: list[dict[str, Any]] = funnel.json()["stages"]
    assert on_board == stages
    return stages


async def _names(client: httpx.AsyncClient, funnel_id: str) -> list[str]:
    return [s["name"] for s in await _stages(client, funnel_id)]


async def test_stage_writes_are_read_back_at_once(tenant: Tenant) -> None:
    client = tenant.client
    funnel = await _create_funnel(client, "New", "Won")
    new, won = (s["id"] for s in funnel["stages"])
    assert await _names(client, funnel["id"]) == ["New", "Won"]  # cached

    renamed = await client.patch(
        f"{FUNNELS}/{funnel['id']}/stages/{new}", json={"name": "Lead", "color": "#22c55e"}
    )
    assert renamed.status_code == 200, renamed.text
    stages = await _stages(client, funnel["id"])
    assert [(s["name"], s["color"]) for s in stages] == [("Lead", "#22c55e"), ("Won", "#64748b")]

    order = await client.put(
        f"{FUNNELS}/{funnel['id']}/stages/order", json={"stage_ids": [won, new]}
    )
    assert order.status_code == 200, order.text
    assert await _names(client, funnel["id"]) == ["Won", "Lead"]

    added = await client.post(
        f"{FUNNELS}/{funnel['id']}/stages", json={"name": "Proposal", "position": 1}
    )
    assert added.status_code == 201, added.text
    assert await _names(client, funnel["id"]) == ["Won", "Proposal", "Lead"]
    assert [s["position"] for s in await _stages(client, funnel["id"])] == [0, 1, 2]

    deleted = await client.delete(f"{FUNNELS}/{funnel['id']}/stages/{won}")
    assert deleted.status_code == 204, deleted.text
    assert await _names(client, funnel["id"]) == ["Proposal", "Lead"]


async def test_deleting_a_stage_moving_its_deals_is_read_back(tenant: Tenant) -> None:
    client = tenant.client
    funnel = await _create_funnel(client, "New", "Qualified")
    new, qualified = (s["id"] for s in funnel["stages"])
    contact = await _create_contact(client)
    body = {"title": "Coffee", "funnel_id": funnel["id"], "stage_id": new}
    deal = await client.post("/api/v1/deals", json={**body, "contact_id": contact["id"]})
    assert deal.status_code == 201, deal.text
    await _stages(client, funnel["id"])  # cached

    deleted = await client.delete(
        f"{FUNNELS}/{funnel['id']}/stages/{new}", params={"move_to": qualified}
    )
    assert deleted.status_code == 204, deleted.text
    board = (await client.get(f"{FUNNELS}/{funnel['id']}/board")).json()
    assert [(s["name"], [d["id"] for d in s["deals"]]) for s in board["stages"]] == [
        ("Qualified", [deal.json()["id"]])
    ]
    assert await _names(client, funnel["id"]) == ["Qualified"]


async def test_a_second_read_of_the_stages_does_not_query_them(
    tenant: Tenant, counting: Counting
) -> None:
    """The funnel's stages come from the cache (the board reads them in its one statement with
    the deals instead: ``test_board_and_lists_issue_a_bounded_number_of_queries``)."""
    funnel = await _create_funnel(tenant.client, "New", "Won")
    path = f"{FUNNELS}/{funnel['id']}"
    counting.statements.clear()
    first = await counting.client.get(path)
    counting.statements.clear()
    second = await counting.client.get(path)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert counting.on("stages") == [], counting.statements


async def test_the_board_reads_stages_afresh_when_its_cached_list_lacks_one(
    tenant: Tenant, sessions: SessionFactory
) -> None:
    """A stage written without an invalidation reaching this process (yet) holds an open deal:
    the board must still list it, not fail on a deal of an unknown stage."""
    funnel = await _create_funnel(tenant.client, "New")
    contact = await _create_contact(tenant.client)
    await _stages(tenant.client, funnel["id"])  # cached
    company_id, funnel_id = uuid.UUID(tenant.id), uuid.UUID(funnel["id"])
    async with transaction(sessions) as session:
        stage = Stage(company_id=company_id, funnel_id=funnel_id, name="Late", position=1)
        session.add(stage)
        await session.flush()
        session.add(
            Deal(
                company_id=company_id,
                funnel_id=funnel_id,
                stage_id=stage.id,
                contact_id=uuid.UUID(contact["id"]),
                title="Coffee",
            )
        )
    board = await tenant.client.get(f"{FUNNELS}/{funnel['id']}/board")
    assert board.status_code == 200, board.text
    columns = [(s["name"], len(s["deals"])) for s in board.json()["stages"]]
    assert columns == [("New", 0), ("Late", 1)]


async def test_company_read_after_its_update_is_fresh(tenant: Tenant) -> None:
    before = (await tenant.client.get("/api/v1/company")).json()  # cached now
    patched = await tenant.client.patch("/api/v1/company", json={"ai_prompt": "Seja breve."})
    assert patched.status_code == 200
    after = (await tenant.client.get("/api/v1/company")).json()
    assert before["ai_prompt"] != "Seja breve." and after["ai_prompt"] == "Seja breve."
